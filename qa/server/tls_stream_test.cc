// TlsStream: an OpenSSL client talks to a TlsStream that starts on OpenSSL,
// is frozen (with a pipelined request unread), encoded, and resumed on XO's
// record layer; the client notices nothing.
#include "qa/server/tls_stream.h"

#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <string>
#include <thread>

#include "common/base/fd.h"

namespace xo::testserver {
namespace {

std::string read_until(Stream& s, const std::string& end) {
  std::string got;
  uint8_t buf[4096];
  while (got.find(end) == std::string::npos) {
    auto n = s.read_some(buf);
    EXPECT_TRUE(n.ok());
    if (!n.ok() || *n == 0) break;
    got.append(reinterpret_cast<char*>(buf), *n);
  }
  return got;
}

TEST(TlsStream, OpensslThenXoRecordLayerOnOneConnection) {
  auto pem = tls::make_self_signed("testserver");
  ASSERT_TRUE(pem.ok());
  tls::ServerConfig cfg;
  cfg.cert_pem = pem->cert_pem;
  cfg.key_pem = pem->key_pem;
  auto ctx = tls::ServerContext::create(cfg);
  ASSERT_TRUE(ctx.ok()) << ctx.error().to_string();

  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  UniqueFd server_fd(sv[0]), client_fd(sv[1]);
  SSL_CTX* cctx = SSL_CTX_new(TLS_client_method());
  SSL* client = SSL_new(cctx);
  SSL_set_fd(client, client_fd.get());
  std::string answers;
  std::thread c([&] {
    ASSERT_EQ(SSL_connect(client), 1);
    std::string two = "GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n";  // pipelined, one record
    SSL_write(client, two.data(), int(two.size()));
    char buf[256];
    while (answers.find("two") == std::string::npos) {
      int n = SSL_read(client, buf, sizeof buf);
      if (n <= 0) break;
      answers.append(buf, size_t(n));
    }
  });

  auto s = TlsStream::accept(*ctx, server_fd.get());
  ASSERT_TRUE(s.ok()) << s.error().to_string();
  std::string got = read_until(**s, "GET /1 HTTP/1.1\r\n\r\n");
  ASSERT_TRUE((*s)->write_some(std::span(reinterpret_cast<const uint8_t*>("one\n"), 4)).ok());
  std::string rest = got.substr(got.find("\r\n\r\n") + 4);  // the pipelined request, unconsumed
  auto state = (*s)->freeze(std::span(reinterpret_cast<const uint8_t*>(rest.data()), rest.size()));
  ASSERT_TRUE(state.ok()) << state.error().to_string();
  auto moved = tls::decode(tls::encode(*state));
  ASSERT_TRUE(moved.ok());
  auto r = TlsStream::resume(server_fd.get(), std::move(*moved));
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  ASSERT_EQ(rest, "GET /2 HTTP/1.1\r\n\r\n") << "both requests arrive in one record";
  EXPECT_EQ(read_until(**r, "GET /2 HTTP/1.1\r\n\r\n"), rest);  // served from the carried plaintext
  ASSERT_TRUE((*r)->write_some(std::span(reinterpret_cast<const uint8_t*>("two\n"), 4)).ok());
  c.join();
  EXPECT_EQ(answers, "one\ntwo\n");
  SSL_free(client);
  SSL_CTX_free(cctx);
}

}  // namespace
}  // namespace xo::testserver
