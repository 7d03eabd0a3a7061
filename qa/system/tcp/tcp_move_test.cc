// Live TCP connections moved frontend → backend → frontend under real
// clients (curl, python3 http.client, a C++ client). Every test builds its own
// lab and checks, besides the bytes, that no RST crossed the client's wire and
// that no host kept a connection socket afterwards.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <fstream>
#include <future>
#include <regex>
#include <sstream>
#include <thread>

#include "common/base/testing.h"
#include "qa/lab/lab.h"
#include "qa/lab/netns.h"
#include "qa/lab/packet_counter.h"
#include "qa/lab/run.h"
#include "qa/server/client.h"
#include "qa/server/content.h"
#include "qa/system/tcp/move_checks.h"
#include "qa/system/tcp/move_lab.h"

namespace xo::tcpmove {
namespace {

using testserver::Client;
using testserver::RequestInfo;
using testserver::Response;

bool content_ok(std::string_view body, uint64_t size, uint64_t seed) {
  return body.size() == size &&
         testserver::content_mismatch(seed, 0, std::span(reinterpret_cast<const uint8_t*>(body.data()), body.size())) == -1;
}

class TcpMove : public ::testing::Test {
 protected:
  // Lab, servers and the wire counter; plan decides who answers what.
  void Start(Plan plan) {
    auto lab = lab::Lab::up({.backends = 1});
    ASSERT_TRUE(lab.ok()) << lab.error().to_string();
    lab_ = std::make_unique<lab::Lab>(std::move(*lab));
    auto ml = MoveLab::start(*lab_, std::move(plan));
    ASSERT_TRUE(ml.ok()) << ml.error().to_string();
    ml_ = std::move(*ml);
    auto pc = lab::PacketCounter::start(lab_->client().ns);
    ASSERT_TRUE(pc.ok()) << pc.error().to_string();
    counter_ = std::move(*pc);
  }

  void TearDown() override {
    if (!lab_) return;
    expect_clean_finish(*lab_, counter_.get());
    ml_.reset();
    lab_.reset();
  }

  Client Connect(const std::string& ip) {
    auto scope = lab::NetnsScope::enter(lab_->client().ns);
    EXPECT_TRUE(scope.ok());
    auto c = Client::connect(ip, ml_->port());
    EXPECT_TRUE(c.ok()) << c.error().to_string();
    return std::move(*c);
  }

  // Every move so far succeeded; returns them.
  std::vector<MoveRecord> Moves(size_t expected) { return expect_moves_ok(ml_->mover(), expected); }

  // GET /data/<size>/<seed> on `c`; checks every byte; returns X-Served-By.
  std::string GetChecked(Client& c, uint64_t size, uint64_t seed) {
    auto r = c.get("/data/" + std::to_string(size) + "/" + std::to_string(seed));
    EXPECT_TRUE(r.ok()) << r.error().to_string();
    if (!r.ok()) return "(error)";
    EXPECT_EQ(r->status, 200);
    EXPECT_TRUE(content_ok(r->body, size, seed)) << "wrong bytes for seed " << seed;
    return r->header("x-served-by");
  }

  std::unique_ptr<lab::Lab> lab_;
  std::unique_ptr<MoveLab> ml_;
  std::unique_ptr<lab::PacketCounter> counter_;
};

// Start() reports failures with ASSERT_*, which only leave Start() itself.
#define START(plan)             \
  Start(plan);                  \
  if (HasFatalFailure()) return

std::string TempDir() {
  char tmpl[] = "/tmp/xo-tcp-move-XXXXXX";
  return ::mkdtemp(tmpl) ? tmpl : "/tmp";
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

TEST_F(TcpMove, CurlKeepAliveFrontendBackendFrontend) {
  START(answer_by({"frontend", "backend0", "frontend"}));
  std::string dir = TempDir();
  std::vector<std::string> argv = {"curl", "-sS", "--max-time", "60", "--http1.1", "-D", dir + "/headers", "-w", "%{num_connects}\\n"};
  const uint64_t sizes[] = {300000, 1000000, 50000};
  for (int i = 0; i < 3; ++i) {
    argv.insert(argv.end(), {"-o", dir + "/body" + std::to_string(i),
                             "http://" + lab_->service_ip() + "/data/" + std::to_string(sizes[i]) + "/" +
                                 std::to_string(i + 11)});
  }
  ASSERT_OK_AND(auto out, lab::run_ok(lab_->client().ns, argv, std::chrono::seconds(60)));
  EXPECT_EQ(out, "1\n0\n0\n") << "curl did not reuse one connection";
  std::string headers = ReadFile(dir + "/headers");
  std::regex by_re("X-Served-By: (\\S+)", std::regex::icase), seq_re("X-Request-Seq: (\\S+)", std::regex::icase);
  std::string by, seq;
  for (std::sregex_iterator it(headers.begin(), headers.end(), by_re), end; it != end; ++it) by += (*it)[1].str() + " ";
  for (std::sregex_iterator it(headers.begin(), headers.end(), seq_re), end; it != end; ++it) seq += (*it)[1].str() + " ";
  EXPECT_EQ(by, "frontend backend0 frontend ");
  EXPECT_EQ(seq, "1 2 3 ");
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(content_ok(ReadFile(dir + "/body" + std::to_string(i)), sizes[i], i + 11)) << "body " << i;
  auto moves = Moves(2);
  EXPECT_EQ(moves[0].to, "backend0");
  EXPECT_EQ(moves[1].to, "frontend");
  (void)lab::run_in("", {"rm", "-rf", dir});
}

TEST_F(TcpMove, PythonHttpClient) {
  START(answer_by({"frontend", "backend0", "frontend"}));
  ASSERT_OK_AND(auto out, lab::run_ok(lab_->client().ns,
                                      {"/usr/bin/python3", XO_TCP_SYSTEM_DIR "/http_client_check.py",
                                       lab_->service_ip(), std::to_string(ml_->port()), "200000", "3000000", "1000"},
                                      std::chrono::seconds(60)));
  EXPECT_EQ(out, "1 frontend ok\n2 backend0 ok\n3 frontend ok\n");
  Moves(2);
}

TEST_F(TcpMove, CppClientKeepAlive) {
  START(answer_by({"frontend", "backend0", "frontend"}));
  {
    Client c = Connect(lab_->service_ip());
    EXPECT_EQ(GetChecked(c, 100000, 1), "frontend");
    EXPECT_EQ(GetChecked(c, 2000000, 2), "backend0");
    EXPECT_EQ(GetChecked(c, 100000, 3), "frontend");
  }
  Moves(2);
}

TEST_F(TcpMove, UnacknowledgedSendData) {
  Plan plan;
  // Drop the client's packets (only those: the body still goes out) before
  // the body is written: the client's ACKs are lost, so the 8000 bytes
  // written before the move are sent but still unacknowledged. The move's own
  // block then stops both directions.
  plan.before_body = [this](const std::string& here, int fd, const RequestInfo& r) {
    if (here != "frontend" || r.seq != 1) return;
    auto flow = lab::flow_of(fd);
    ASSERT_TRUE(flow.ok());
    const std::string ip = flow->family == AF_INET6 ? "ip6" : "ip";
    const std::string& ns = lab_->frontend().ns;
    const auto t = std::chrono::seconds(10);
    ASSERT_TRUE(lab::run_ok(ns, {"nft", "add", "table", "inet", "xo_ackdrop"}, t).ok());
    ASSERT_TRUE(lab::run_ok(ns, {"nft", "add", "chain", "inet", "xo_ackdrop", "acks",
                                 "{ type filter hook prerouting priority -310; policy accept; }"}, t).ok());
    ASSERT_TRUE(lab::run_ok(ns, {"nft", "add", "rule", "inet", "xo_ackdrop", "acks", ip, "saddr",
                                 flow->remote_ip, "tcp", "sport", std::to_string(flow->remote_port),
                                 "drop"}, t).ok());
  };
  plan.mid = [](const std::string& here, const RequestInfo& r) -> std::optional<std::pair<uint64_t, std::string>> {
    if (here == "frontend" && r.seq == 1) return std::pair<uint64_t, std::string>{8000, "backend0"};
    return std::nullopt;
  };
  START(std::move(plan));
  {
    Client c = Connect(lab_->service_ip());
    EXPECT_EQ(GetChecked(c, 100000, 5), "frontend");  // head by the frontend, body finished by backend0
    EXPECT_EQ(GetChecked(c, 1000, 6), "backend0");
  }
  auto moves = Moves(1);
  EXPECT_GE(moves[0].unacked, 8000u) << "the move carried no unacknowledged data";
  EXPECT_EQ(ml_->server("backend0").stats().body_bytes, 100000u - 8000u + 1000u);
}

TEST_F(TcpMove, UnsentDataUnderCork) {
  Plan plan;
  // TCP_CORK holds a partial segment back: 1000 body bytes stay unsent.
  plan.before_body = [](const std::string& here, int fd, const RequestInfo& r) {
    if (here != "frontend" || r.seq != 1) return;
    int on = 1;
    ASSERT_EQ(::setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on), 0);
  };
  plan.mid = [](const std::string& here, const RequestInfo& r) -> std::optional<std::pair<uint64_t, std::string>> {
    if (here == "frontend" && r.seq == 1) return std::pair<uint64_t, std::string>{1000, "backend0"};
    return std::nullopt;
  };
  START(std::move(plan));
  {
    Client c = Connect(lab_->service_ip());
    EXPECT_EQ(GetChecked(c, 50000, 7), "frontend");
  }
  auto moves = Moves(1);
  EXPECT_GT(moves[0].unsent, 0u) << "the move carried no unsent data";
}

TEST_F(TcpMove, PipelinedRequestsInTheReceiveQueue) {
  std::promise<void> in_hook, sent;
  auto sent_f = sent.get_future().share();
  Plan plan;
  plan.before = [&, sent_f](const std::string& here, const RequestInfo& r) -> std::optional<std::string> {
    if (here == "frontend" && r.seq == 1) {
      // Hold the server while the client pipelines two more requests: they
      // wait in the kernel's receive queue, not in the server's buffer.
      in_hook.set_value();
      sent_f.wait_for(std::chrono::seconds(10));
      return "backend0";
    }
    return "frontend";
  };
  START(std::move(plan));
  {
    Client c = Connect(lab_->service_ip());
    ASSERT_TRUE(c.send_get("/data/70000/21").ok());
    in_hook.get_future().wait();
    ASSERT_TRUE(c.send_get("/data/80000/22").ok());
    ASSERT_TRUE(c.send_get("/data/90000/23").ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    sent.set_value();
    std::string by;
    for (int i = 0; i < 3; ++i) {
      auto r = c.read_response();
      ASSERT_TRUE(r.ok()) << r.error().to_string();
      EXPECT_TRUE(content_ok(r->body, 70000 + 10000 * i, 21 + i));
      by += r->header("x-served-by") + " ";
    }
    EXPECT_EQ(by, "backend0 frontend frontend ");
  }
  auto moves = Moves(2);
  EXPECT_GT(moves[0].recv_queue, 0u) << "the pipelined requests were not in the receive queue";
}

TEST_F(TcpMove, TenMegabyteResponseFinishedByTheOtherHost) {
  static constexpr uint64_t kSize = 10'000'000, kAt = 4'321'987;
  Plan plan;
  plan.mid = [](const std::string& here, const RequestInfo& r) -> std::optional<std::pair<uint64_t, std::string>> {
    if (here == "frontend" && r.seq == 1) return std::pair<uint64_t, std::string>{kAt, "backend0"};
    return std::nullopt;
  };
  START(std::move(plan));
  {
    Client c = Connect(lab_->service_ip());
    EXPECT_EQ(GetChecked(c, kSize, 77), "frontend");
  }
  Moves(1);
  EXPECT_EQ(ml_->server("frontend").stats().body_bytes, kAt);
  EXPECT_EQ(ml_->server("backend0").stats().body_bytes, kSize - kAt);
}

TEST_F(TcpMove, IPv6) {
  START(answer_by({"frontend", "backend0", "frontend"}));
  {
    Client c = Connect(lab_->service_ip6());
    EXPECT_EQ(GetChecked(c, 100000, 31), "frontend");
    EXPECT_EQ(GetChecked(c, 1000000, 32), "backend0");
    EXPECT_EQ(GetChecked(c, 100000, 33), "frontend");
  }
  auto moves = Moves(2);
  for (const auto& m : moves) EXPECT_EQ(m.flow.family, AF_INET6);
}

// A slow reader: megabytes wait in the origin's send queue when it moves.
TEST_F(TcpMove, LargeSendQueue) {
  if (!std::getenv("XO_TCP_STRESS"))
    GTEST_SKIP() << "opt-in (XO_TCP_STRESS=1): whether a large send queue exists at the move depends on "
                    "the client's receive autotuning (often the queue is empty), and with ~1 MB unacked the "
                    "restored socket waits for its initial 1 s RTO (srtt does not travel) before it "
                    "retransmits: 1-4 s. The permanent stall once seen here was the origin transmitting "
                    "from repair mode; the block now drops both directions.";
  static constexpr uint64_t kSize = 6'000'000, kAt = 3'000'000;
  Plan plan;
  plan.mid = [](const std::string& here, const RequestInfo& r) -> std::optional<std::pair<uint64_t, std::string>> {
    if (here == "frontend" && r.seq == 1) return std::pair<uint64_t, std::string>{kAt, "backend0"};
    return std::nullopt;
  };
  START(std::move(plan));
  {
    Client c = Connect(lab_->service_ip());
    ASSERT_TRUE(c.send_get("/data/6000000/79").ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    auto r = c.read_response();
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_TRUE(content_ok(r->body, kSize, 79));
  }
  auto moves = Moves(1);
  EXPECT_GT(moves[0].unacked + moves[0].unsent, 100'000u) << "the test did not build a large send queue";
}

// The client keeps ACKing while the move happens: only a working ip6 block
// keeps those segments away from the socket in repair mode.
TEST_F(TcpMove, IPv6ResponseFinishedByTheOtherHost) {
  static constexpr uint64_t kSize = 10'000'000, kAt = 6'000'001;
  Plan plan;
  plan.mid = [](const std::string& here, const RequestInfo& r) -> std::optional<std::pair<uint64_t, std::string>> {
    if (here == "frontend" && r.seq == 1) return std::pair<uint64_t, std::string>{kAt, "backend0"};
    return std::nullopt;
  };
  START(std::move(plan));
  {
    Client c = Connect(lab_->service_ip6());
    EXPECT_EQ(GetChecked(c, kSize, 78), "frontend");
  }
  auto moves = Moves(1);
  EXPECT_EQ(moves[0].flow.family, AF_INET6);
  EXPECT_EQ(ml_->server("backend0").stats().body_bytes, kSize - kAt);
}

TEST_F(TcpMove, HalfClosedByTheClient) {
  std::promise<void> shut;
  auto shut_f = shut.get_future().share();
  Plan plan;
  plan.before = [shut_f](const std::string& here, const RequestInfo& r) -> std::optional<std::string> {
    if (here == "frontend" && r.seq == 2) {
      // Move only once the client's FIN is in: the socket moves in CLOSE_WAIT.
      shut_f.wait_for(std::chrono::seconds(10));
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      return "backend0";
    }
    return std::nullopt;
  };
  START(std::move(plan));
  {
    Client c = Connect(lab_->service_ip());
    ASSERT_TRUE(c.send_get("/data/100000/41").ok());
    ASSERT_TRUE(c.send_get("/data/200000/42").ok());
    ASSERT_EQ(::shutdown(c.fd(), SHUT_WR), 0);
    shut.set_value();
    std::string by;
    for (int i = 0; i < 2; ++i) {
      auto r = c.read_response();
      ASSERT_TRUE(r.ok()) << r.error().to_string();
      EXPECT_TRUE(content_ok(r->body, 100000 * (i + 1), 41 + i));
      by += r->header("x-served-by") + " ";
    }
    EXPECT_EQ(by, "frontend backend0 ");
    char b;
    EXPECT_EQ(::recv(c.fd(), &b, 1, 0), 0) << "backend0 did not close its side";
  }
  auto moves = Moves(1);
  EXPECT_EQ(moves[0].tcp_state, TCP_CLOSE_WAIT);
}

TEST_F(TcpMove, HundredRoundTripsOnOneConnection) {
  START((Plan{.before = [](const std::string&, const RequestInfo& r) -> std::optional<std::string> {
    return r.seq % 2 == 0 ? "backend0" : "frontend";
  }}));
  {
    Client c = Connect(lab_->service_ip());
    for (int seq = 1; seq <= 201; ++seq) {
      std::string want = seq % 2 == 0 ? "backend0" : "frontend";
      ASSERT_EQ(GetChecked(c, 1000 + seq, seq), want) << "request " << seq;
    }
  }
  Moves(200);
}

}  // namespace
}  // namespace xo::tcpmove
