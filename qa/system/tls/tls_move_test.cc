// Live HTTPS connections moved frontend → backend0 → frontend → backend0
// between lab hosts under unmodified clients (curl, python3 ssl). The TCP
// snapshot (common/tcp) and the TLS state (common/tls) cross as their encoded
// bytes; the first leg runs on OpenSSL, every later one on XO's record layer.
// Every test builds its own lab and checks every byte, that no RST crossed the
// client's wire and that no host kept a connection socket afterwards.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <fstream>
#include <iostream>
#include <mutex>
#include <regex>

#include "common/tls/openssl_layer.h"
#include "qa/lab/lab.h"
#include "qa/lab/packet_counter.h"
#include "qa/lab/run.h"
#include "qa/lab/sockets.h"
#include "qa/server/content.h"
#include "qa/server/tls_stream.h"
#include "qa/system/tcp/move_lab.h"

namespace xo::tcpmove {
namespace {

using testserver::RequestInfo;

#define ASSERT_OK_AND(lhs, expr)                                       \
  auto XO_CONCAT_(r_, __LINE__) = (expr);                              \
  ASSERT_TRUE(XO_CONCAT_(r_, __LINE__).ok()) << #expr << ": "          \
      << XO_CONCAT_(r_, __LINE__).error().to_string();                 \
  lhs = std::move(XO_CONCAT_(r_, __LINE__)).value()

constexpr uint16_t kPort = 443;

bool content_ok(std::string_view body, uint64_t size, uint64_t seed) {
  return body.size() == size &&
         testserver::content_mismatch(seed, 0, std::span(reinterpret_cast<const uint8_t*>(body.data()), body.size())) == -1;
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void WriteFile(const std::string& path, const std::string& data) { std::ofstream(path, std::ios::binary) << data; }

// Plan: request `seq` is answered by hosts[seq]; requests not listed (and
// POSTs, which the server never hands over) stay where they are.
Plan by_seq(std::map<uint64_t, std::string> hosts) {
  Plan p;
  p.before = [hosts](const std::string&, const RequestInfo& r) -> std::optional<std::string> {
    auto it = hosts.find(r.seq);
    if (it == hosts.end()) return std::nullopt;
    return it->second;
  };
  return p;
}

// Each resumed TLS state as the new owner decoded it.
struct Resumed {
  std::string version, cipher;
  uint64_t tx_seq = 0, rx_seq = 0;
};

class TlsMove : public ::testing::Test {
 protected:
  // Lab, HTTPS servers and the wire counter. corrupt_tx_seq: every resumed
  // state sends with TX sequence + 1 (the negative control).
  void Start(Plan plan, bool corrupt_tx_seq = false) {
    dir_ = TempDir();
    auto pem = tls::make_self_signed("xo-lab");
    ASSERT_TRUE(pem.ok()) << pem.error().to_string();
    cafile_ = dir_ + "/ca.pem";
    WriteFile(cafile_, pem->cert_pem);
    auto ctx = tls::ServerContext::create({.cert_pem = pem->cert_pem, .key_pem = pem->key_pem});
    ASSERT_TRUE(ctx.ok()) << ctx.error().to_string();
    factory_ = std::make_unique<testserver::TlsStreamFactory>(*ctx);
    factory_->on_resume = [this, corrupt_tx_seq](tls::State& st) {
      std::lock_guard lock(mu_);
      resumed_.push_back({tls::to_string(st.version), tls::cipher_info(st.cipher).name, st.tx.seq(), st.rx.seq()});
      if (corrupt_tx_seq) st.tx.set_seq(st.tx.seq() + 1);
    };

    auto lab = lab::Lab::up({.backends = 1});
    ASSERT_TRUE(lab.ok()) << lab.error().to_string();
    lab_ = std::make_unique<lab::Lab>(std::move(*lab));
    auto ml = MoveLab::start(*lab_, std::move(plan), kPort, factory_.get());
    ASSERT_TRUE(ml.ok()) << ml.error().to_string();
    ml_ = std::move(*ml);
    auto pc = lab::PacketCounter::start(lab_->client().ns);
    ASSERT_TRUE(pc.ok()) << pc.error().to_string();
    counter_ = std::move(*pc);
  }

  void TearDown() override {
    if (lab_) {
      if (counter_) {
        auto c = counter_->stop();
        EXPECT_GT(c.tcp_in, 0u) << "the counter saw no traffic: it could not have seen an RST either";
        if (expect_no_rst_) {
          EXPECT_EQ(c.rst_in, 0u) << "RSTs reached the client";
          EXPECT_EQ(c.rst_out, 0u) << "the client sent RSTs";
        }
        EXPECT_EQ(c.dropped, 0u) << "the wire counter lost frames; an RST may have gone unseen";
      }
      for (const char* host : {"frontend", "backend0", "client"}) {
        auto left = lab::wait_no_connections(lab_->find(host)->ns);
        ASSERT_TRUE(left.ok()) << left.error().to_string();
        EXPECT_TRUE(left->empty()) << "sockets left on " << host << ":\n" << lab::to_string(*left);
        if (!left->empty()) {
          auto ss = lab::run_in(lab_->find(host)->ns, {"ss", "-tine"});
          if (ss.ok()) std::cerr << ss->out;
        }
      }
      ml_.reset();
      lab_.reset();
    }
    if (!dir_.empty()) (void)lab::run_in("", {"rm", "-rf", dir_});
  }

  static std::string TempDir() {
    char tmpl[] = "/tmp/xo-tls-move-XXXXXX";
    return ::mkdtemp(tmpl) ? tmpl : "/tmp";
  }

  std::string Url(const std::string& path) const {
    return "https://" + lab_->service_ip() + ":" + std::to_string(kPort) + path;
  }

  // Every move so far succeeded; returns them.
  std::vector<MoveRecord> Moves(size_t expected) {
    auto recs = ml_->mover().records();
    EXPECT_EQ(recs.size(), expected);
    for (const auto& r : recs) EXPECT_TRUE(r.ok) << r.from << " -> " << r.to << ": " << r.error;
    return recs;
  }

  std::vector<Resumed> ResumedStates() {
    std::lock_guard lock(mu_);
    return resumed_;
  }

  std::string dir_, cafile_;
  std::unique_ptr<testserver::TlsStreamFactory> factory_;
  std::unique_ptr<lab::Lab> lab_;
  std::unique_ptr<MoveLab> ml_;
  std::unique_ptr<lab::PacketCounter> counter_;
  bool expect_no_rst_ = true;
  std::mutex mu_;
  std::vector<Resumed> resumed_;
};

#define START(...)       \
  Start(__VA_ARGS__);    \
  if (HasFatalFailure()) return

// ---- curl --http1.1, keep-alive over four URLs, one per protocol/suite ----

struct Suite {
  const char* name;
  std::vector<std::string> curl_args;
  const char* version;  // as tls::to_string
  const char* cipher;   // tls::cipher_info().name
};

void PrintTo(const Suite& s, std::ostream* os) { *os << s.name; }

class TlsMoveCurl : public TlsMove, public ::testing::WithParamInterface<Suite> {};

TEST_P(TlsMoveCurl, KeepAliveFrontendBackendFrontendBackend) {
  const Suite& suite = GetParam();
  START(by_seq({{1, "frontend"}, {2, "backend0"}, {3, "frontend"}, {4, "backend0"}}));
  std::vector<std::string> argv = {"curl", "-sS", "--max-time", "60", "--http1.1", "--cacert", cafile_,
                                   // The self-signed certificate names "xo-lab"; the lab's address serves it.
                                   "--resolve", "xo-lab:" + std::to_string(kPort) + ":" + lab_->service_ip(),
                                   "-D", dir_ + "/headers", "-w", "%{num_connects}\\n"};
  argv.insert(argv.end(), suite.curl_args.begin(), suite.curl_args.end());
  const uint64_t sizes[] = {300000, 1000000, 50000, 200000};
  for (int i = 0; i < 4; ++i)
    argv.insert(argv.end(), {"-o", dir_ + "/body" + std::to_string(i),
                             "https://xo-lab:" + std::to_string(kPort) + "/data/" + std::to_string(sizes[i]) + "/" +
                                 std::to_string(i + 11)});
  ASSERT_OK_AND(auto out, lab::run_ok(lab_->client().ns, argv, std::chrono::seconds(60)));
  EXPECT_EQ(out, "1\n0\n0\n0\n") << "curl did not reuse one connection";
  std::string headers = ReadFile(dir_ + "/headers");
  std::regex by_re("X-Served-By: (\\S+)", std::regex::icase), seq_re("X-Request-Seq: (\\S+)", std::regex::icase);
  std::string by, seq;
  for (std::sregex_iterator it(headers.begin(), headers.end(), by_re), end; it != end; ++it) by += (*it)[1].str() + " ";
  for (std::sregex_iterator it(headers.begin(), headers.end(), seq_re), end; it != end; ++it) seq += (*it)[1].str() + " ";
  EXPECT_EQ(by, "frontend backend0 frontend backend0 ");
  EXPECT_EQ(seq, "1 2 3 4 ");
  for (int i = 0; i < 4; ++i)
    EXPECT_TRUE(content_ok(ReadFile(dir_ + "/body" + std::to_string(i)), sizes[i], i + 11)) << "body " << i;
  auto moves = Moves(3);
  ASSERT_EQ(moves.size(), 3u);
  EXPECT_EQ(moves[0].to, "backend0");
  EXPECT_EQ(moves[1].to, "frontend");
  EXPECT_EQ(moves[2].to, "backend0");
  auto resumed = ResumedStates();
  ASSERT_EQ(resumed.size(), 3u);
  for (const auto& r : resumed) {
    EXPECT_EQ(r.version, suite.version);
    EXPECT_EQ(r.cipher, suite.cipher);
  }
  // Each leg sent records, so the carried TX sequence grows from move to move.
  EXPECT_LT(resumed[0].tx_seq, resumed[1].tx_seq);
  EXPECT_LT(resumed[1].tx_seq, resumed[2].tx_seq);
}

INSTANTIATE_TEST_SUITE_P(
    Suites, TlsMoveCurl,
    ::testing::Values(
        Suite{"tls13_aes128gcm", {"--tlsv1.3", "--tls13-ciphers", "TLS_AES_128_GCM_SHA256"}, "TLS1.3", "aes128gcm"},
        Suite{"tls13_aes256gcm", {"--tlsv1.3", "--tls13-ciphers", "TLS_AES_256_GCM_SHA384"}, "TLS1.3", "aes256gcm"},
        Suite{"tls13_chacha20poly1305",
              {"--tlsv1.3", "--tls13-ciphers", "TLS_CHACHA20_POLY1305_SHA256"},
              "TLS1.3",
              "chacha20poly1305"},
        Suite{"tls12_aes128gcm",
              {"--tlsv1.2", "--tls-max", "1.2", "--ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256"},
              "TLS1.2",
              "aes128gcm"},
        Suite{"tls12_chacha20poly1305",
              {"--tlsv1.2", "--tls-max", "1.2", "--ciphers", "ECDHE-ECDSA-CHACHA20-POLY1305"},
              "TLS1.2",
              "chacha20poly1305"}),
    [](const ::testing::TestParamInfo<Suite>& i) { return std::string(i.param.name); });

// ---- python3 ssl: 1 MB downloads and 300 KB uploads, checked by hash ----

TEST_F(TlsMove, PythonSslDownloadAndUploadTls13) {
  // GETs (odd seq) move; each POST is answered by whoever holds the connection.
  START(by_seq({{1, "frontend"}, {3, "backend0"}, {5, "frontend"}, {7, "backend0"}}));
  ASSERT_OK_AND(auto out, lab::run_ok(lab_->client().ns,
                                      {"/usr/bin/python3", XO_TLS_SYSTEM_DIR "/https_client_check.py",
                                       lab_->service_ip(), std::to_string(kPort), cafile_, "1.3", "1.3"},
                                      std::chrono::seconds(60)));
  EXPECT_EQ(out,
            "1 frontend ok\n2 frontend ok\n3 backend0 ok\n4 backend0 ok\n"
            "5 frontend ok\n6 frontend ok\n7 backend0 ok\n8 backend0 ok\n"
            "TLSv1.3 TLS_AES_256_GCM_SHA384\n");
  Moves(3);
}

TEST_F(TlsMove, PythonSslDownloadAndUploadTls12) {
  START(by_seq({{1, "frontend"}, {3, "backend0"}, {5, "frontend"}, {7, "backend0"}}));
  ASSERT_OK_AND(auto out, lab::run_ok(lab_->client().ns,
                                      {"/usr/bin/python3", XO_TLS_SYSTEM_DIR "/https_client_check.py",
                                       lab_->service_ip(), std::to_string(kPort), cafile_, "1.2", "1.2"},
                                      std::chrono::seconds(60)));
  EXPECT_EQ(out,
            "1 frontend ok\n2 frontend ok\n3 backend0 ok\n4 backend0 ok\n"
            "5 frontend ok\n6 frontend ok\n7 backend0 ok\n8 backend0 ok\n"
            "TLSv1.2 ECDHE-ECDSA-AES256-GCM-SHA384\n");
  Moves(3);
  for (const auto& r : ResumedStates()) EXPECT_EQ(r.version, "TLS1.2");
}

TEST_F(TlsMove, CurlOverIPv6) {
  START(by_seq({{1, "frontend"}, {2, "backend0"}, {3, "frontend"}, {4, "backend0"}}));
  std::vector<std::string> argv = {"curl", "-sS", "--max-time", "60", "--http1.1", "--cacert", cafile_, "--resolve",
                                   "xo-lab:" + std::to_string(kPort) + ":[" + lab_->service_ip6() + "]", "-w",
                                   "%{num_connects}\\n"};
  for (int i = 0; i < 4; ++i)
    argv.insert(argv.end(), {"-o", dir_ + "/body" + std::to_string(i),
                             "https://xo-lab:" + std::to_string(kPort) + "/data/400000/" + std::to_string(i + 31)});
  ASSERT_OK_AND(auto out, lab::run_ok(lab_->client().ns, argv, std::chrono::seconds(60)));
  EXPECT_EQ(out, "1\n0\n0\n0\n") << "curl did not reuse one connection";
  for (int i = 0; i < 4; ++i)
    EXPECT_TRUE(content_ok(ReadFile(dir_ + "/body" + std::to_string(i)), 400000, i + 31)) << "body " << i;
  auto moves = Moves(3);
  for (const auto& m : moves) EXPECT_EQ(m.flow.family, AF_INET6);
}

// ---- a move in the middle of a response body ----

TEST_F(TlsMove, CurlResponseFinishedByTheOtherHost) {
  static constexpr uint64_t kSize = 1'000'000, kAt = 333'333;
  Plan plan = by_seq({{2, "frontend"}});
  plan.mid = [](const std::string& here, const RequestInfo& r) -> std::optional<std::pair<uint64_t, std::string>> {
    if (here == "frontend" && r.seq == 1) return std::pair<uint64_t, std::string>{kAt, "backend0"};
    return std::nullopt;
  };
  START(std::move(plan));
  ASSERT_OK_AND(auto out,
                lab::run_ok(lab_->client().ns,
                            {"curl", "-sS", "--max-time", "60", "--http1.1", "--cacert", cafile_, "--resolve",
                             "xo-lab:" + std::to_string(kPort) + ":" + lab_->service_ip(), "-w",
                             "%{num_connects}\\n", "-o", dir_ + "/body0",
                             "https://xo-lab:" + std::to_string(kPort) + "/data/1000000/21", "-o", dir_ + "/body1",
                             "https://xo-lab:" + std::to_string(kPort) + "/data/100000/22"},
                            std::chrono::seconds(60)));
  EXPECT_EQ(out, "1\n0\n");
  EXPECT_TRUE(content_ok(ReadFile(dir_ + "/body0"), kSize, 21));
  EXPECT_TRUE(content_ok(ReadFile(dir_ + "/body1"), 100000, 22));
  Moves(2);
  EXPECT_EQ(ml_->server("frontend").stats().body_bytes, kAt + 100000);
  EXPECT_EQ(ml_->server("backend0").stats().body_bytes, kSize - kAt);
}

// ---- negative control: the tests can fail ----

TEST_F(TlsMove, WrongTxSequenceAfterTheMoveIsABadRecordMac) {
  expect_no_rst_ = false;  // the client aborts the connection: RSTs are fine here
  // The first request moves (curl silently retries a request that failed on a
  // reused connection, on a new one; a first request it does not retry).
  Plan plan;
  plan.before = [](const std::string& here, const RequestInfo& r) -> std::optional<std::string> {
    if (here == "frontend" && r.seq == 1) return "backend0";
    return std::nullopt;
  };
  START(std::move(plan), /*corrupt_tx_seq=*/true);
  ASSERT_OK_AND(auto res,
                lab::run_in(lab_->client().ns,
                            {"curl", "-sS", "--max-time", "30", "--http1.1", "--cacert", cafile_, "--resolve",
                             "xo-lab:" + std::to_string(kPort) + ":" + lab_->service_ip(), "-o", "/dev/null",
                             "https://xo-lab:" + std::to_string(kPort) + "/data/1000/1"},
                            std::chrono::seconds(40)));
  EXPECT_NE(res.exit_code, 0) << "curl accepted a record sealed with the wrong sequence number";
  EXPECT_NE(res.err.find("bad record mac"), std::string::npos) << "curl said: " << res.err;
  std::cerr << "curl said (expected): " << res.err;
  auto moves = Moves(1);
  ASSERT_EQ(moves.size(), 1u);
  EXPECT_EQ(moves[0].to, "backend0");
}

}  // namespace
}  // namespace xo::tcpmove
