// Control channel: mutual TLS 1.3 between two endpoints on loopback (inside
// the test process's private network namespace, see test_env.cc), request /
// response correlation, timeouts, refusal of unauthenticated peers, reconnect
// with backoff, and rejection of bad frames from an authenticated peer.
#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <future>
#include <thread>

#include "common/handoff/channel/backoff.h"
#include "common/handoff/channel/peer_client.h"
#include "common/handoff/channel/server.h"
#include "common/handoff/channel/tls_config.h"
#include "common/handoff/test/pki.h"
#include "common/handoff/test/sample_messages.h"
#include "common/handoff/wire/frame.h"
#include "common/handoff/wire/limits.h"
#include "common/handoff/wire/messages.h"

namespace xo::handoff::channel {
namespace {

using namespace std::chrono_literals;
using asio::ip::tcp;
using test::TempPki;

template <class Pred>
bool wait_until(Pred pred, std::chrono::milliseconds limit = 5s) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

pb::Offer offer_for(uint64_t flow_id) {
  return test::loopback_offer(flow_id, "snapshot-" + std::to_string(flow_id), 500);
}

// Captures log lines so tests can assert that the server said why.
struct LogSink {
  std::mutex mu;
  std::vector<std::string> lines;
  Logger logger(std::string who) {
    return [this, who](const std::string& line) {
      std::lock_guard lock(mu);
      lines.push_back(line);
      std::fprintf(stderr, "[%s] %s\n", who.c_str(), line.c_str());
    };
  }
  bool contains(const std::string& needle) {
    std::lock_guard lock(mu);
    for (auto& l : lines)
      if (l.find(needle) != std::string::npos) return true;
    return false;
  }
};

class HandoffChannel : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(pki_.ok()) << "xo-pki failed (" XO_PKI_SCRIPT ")";
    ASSERT_TRUE(other_pki_.ok());
    io_thread_ = std::thread([this] { io_.run(); });
  }

  void TearDown() override {
    for (auto& c : clients_) c->stop();
    for (auto& s : servers_) s->stop();
    std::this_thread::sleep_for(50ms);  // let close_notify go out
    work_.reset();
    io_.stop();
    if (io_thread_.joinable()) io_thread_.join();
    clients_.clear();
    servers_.clear();
  }

  std::shared_ptr<asio::ssl::context> context(const std::string& host, Role role, const TempPki& pki) {
    auto ctx = make_tls_context(TlsIdentity::from_pki_dir(pki.dir(), host), role);
    EXPECT_TRUE(ctx.ok()) << ctx.error().to_string();
    return ctx.ok() ? *ctx : nullptr;
  }

  // osd-1's server: answers OFFER with READY (same flow id), QUERY_COMMITTED
  // with COMMITTED, and records every peer host id it served.
  std::shared_ptr<Server> start_server(uint16_t port = 0, ServerOptions opts = {}) {
    opts.listen = tcp::endpoint(asio::ip::make_address("127.0.0.1"), port);
    if (!opts.log) opts.log = log_.logger("server");
    if (!opts.handlers.on_message)
      opts.handlers.on_message = [this](const ConnectionPtr& conn, pb::Envelope m) {
        {
          std::lock_guard lock(mu_);
          served_peers_.push_back(conn->peer_host_id());
        }
        if (m.type() == pb::TYPE_OFFER) {
          pb::Ready r;
          r.set_flow_id(m.offer().flow_id());
          EXPECT_TRUE(conn->respond(m, wire::wrap(r)).ok());
        } else if (m.type() == pb::TYPE_QUERY_COMMITTED) {
          pb::Committed c;
          c.set_flow_id(m.query_committed().flow_id());
          c.set_committed(true);
          EXPECT_TRUE(conn->respond(m, wire::wrap(c)).ok());
        }
      };
    auto server = Server::create(io_, context("osd-1", Role::kServer, pki_), std::move(opts));
    EXPECT_TRUE(server.ok()) << server.error().to_string();
    if (!server.ok()) return nullptr;
    (*server)->start();
    servers_.push_back(*server);
    return *server;
  }

  std::shared_ptr<PeerClient> start_client(uint16_t port, const std::string& identity = "rgw-1",
                                           const TempPki* pki = nullptr, PeerOptions opts = {}) {
    if (opts.peer_host_id.empty()) opts.peer_host_id = "osd-1";
    opts.endpoint = tcp::endpoint(asio::ip::make_address("127.0.0.1"), port);
    if (!opts.log) opts.log = log_.logger("client " + identity);
    auto ctx = context(identity, Role::kClient, pki ? *pki : pki_);
    auto client = PeerClient::create(io_, ctx, std::move(opts));
    EXPECT_TRUE(client.ok()) << client.error().to_string();
    if (!client.ok()) return nullptr;
    (*client)->start();
    clients_.push_back(*client);
    return *client;
  }

  Result<pb::Envelope> call(PeerClient& client, pb::Envelope req, std::chrono::milliseconds timeout = 2s) {
    auto done = std::make_shared<std::promise<Result<pb::Envelope>>>();
    auto fut = done->get_future();
    client.request(std::move(req), timeout, [done](Result<pb::Envelope> r) { done->set_value(std::move(r)); });
    if (fut.wait_for(timeout + 3s) != std::future_status::ready) return error("test: no completion", ETIME);
    return fut.get();
  }

  // A raw TLS client with any context, for peers our PeerClient would never be.
  struct RawPeer {
    tcp::socket* sock() { return &stream->next_layer(); }
    std::shared_ptr<asio::ssl::context> ctx;  // when the peer owns it (outlives the stream)
    std::unique_ptr<asio::ssl::stream<tcp::socket>> stream;
    boost::system::error_code handshake_ec;
  };
  RawPeer raw_connect(asio::io_context& io, asio::ssl::context& ctx, uint16_t port) {
    RawPeer p;
    p.stream = std::make_unique<asio::ssl::stream<tcp::socket>>(io, ctx);
    boost::system::error_code ec;
    p.stream->next_layer().connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
    EXPECT_FALSE(ec) << ec.message();
    SSL_set1_host(p.stream->native_handle(), "osd-1");
    p.stream->handshake(asio::ssl::stream_base::client, p.handshake_ec);
    return p;
  }
  // True when the server closes the raw peer's connection: reads end in an
  // error within 3 s (answers already in flight are read and skipped).
  static bool raw_is_closed(RawPeer& p) {
    boost::system::error_code ec;
    p.sock()->non_blocking(false, ec);
    timeval tv{3, 0};
    setsockopt(p.sock()->native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::vector<uint8_t> buf(4096);
    for (int i = 0; i < 1000; ++i) {
      p.stream->read_some(asio::buffer(buf), ec);
      if (ec) return ec != asio::error::would_block && ec != asio::error::try_again;
    }
    return false;
  }

  TempPki pki_{{"osd-1", "rgw-1", "rgw-2"}};
  TempPki other_pki_{{"osd-1", "rgw-1"}, "other"};  // another CA, same host names
  LogSink log_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
  std::thread io_thread_;
  std::vector<std::shared_ptr<Server>> servers_;
  std::vector<std::shared_ptr<PeerClient>> clients_;
  std::mutex mu_;
  std::vector<std::string> served_peers_;
};

TEST_F(HandoffChannel, RequestAndResponseOverMutualTls) {
  auto server = start_server();
  ASSERT_TRUE(server);
  auto client = start_client(server->local_endpoint().port());
  ASSERT_TRUE(wait_until([&] { return client->connected(); })) << "never connected";

  auto r = call(*client, wire::wrap(offer_for(77)));
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->type(), pb::TYPE_READY);
  EXPECT_EQ(r->ready().flow_id(), 77u);

  pb::QueryCommitted q;
  q.set_flow_id(78);
  r = call(*client, wire::wrap(q));
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_TRUE(r->committed().committed());
  EXPECT_EQ(r->committed().flow_id(), 78u);

  // The server knows who connected: the host id of the client's certificate.
  EXPECT_EQ(client->connection()->peer_host_id(), "osd-1");
  ASSERT_TRUE(wait_until([&] { return server->connection("rgw-1") != nullptr; }));
  std::lock_guard lock(mu_);
  ASSERT_EQ(served_peers_.size(), 2u);
  EXPECT_EQ(served_peers_[0], "rgw-1");
}

// A frame many times the read buffer (16 KiB, one TLS record per read)
// arrives whole, followed at once by a small one — both ways: an OFFER near
// the payload limit to the server, a RETURN with as many client bytes back.
TEST_F(HandoffChannel, FramesLargerThanTheReadBufferArriveWhole) {
  std::string big(900u << 10, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + (i * 7) % 26);
  ServerOptions sopts;
  std::promise<std::string> offered;
  sopts.handlers.on_message = [&](const ConnectionPtr& conn, pb::Envelope m) {
    if (m.type() != pb::TYPE_OFFER) return;
    if (m.offer().flow_id() == 1) offered.set_value(m.offer().payload());
    pb::Ready r;
    r.set_flow_id(m.offer().flow_id());
    EXPECT_TRUE(conn->respond(m, wire::wrap(r)).ok());
  };
  auto server = start_server(0, sopts);
  ASSERT_TRUE(server);
  PeerOptions popts;
  std::promise<std::string> returned;
  popts.handlers.on_message = [&](const ConnectionPtr& conn, pb::Envelope m) {
    if (m.type() != pb::TYPE_RETURN) return;
    returned.set_value(m.return_().client_bytes());
    pb::Done d;
    d.set_flow_id(m.return_().flow_id());
    EXPECT_TRUE(conn->respond(m, wire::wrap(d)).ok());
  };
  auto client = start_client(server->local_endpoint().port(), "rgw-1", nullptr, popts);
  ASSERT_TRUE(wait_until([&] { return client->connected(); })) << "never connected";

  pb::Offer offer = offer_for(1);
  offer.set_payload(big);
  std::promise<Result<pb::Envelope>> big_answer, small_answer;
  client->connection()->request(wire::wrap(offer), 5s, [&](Result<pb::Envelope> r) { big_answer.set_value(r); });
  client->connection()->request(wire::wrap(offer_for(2)), 5s,
                                [&](Result<pb::Envelope> r) { small_answer.set_value(r); });
  auto got = offered.get_future();
  ASSERT_EQ(got.wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(got.get() == big) << "the payload arrived changed";
  for (auto* answer : {&big_answer, &small_answer}) {
    auto f = answer->get_future();
    ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
    auto r = f.get();
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_EQ(r->type(), pb::TYPE_READY);
  }

  ASSERT_TRUE(wait_until([&] { return server->connection("rgw-1") != nullptr; }));
  pb::Return ret;
  *ret.mutable_flow() = offer_for(3).flow();
  ret.set_flow_id(3);
  ret.set_tcp_snapshot("snap");
  ret.set_client_bytes(big);
  ret.set_origin_host("osd-1");
  std::promise<Result<pb::Envelope>> done;
  server->connection("rgw-1")->request(wire::wrap(ret), 5s, [&](Result<pb::Envelope> r) { done.set_value(r); });
  auto back = returned.get_future();
  ASSERT_EQ(back.wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(back.get() == big) << "the client bytes arrived changed";
  auto d = done.get_future();
  ASSERT_EQ(d.wait_for(5s), std::future_status::ready);
  auto r = d.get();
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->type(), pb::TYPE_DONE);
  EXPECT_FALSE(log_.contains("closed")) << "the connection was dropped";
}

TEST_F(HandoffChannel, ServerSendsRequestsToo) {
  auto server = start_server();
  PeerOptions opts;
  opts.handlers.on_message = [](const ConnectionPtr& conn, pb::Envelope m) {
    if (m.type() != pb::TYPE_RETURN) return;
    pb::Done d;
    d.set_flow_id(m.return_().flow_id());
    EXPECT_TRUE(conn->respond(m, wire::wrap(d)).ok());
  };
  auto client = start_client(server->local_endpoint().port(), "rgw-1", nullptr, opts);
  ASSERT_TRUE(wait_until([&] { return server->connection("rgw-1") != nullptr; }));

  pb::Return ret;
  *ret.mutable_flow() = offer_for(1).flow();
  ret.set_flow_id(5);
  ret.set_tcp_snapshot("snap");
  ret.set_client_bytes("GET /next HTTP/1.1\r\n\r\n");
  ret.set_origin_host("osd-1");
  std::promise<Result<pb::Envelope>> done;
  server->connection("rgw-1")->request(wire::wrap(ret), 2s,
                                       [&](Result<pb::Envelope> r) { done.set_value(std::move(r)); });
  auto fut = done.get_future();
  ASSERT_EQ(fut.wait_for(5s), std::future_status::ready);
  auto r = fut.get();
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->type(), pb::TYPE_DONE);
  EXPECT_EQ(r->done().flow_id(), 5u);
}

TEST_F(HandoffChannel, ManyConcurrentRequestsAreCorrelatedByTxn) {
  auto server = start_server();
  auto client = start_client(server->local_endpoint().port());
  ASSERT_TRUE(wait_until([&] { return client->connected(); }));
  constexpr int kRequests = 200;
  std::vector<std::promise<Result<pb::Envelope>>> done(kRequests);
  std::set<uint64_t> txns;
  for (int i = 0; i < kRequests; ++i)
    txns.insert(client->request(wire::wrap(offer_for(1000 + i)), 5s,
                                [&done, i](Result<pb::Envelope> r) { done[i].set_value(std::move(r)); }));
  EXPECT_EQ(txns.size(), static_cast<size_t>(kRequests));  // distinct transaction ids
  for (int i = 0; i < kRequests; ++i) {
    auto fut = done[i].get_future();
    ASSERT_EQ(fut.wait_for(10s), std::future_status::ready) << i;
    auto r = fut.get();
    ASSERT_TRUE(r.ok()) << i << ": " << r.error().to_string();
    EXPECT_EQ(r->ready().flow_id(), 1000u + i) << "response delivered to the wrong request";
  }
}

TEST_F(HandoffChannel, RequestTimesOutWhenThePeerNeverAnswers) {
  std::mutex m;
  std::vector<std::pair<ConnectionPtr, pb::Envelope>> unanswered;
  ServerOptions opts;
  opts.handlers.on_message = [&](const ConnectionPtr& conn, pb::Envelope e) {
    std::lock_guard lock(m);
    unanswered.emplace_back(conn, std::move(e));  // never answers
  };
  auto server = start_server(0, opts);
  std::promise<pb::Envelope> late;
  PeerOptions copts;
  copts.handlers.on_message = [&](const ConnectionPtr&, pb::Envelope e) { late.set_value(std::move(e)); };
  auto client = start_client(server->local_endpoint().port(), "rgw-1", nullptr, copts);
  ASSERT_TRUE(wait_until([&] { return client->connected(); }));

  const auto start = std::chrono::steady_clock::now();
  auto r = call(*client, wire::wrap(offer_for(9)), 200ms);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ETIMEDOUT) << r.error().to_string();
  EXPECT_GE(elapsed, 200ms);
  EXPECT_LT(elapsed, 2s);
  EXPECT_TRUE(client->connected()) << "a timeout must not cost the connection";

  // The answer arrives after all: it is not lost, it goes to on_message so
  // the protocol can refuse it (a late READY after rollback).
  std::pair<ConnectionPtr, pb::Envelope> req;
  {
    std::lock_guard lock(m);
    ASSERT_EQ(unanswered.size(), 1u);
    req = unanswered[0];
  }
  pb::Ready ready;
  ready.set_flow_id(9);
  ASSERT_TRUE(req.first->respond(req.second, wire::wrap(ready)).ok());
  auto fut = late.get_future();
  ASSERT_EQ(fut.wait_for(3s), std::future_status::ready);
  auto e = fut.get();
  EXPECT_EQ(e.type(), pb::TYPE_READY);
  EXPECT_EQ(e.txn(), req.second.txn());
}

TEST_F(HandoffChannel, RequestWithoutConnectionFailsAtOnce) {
  // Nothing listens on this port: the client keeps retrying in the background.
  auto probe = start_server();
  const uint16_t port = probe->local_endpoint().port();
  probe->stop();
  std::this_thread::sleep_for(50ms);
  auto client = start_client(port);
  const auto start = std::chrono::steady_clock::now();
  auto r = call(*client, wire::wrap(offer_for(3)), 5s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ENOTCONN) << r.error().to_string();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s) << "must not wait for a connection";
}

TEST_F(HandoffChannel, InvalidRequestIsNotSent) {
  auto server = start_server();
  auto client = start_client(server->local_endpoint().port());
  ASSERT_TRUE(wait_until([&] { return client->connected(); }));
  pb::Offer bad = offer_for(4);
  bad.mutable_flow()->mutable_client()->set_port(0);
  auto r = call(*client, wire::wrap(bad));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, EINVAL) << r.error().to_string();
  pb::Go go;
  go.set_flow_id(4);
  auto st = client->connection()->send(wire::wrap(go, 0));  // txn 0
  EXPECT_FALSE(st.ok());
  EXPECT_TRUE(client->connected());
}

TEST_F(HandoffChannel, PeerWithCertificateFromAnotherCaIsRefused) {
  auto server = start_server();
  const uint16_t port = server->local_endpoint().port();
  // It trusts our CA (the CA certificate is public) but its own certificate
  // was signed by another CA.
  auto ctx = make_tls_context({pki_.dir() + "/ca.crt", other_pki_.dir() + "/rgw-1.crt",
                               other_pki_.dir() + "/rgw-1.key"},
                              Role::kClient);
  ASSERT_TRUE(ctx.ok()) << ctx.error().to_string();
  asio::io_context io;
  auto raw = raw_connect(io, **ctx, port);
  EXPECT_TRUE(raw.handshake_ec || raw_is_closed(raw)) << "forged peer got a working connection";
  ASSERT_TRUE(wait_until([&] { return server->handshake_failures() == 1; }));
  EXPECT_EQ(server->established(), 0u);
  EXPECT_TRUE(wait_until([&] { return log_.contains("refused"); })) << "the server must say why";

  // The server keeps serving everyone else.
  auto good = start_client(port);
  ASSERT_TRUE(wait_until([&] { return good->connected(); }));
  auto r = call(*good, wire::wrap(offer_for(1)));
  ASSERT_TRUE(r.ok()) << r.error().to_string();
}

TEST_F(HandoffChannel, ServerWithCertificateFromAnotherCaIsRefused) {
  ServerOptions opts;
  opts.listen = tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0);
  opts.log = log_.logger("impostor");
  auto impostor = Server::create(io_, context("osd-1", Role::kServer, other_pki_), opts);
  ASSERT_TRUE(impostor.ok());
  (*impostor)->start();
  servers_.push_back(*impostor);
  PeerOptions copts;
  copts.backoff = {10ms, 50ms, 2.0, 0.2};
  auto client = start_client((*impostor)->local_endpoint().port(), "rgw-1", nullptr, copts);
  ASSERT_TRUE(wait_until([&] { return client->attempts() >= 3; }));
  EXPECT_EQ(client->connects(), 0u);
  EXPECT_FALSE(client->connected());
  EXPECT_TRUE(wait_until([&] { return log_.contains("certificate verify failed"); })) << "the client must say why";
}

TEST_F(HandoffChannel, ServerWithAnotherHostIdIsRefused) {
  auto server = start_server();  // osd-1
  PeerOptions opts;
  opts.peer_host_id = "osd-2";  // we meant to reach osd-2
  opts.backoff = {10ms, 50ms, 2.0, 0.2};
  auto client = start_client(server->local_endpoint().port(), "rgw-1", nullptr, opts);
  ASSERT_TRUE(wait_until([&] { return client->attempts() >= 3; }));
  EXPECT_EQ(client->connects(), 0u);
  EXPECT_TRUE(wait_until([&] { return log_.contains("certificate verify failed"); })) << "hostname mismatch must fail verification";
}

TEST_F(HandoffChannel, PeerWithoutCertificateIsRefused) {
  auto server = start_server();
  const uint16_t port = server->local_endpoint().port();
  asio::ssl::context ctx(asio::ssl::context::tls_client);
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_3_VERSION);
  ctx.load_verify_file(pki_.dir() + "/ca.crt");
  ctx.set_verify_mode(asio::ssl::verify_peer);
  asio::io_context io;
  auto raw = raw_connect(io, ctx, port);
  // In TLS 1.3 the client finishes its handshake before the server has judged
  // its (missing) certificate; the server's alert arrives right after.
  EXPECT_TRUE(raw.handshake_ec || raw_is_closed(raw)) << "peer without certificate got a working connection";
  ASSERT_TRUE(wait_until([&] { return server->handshake_failures() == 1; }));
  EXPECT_TRUE(wait_until([&] { return log_.contains("certificate"); })) << "the server must say why";
  EXPECT_EQ(server->established(), 0u);

  auto good = start_client(port);
  ASSERT_TRUE(wait_until([&] { return good->connected(); }));
  ASSERT_TRUE(call(*good, wire::wrap(offer_for(2))).ok());
}

TEST_F(HandoffChannel, Tls12IsRefused) {
  auto server = start_server();
  const uint16_t port = server->local_endpoint().port();
  // A TLS 1.2 peer with a perfectly good certificate.
  asio::ssl::context ctx(asio::ssl::context::tls_client);
  SSL_CTX_set_max_proto_version(ctx.native_handle(), TLS1_2_VERSION);
  ctx.load_verify_file(pki_.dir() + "/ca.crt");
  ctx.use_certificate_chain_file(pki_.dir() + "/rgw-1.crt");
  ctx.use_private_key_file(pki_.dir() + "/rgw-1.key", asio::ssl::context::pem);
  ctx.set_verify_mode(asio::ssl::verify_peer);
  asio::io_context io;
  auto raw = raw_connect(io, ctx, port);
  EXPECT_TRUE(raw.handshake_ec) << "TLS 1.2 handshake succeeded";
  ASSERT_TRUE(wait_until([&] { return server->handshake_failures() == 1; }));
  EXPECT_TRUE(wait_until([&] { return log_.contains("unsupported protocol"); })) << "the server must say why";

  // And the other way: our client refuses a server that offers TLS 1.2 only.
  asio::ssl::context sctx(asio::ssl::context::tls_server);
  SSL_CTX_set_max_proto_version(sctx.native_handle(), TLS1_2_VERSION);
  sctx.use_certificate_chain_file(pki_.dir() + "/osd-1.crt");
  sctx.use_private_key_file(pki_.dir() + "/osd-1.key", asio::ssl::context::pem);
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  PeerOptions opts;
  opts.backoff = {20ms, 50ms, 2.0, 0.2};
  auto client = start_client(acceptor.local_endpoint().port(), "rgw-1", nullptr, opts);
  tcp::socket s(io);
  acceptor.accept(s);
  asio::ssl::stream<tcp::socket&> old_server(s, sctx);
  boost::system::error_code ec;
  old_server.handshake(asio::ssl::stream_base::server, ec);
  EXPECT_TRUE(ec) << "a TLS 1.3-only client completed a TLS 1.2 handshake";
  EXPECT_TRUE(wait_until([&] { return log_.contains("TLS handshake"); }));
  EXPECT_EQ(client->connects(), 0u);
}

TEST_F(HandoffChannel, PlaintextAndSilentPeersAreDropped) {
  ServerOptions opts;
  opts.handshake_timeout = 300ms;
  auto server = start_server(0, opts);
  const auto at = server->local_endpoint();
  asio::io_context io;
  auto read_until_closed = [](tcp::socket& s) {
    timeval tv{5, 0};
    setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::array<char, 512> buf;
    boost::system::error_code ec;
    for (int i = 0; i < 100 && !ec; ++i) s.read_some(asio::buffer(buf), ec);
    return ec == asio::error::eof || ec == asio::error::connection_reset;
  };
  // A plaintext peer speaking the frame format directly: refused, never parsed.
  tcp::socket plain(io);
  plain.connect(at);
  pb::Envelope e = wire::wrap(offer_for(1), 1);
  e.set_seq(1);
  auto frame = wire::encode_frame(e);
  ASSERT_TRUE(frame.ok());
  asio::write(plain, asio::buffer(*frame));
  EXPECT_TRUE(read_until_closed(plain)) << "a plaintext peer was not dropped";
  // A peer that connects and never speaks: dropped after the handshake timeout.
  const auto start = std::chrono::steady_clock::now();
  tcp::socket silent(io);
  silent.connect(at);
  EXPECT_TRUE(read_until_closed(silent)) << "a silent peer kept its slot";
  EXPECT_GE(std::chrono::steady_clock::now() - start, 250ms);
  EXPECT_TRUE(wait_until([&] { return server->handshake_failures() == 2; }));
  EXPECT_TRUE(log_.contains("wrong version number")) << "the server must say why";
  EXPECT_TRUE(log_.contains("no TLS handshake within 300 ms")) << "the server must say why";
  {
    std::lock_guard lock(mu_);
    EXPECT_TRUE(served_peers_.empty()) << "an unauthenticated frame reached the handler";
  }
  auto good = start_client(at.port());
  ASSERT_TRUE(wait_until([&] { return good->connected(); }));
  ASSERT_TRUE(call(*good, wire::wrap(offer_for(2))).ok());
}

TEST_F(HandoffChannel, UnwantedHostIdIsRefusedByTheServer) {
  ServerOptions opts;
  opts.accept_peer = [](const std::string& id) { return id == "rgw-2"; };
  auto server = start_server(0, opts);
  const uint16_t port = server->local_endpoint().port();
  auto unwanted = start_client(port, "rgw-1");
  ASSERT_TRUE(wait_until([&] { return server->handshake_failures() >= 1; }));
  EXPECT_TRUE(wait_until([&] { return log_.contains("rgw-1 is not allowed"); }));
  // Its handshakes succeed but it is dropped at once: it must still back off,
  // not retry at the initial delay forever.
  ASSERT_TRUE(wait_until([&] { return unwanted->delays().size() >= 3; }));
  const auto d = unwanted->delays();
  EXPECT_GT(d[2], d[0]) << "no backoff for a peer that is dropped after the handshake";
  auto wanted = start_client(port, "rgw-2");
  ASSERT_TRUE(wait_until([&] { return wanted->connected(); }));
  ASSERT_TRUE(call(*wanted, wire::wrap(offer_for(6))).ok());
  EXPECT_EQ(server->connection("rgw-1"), nullptr);
}

TEST_F(HandoffChannel, ReconnectsWithBackoffAfterServerRestart) {
  auto server = start_server();
  const uint16_t port = server->local_endpoint().port();
  PeerOptions opts;
  opts.backoff = {20ms, 300ms, 2.0, 0.2};
  opts.backoff_seed = 42;
  auto client = start_client(port, "rgw-1", nullptr, opts);
  ASSERT_TRUE(wait_until([&] { return client->connected(); }));
  ASSERT_TRUE(call(*client, wire::wrap(offer_for(1))).ok());

  server->stop();
  ASSERT_TRUE(wait_until([&] { return !client->connected(); }));
  auto r = call(*client, wire::wrap(offer_for(2)));
  EXPECT_EQ(r.error().code, ENOTCONN);
  std::this_thread::sleep_for(800ms);  // several refused attempts
  auto restarted = start_server(port);
  ASSERT_TRUE(restarted) << "could not listen on the same port again";
  ASSERT_TRUE(wait_until([&] { return client->connected(); }, 5s));
  EXPECT_EQ(client->connects(), 2u);
  ASSERT_TRUE(call(*client, wire::wrap(offer_for(3))).ok());

  // The delays grew (x2 minus at most 20% jitter) and stayed under the cap.
  const auto delays = client->delays();
  ASSERT_GE(delays.size(), 4u);
  for (size_t i = 0; i + 1 < delays.size() && delays[i + 1] < 240ms; ++i)
    EXPECT_GT(delays[i + 1], delays[i]) << "delay " << i + 1;
  for (auto d : delays) {
    EXPECT_LE(d, 300ms);
    EXPECT_GE(d, 16ms);
  }
  EXPECT_LE(client->attempts(), delays.size() + 2) << "attempts without a delay: no backoff";
}

TEST_F(HandoffChannel, CleanShutdownIsSeenByThePeer) {
  std::promise<Error> closed;
  ServerOptions opts;
  opts.handlers.on_close = [&](const ConnectionPtr&, const Error& why) { closed.set_value(why); };
  auto server = start_server(0, opts);
  auto client = start_client(server->local_endpoint().port());
  ASSERT_TRUE(wait_until([&] { return client->connected() && server->connection_count() == 1; }));
  client->stop();
  auto fut = closed.get_future();
  ASSERT_EQ(fut.wait_for(3s), std::future_status::ready);
  // "closed the connection" = close_notify received, not a reset or truncation.
  EXPECT_NE(fut.get().message.find("closed the connection"), std::string::npos);
  ASSERT_TRUE(wait_until([&] { return server->connection_count() == 0; }));
}

// An authenticated peer that misbehaves on the wire loses its connection;
// the server keeps serving the others.
class HandoffChannelBadFrames : public HandoffChannel {
 protected:
  // An authenticated peer (rgw-2) on a raw TLS connection to a new server.
  RawPeer authenticated_raw_peer(asio::io_context& io, uint16_t& port) {
    auto server = start_server();
    port = server->local_endpoint().port();
    auto ctx = make_tls_context(TlsIdentity::from_pki_dir(pki_.dir(), "rgw-2"), Role::kClient);
    EXPECT_TRUE(ctx.ok());
    if (!ctx.ok()) return {};
    auto raw = raw_connect(io, **ctx, port);
    raw.ctx = *ctx;
    EXPECT_FALSE(raw.handshake_ec) << raw.handshake_ec.message();
    return raw;
  }
  void send_raw_and_expect_close(const std::vector<std::vector<uint8_t>>& frames, const std::string& why) {
    asio::io_context io;
    uint16_t port = 0;
    auto raw = authenticated_raw_peer(io, port);
    ASSERT_TRUE(raw.stream && !raw.handshake_ec);
    for (const auto& f : frames) asio::write(*raw.stream, asio::buffer(f));
    EXPECT_TRUE(raw_is_closed(raw)) << "server kept a misbehaving peer";
    EXPECT_TRUE(wait_until([&] { return log_.contains(why); })) << why;
    {
      std::lock_guard lock(mu_);  // the server's handler takes it too
      EXPECT_LE(served_peers_.size(), 1u);
    }

    auto good = start_client(port);
    ASSERT_TRUE(wait_until([&] { return good->connected(); }));
    ASSERT_TRUE(call(*good, wire::wrap(offer_for(8))).ok());
  }
  static std::vector<uint8_t> frame(uint64_t seq, uint64_t txn) {
    pb::Envelope e = wire::wrap(offer_for(seq), txn);
    e.set_seq(seq);
    return *wire::encode_frame(e);
  }
};

TEST_F(HandoffChannelBadFrames, ReplayedFrameClosesTheConnection) {
  auto f = frame(1, 1);
  send_raw_and_expect_close({f, f}, "replayed");
}

TEST_F(HandoffChannelBadFrames, OversizedFrameClosesTheConnection) {
  send_raw_and_expect_close({{0x7f, 0xff, 0xff, 0xff}}, "exceeds the limit");
}

TEST_F(HandoffChannelBadFrames, ForgedVersionClosesTheConnection) {
  pb::Envelope e = wire::wrap(offer_for(1), 1);
  e.set_seq(1);
  e.set_version(wire::kProtocolVersion + 1);
  std::string body = e.SerializeAsString();
  std::vector<uint8_t> f{0, 0, static_cast<uint8_t>(body.size() >> 8), static_cast<uint8_t>(body.size())};
  f.insert(f.end(), body.begin(), body.end());
  send_raw_and_expect_close({f}, "version");
}

// Framing does not depend on how the bytes arrive: two frames in one TLS
// record, then one frame cut into three records (inside its header too).
// Each OFFER is answered with its own READY; the connection stays up.
TEST_F(HandoffChannelBadFrames, FramesSplitOrJoinedAcrossRecordsAllArrive) {
  asio::io_context io;
  uint16_t port = 0;
  auto raw = authenticated_raw_peer(io, port);
  ASSERT_TRUE(raw.stream && !raw.handshake_ec);
  auto joined = frame(1, 11);
  auto second = frame(2, 12);
  joined.insert(joined.end(), second.begin(), second.end());
  asio::write(*raw.stream, asio::buffer(joined));
  const auto third = frame(3, 13);
  asio::write(*raw.stream, asio::buffer(third.data(), 2));
  std::this_thread::sleep_for(20ms);
  asio::write(*raw.stream, asio::buffer(third.data() + 2, 10));
  std::this_thread::sleep_for(20ms);
  asio::write(*raw.stream, asio::buffer(third.data() + 12, third.size() - 12));

  // Three READYs, in order, each answering its OFFER's txn.
  std::vector<uint8_t> in;
  std::vector<uint64_t> answered;
  boost::system::error_code ec;
  timeval tv{3, 0};
  setsockopt(raw.sock()->native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  while (answered.size() < 3) {
    std::vector<uint8_t> buf(4096);
    const size_t n = raw.stream->read_some(asio::buffer(buf), ec);
    ASSERT_FALSE(ec) << ec.message() << " after " << answered.size() << " answers";
    in.insert(in.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
    while (in.size() >= wire::kFrameHeaderBytes) {
      auto len = wire::decode_frame_length(std::span(in.data(), wire::kFrameHeaderBytes));
      ASSERT_TRUE(len.ok());
      if (in.size() < wire::kFrameHeaderBytes + *len) break;
      auto e = wire::decode_envelope(std::span(in.data() + wire::kFrameHeaderBytes, *len));
      ASSERT_TRUE(e.ok()) << e.error().to_string();
      EXPECT_EQ(e->type(), pb::TYPE_READY);
      answered.push_back(e->txn());
      in.erase(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(wire::kFrameHeaderBytes + *len));
    }
  }
  EXPECT_EQ(answered, (std::vector<uint64_t>{11, 12, 13}));
  EXPECT_FALSE(log_.contains("closed")) << "the connection was dropped";
}

TEST(HandoffBackoff, GrowsWithJitterUpToTheCap) {
  Backoff b({100ms, 1000ms, 2.0, 0.25}, 7);
  const std::vector<int> base = {100, 200, 400, 800, 1000, 1000, 1000};
  for (int expected : base) {
    const auto d = b.next().count();
    EXPECT_LE(d, expected);
    EXPECT_GE(d, expected * 3 / 4);
  }
  b.reset();
  EXPECT_LE(b.next().count(), 100);
  // Two hosts with different seeds do not retry in lockstep.
  Backoff x({100ms, 1000ms, 2.0, 0.5}, 1), y({100ms, 1000ms, 2.0, 0.5}, 2);
  int same = 0;
  for (int i = 0; i < 10; ++i) same += x.next() == y.next();
  EXPECT_LT(same, 10);
}

}  // namespace
}  // namespace xo::handoff::channel
