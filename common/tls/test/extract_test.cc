// Extraction from an OpenSSL 3.0 server SSL*, checked on the wire: an
// in-process OpenSSL client talks to the server through a wiretap that keeps
// every server-to-client byte, the server moves from OpenSSL to XO's record
// layer mid-connection, and the test reads the records themselves.
#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>

#include <mutex>
#include <thread>

#include "common/base/fd.h"
#include "common/tls/openssl_layer.h"
#include "common/tls/record.h"
#include "common/tls/record_layer.h"

namespace xo::tls {
namespace {

// client <-> [wiretap thread] <-> server; keeps the server-to-client stream.
class Wiretap {
 public:
  Wiretap() {
    int a[2], b[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
    server_.reset(a[0]);
    tap_server_.reset(a[1]);
    client_.reset(b[0]);
    tap_client_.reset(b[1]);
    thread_ = std::thread([this] { run(); });
  }
  ~Wiretap() {
    server_.reset();
    client_.reset();
    thread_.join();
  }
  int server_fd() const { return server_.get(); }
  int client_fd() const { return client_.get(); }
  std::vector<uint8_t> server_stream() {
    std::lock_guard<std::mutex> l(mu_);
    return down_;
  }

 private:
  void run() {
    pollfd p[2] = {{tap_server_.get(), POLLIN, 0}, {tap_client_.get(), POLLIN, 0}};
    uint8_t buf[65536];
    for (;;) {
      if (::poll(p, 2, -1) < 0) return;
      for (int i = 0; i < 2; ++i) {
        if (!(p[i].revents & (POLLIN | POLLHUP))) continue;
        ssize_t n = ::read(p[i].fd, buf, sizeof buf);
        if (n <= 0) return;
        if (i == 0) {
          std::lock_guard<std::mutex> l(mu_);
          down_.insert(down_.end(), buf, buf + n);
        }
        if (!send_all(p[1 - i].fd, buf, size_t(n))) return;
      }
    }
  }
  static bool send_all(int fd, const uint8_t* p, size_t n) {
    while (n > 0) {
      ssize_t w = ::write(fd, p, n);
      if (w <= 0) return false;
      p += w;
      n -= size_t(w);
    }
    return true;
  }
  UniqueFd server_, tap_server_, client_, tap_client_;
  std::thread thread_;
  std::mutex mu_;
  std::vector<uint8_t> down_;
};

std::shared_ptr<ServerContext> server_ctx(int max_version, const char* ciphers) {
  static PemPair pem = *make_self_signed("xo-extract-test");
  ServerConfig cfg;
  cfg.cert_pem = pem.cert_pem;
  cfg.key_pem = pem.key_pem;
  cfg.max_version = max_version;
  if (max_version == TLS1_2_VERSION) cfg.cipher_list = ciphers;
  else cfg.ciphersuites = ciphers;
  auto c = ServerContext::create(cfg);
  EXPECT_TRUE(c.ok()) << c.error().to_string();
  return *c;
}

struct Client {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = nullptr;
  explicit Client(int fd) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
  }
  ~Client() {
    SSL_free(ssl);
    SSL_CTX_free(ctx);
  }
  void write(const std::string& s) { ASSERT_EQ(SSL_write(ssl, s.data(), int(s.size())), int(s.size())); }
  std::string read(size_t n) {
    std::string got;
    char buf[4096];
    while (got.size() < n) {
      int r = SSL_read(ssl, buf, int(std::min(sizeof buf, n - got.size())));
      if (r <= 0) break;
      got.append(buf, size_t(r));
    }
    return got;
  }
};

std::string read_str(RecordLayer& l, size_t n) {
  std::string got;
  uint8_t buf[4096];
  while (got.size() < n) {
    auto r = l.read_some(std::span(buf, std::min(sizeof buf, n - got.size())));
    EXPECT_TRUE(r.ok()) << r.error().to_string();
    if (!r.ok() || *r == 0) break;
    got.append(reinterpret_cast<char*>(buf), *r);
  }
  return got;
}

Status write_str(RecordLayer& l, const std::string& s) {
  return l.write_all(std::span(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
}

class Tls12Gcm : public ::testing::TestWithParam<const char*> {};

// OpenSSL starts TLS 1.2 GCM's explicit nonce at a random value and counts
// up; after the move XO must continue exactly there (a repeated nonce under
// one key would break GCM). Every protected server record is checked.
TEST_P(Tls12Gcm, ExplicitNonceContinuesFromTheWire) {
  auto ctx = server_ctx(TLS1_2_VERSION, GetParam());
  Wiretap tap;
  Client client(tap.client_fd());
  std::unique_ptr<RecordLayer> server;
  std::thread s([&] {
    auto l = accept_openssl(ctx, tap.server_fd());
    ASSERT_TRUE(l.ok()) << l.error().to_string();
    EXPECT_EQ(read_str(**l, 4), "req1");
    ASSERT_TRUE(write_str(**l, "resp1").ok());
    auto st = (*l)->freeze();
    ASSERT_TRUE(st.ok()) << st.error().to_string();
    auto moved = make_userspace_layer(tap.server_fd(), *decode(encode(*st)));
    ASSERT_TRUE(moved.ok());
    server = std::move(*moved);
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(write_str(*server, "resp" + std::to_string(i + 2)).ok());
    EXPECT_EQ(read_str(*server, 4), "req2");
    ASSERT_TRUE(write_str(*server, std::string(40000, 'x')).ok());
  });
  ASSERT_EQ(SSL_connect(client.ssl), 1);
  client.write("req1");
  EXPECT_EQ(client.read(5 * 6), "resp1resp2resp3resp4resp5resp6");
  client.write("req2");
  EXPECT_EQ(client.read(40000), std::string(40000, 'x'));
  s.join();

  auto wire = tap.server_stream();
  std::vector<uint64_t> nonces;
  bool after_ccs = false;
  for (size_t off = 0; off < wire.size();) {
    auto whole = whole_record_length(std::span(wire).subspan(off));
    ASSERT_TRUE(whole.ok() && *whole > 0);
    if (wire[off] == kChangeCipherSpec) {
      after_ccs = true;
    } else if (after_ccs) {
      uint64_t v = 0;
      for (int i = 0; i < 8; ++i) v = v << 8 | wire[off + 5 + i];
      nonces.push_back(v);
    }
    off += *whole;
  }
  // Finished, resp1 (OpenSSL), resp2..6 and three 16 KiB records (XO).
  ASSERT_GE(nonces.size(), 10u);
  for (size_t i = 1; i < nonces.size(); ++i) EXPECT_EQ(nonces[i], nonces[0] + i) << "record " << i;
}

INSTANTIATE_TEST_SUITE_P(Ciphers, Tls12Gcm,
                         ::testing::Values("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384"),
                         [](const auto& info) { return std::string(info.index == 0 ? "aes128gcm" : "aes256gcm"); });

// A KeyUpdate (update_requested) the server has pulled from the socket but
// OpenSSL has not read yet travels as ciphertext; XO's layer follows it and
// answers with its own KeyUpdate. A KeyUpdate OpenSSL already processed is
// reflected in the exported secrets.
TEST(Tls13Extract, PeerKeyUpdatesBeforeAndAtTheMove) {
  auto ctx = server_ctx(TLS1_3_VERSION, "TLS_CHACHA20_POLY1305_SHA256");
  Wiretap tap;
  Client client(tap.client_fd());
  State frozen;
  std::thread s([&] {
    auto l = accept_openssl(ctx, tap.server_fd());
    ASSERT_TRUE(l.ok()) << l.error().to_string();
    EXPECT_EQ(read_str(**l, 4), "req1");  // OpenSSL processed a KeyUpdate before it
    ASSERT_TRUE(write_str(**l, "resp1").ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // KeyUpdate + req2 arrive
    ASSERT_TRUE((*l)->pull_available().ok());
    auto st = (*l)->freeze();
    ASSERT_TRUE(st.ok()) << st.error().to_string();
    frozen = *st;
    auto moved = make_userspace_layer(tap.server_fd(), *decode(encode(*st)));
    ASSERT_TRUE(moved.ok());
    EXPECT_EQ(read_str(**moved, 4), "req2");
    ASSERT_TRUE(write_str(**moved, "resp2").ok());
    ASSERT_TRUE((*moved)->key_update(true).ok());  // and one from our side, peer asked to follow
    EXPECT_EQ(read_str(**moved, 4), "req3");
    ASSERT_TRUE(write_str(**moved, "resp3").ok());
  });
  ASSERT_EQ(SSL_connect(client.ssl), 1);
  ASSERT_EQ(SSL_key_update(client.ssl, SSL_KEY_UPDATE_REQUESTED), 1);
  client.write("req1");
  EXPECT_EQ(client.read(5), "resp1");
  ASSERT_EQ(SSL_key_update(client.ssl, SSL_KEY_UPDATE_REQUESTED), 1);
  client.write("req2");
  EXPECT_EQ(client.read(5), "resp2");
  client.write("req3");
  EXPECT_EQ(client.read(5), "resp3");
  s.join();
  EXPECT_GT(frozen.pending_ciphertext.size(), 0u) << "the second KeyUpdate was carried as ciphertext";
  // Client secrets: after one processed update the exported RX secret is
  // application_traffic_secret_1, not _0 (checked by the continued session).
  EXPECT_EQ(frozen.rx.traffic_secret.size(), 32u);
}

TEST(Tls13Extract, FreezeRightAfterTheHandshakeIsOneShot) {
  // Keys and counts are complete once SSL_accept returns; a frozen layer
  // refuses any further use (two owners must never write one connection).
  auto ctx = server_ctx(TLS1_3_VERSION, "TLS_AES_128_GCM_SHA256");
  Wiretap tap;
  Client client(tap.client_fd());
  std::thread s([&] {
    auto l = accept_openssl(ctx, tap.server_fd());
    ASSERT_TRUE(l.ok());
    ASSERT_TRUE((*l)->freeze().ok());
    EXPECT_FALSE((*l)->freeze().ok()) << "a frozen layer cannot be frozen twice";
    auto again = (*l)->read_some(std::span<uint8_t>());
    EXPECT_FALSE(again.ok());
  });
  ASSERT_EQ(SSL_connect(client.ssl), 1);
  s.join();
}

}  // namespace
}  // namespace xo::tls
