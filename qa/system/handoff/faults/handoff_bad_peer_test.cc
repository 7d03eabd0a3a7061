// Bad input to a live target at lab level (issue 5): a peer process talks to
// backend0's xo-testserver control port (mutual TLS 1.3) from the lab's
// client namespace and sends what a broken or hostile cluster host could:
// oversized (frame header and snapshot), forged, garbage, truncated and
// replayed frames; OFFERs for
// another origin than its certificate names or with a snapshot that does not
// decode; and handshakes without the right certificate. The unit tests in
// common/handoff/test check the decoder and the channel in one process; here
// the question is what the running node does: it drops only that
// connection, answers forged OFFERs with REFUSE, keeps no state, stays up, and
// the real frontend's offloads keep working throughout.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <thread>

#include "common/base/testing.h"
#include "common/handoff/wire/frame.h"
#include "common/handoff/wire/limits.h"
#include "common/handoff/wire/messages.h"
#include "qa/lab/netns.h"
#include "qa/lab/sockets.h"
#include "qa/server/client.h"
#include "qa/server/content.h"
#include "qa/system/handoff/faults/fault_support.h"
#include "qa/system/handoff/handoff_lab.h"

namespace xo::handoff::faulttest {
namespace {

using namespace std::chrono_literals;
using labtest::OffloadLab;

constexpr uint16_t kControlPort = 7700;

struct Identity {
  std::string ca_file, cert_file, key_file;  // cert/key empty: no client certificate
};

// One TLS 1.3 client connection to a control port, driven byte by byte.
class RawPeer {
 public:
  ~RawPeer() {
    if (ssl_) SSL_free(ssl_);
    if (ctx_) SSL_CTX_free(ctx_);
  }
  RawPeer() = default;
  RawPeer(const RawPeer&) = delete;
  RawPeer& operator=(const RawPeer&) = delete;

  // Connects from `ns` and runs the handshake. The server's certificate is
  // checked against id.ca_file (so a failure is the server's verdict on us).
  Status connect(const std::string& ns, const std::string& ip, uint16_t port, const Identity& id) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    if (!ctx_) return error("SSL_CTX_new");
    SSL_CTX_set_min_proto_version(ctx_, TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(ctx_, TLS1_3_VERSION);
    if (SSL_CTX_load_verify_locations(ctx_, id.ca_file.c_str(), nullptr) != 1) return error("load CA " + id.ca_file);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    if (!id.cert_file.empty()) {
      if (SSL_CTX_use_certificate_chain_file(ctx_, id.cert_file.c_str()) != 1) return error("load " + id.cert_file);
      if (SSL_CTX_use_PrivateKey_file(ctx_, id.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
        return error("load " + id.key_file);
    }
    XO_ASSIGN_OR_RETURN(fd_, lab::connect_from(ns, ip, port, std::chrono::seconds(3)));  // every read and write is bounded
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_.get());
    if (SSL_connect(ssl_) != 1) return error("handshake failed", ECONNREFUSED);
    return {};
  }

  Status write(const std::vector<uint8_t>& bytes) {
    if (SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size())) != static_cast<int>(bytes.size()))
      return error("SSL_write failed", EPIPE);
    return {};
  }
  Status send(pb::Envelope e) {
    e.set_seq(++seq_);
    XO_ASSIGN_OR_RETURN(auto frame, wire::encode_frame(e));
    last_frame_ = frame;
    return write(frame);
  }
  const std::vector<uint8_t>& last_frame() const { return last_frame_; }
  void half_close() { ::shutdown(fd_.get(), SHUT_WR); }

  // Reads exactly n bytes; ECONNRESET/EPIPE when the server closed, ETIMEDOUT
  // when nothing came for 3 s.
  Result<std::vector<uint8_t>> read_exactly(size_t n) {
    std::vector<uint8_t> out(n);
    size_t got = 0;
    while (got < n) {
      int r = SSL_read(ssl_, out.data() + got, static_cast<int>(n - got));
      if (r > 0) {
        got += static_cast<size_t>(r);
        continue;
      }
      int err = SSL_get_error(ssl_, r);
      if ((err == SSL_ERROR_WANT_READ || err == SSL_ERROR_SYSCALL) && (errno == EAGAIN || errno == EWOULDBLOCK))
        return error("nothing from the server in 3 s", ETIMEDOUT);
      return error("the server closed the connection", EPIPE);
    }
    return out;
  }
  Result<pb::Envelope> read_envelope() {
    XO_ASSIGN_OR_RETURN(auto head, read_exactly(wire::kFrameHeaderBytes));
    XO_ASSIGN_OR_RETURN(uint32_t len, wire::decode_frame_length(head));
    XO_ASSIGN_OR_RETURN(auto body, read_exactly(len));
    return wire::decode_envelope(body);
  }
  // True when the server ends the connection within 3 s (EOF, reset or an
  // alert); false when it is still open.
  bool closed_by_server() {
    uint8_t b;
    int r = SSL_read(ssl_, &b, 1);
    if (r > 0) return false;
    int err = SSL_get_error(ssl_, r);
    return !((err == SSL_ERROR_WANT_READ || err == SSL_ERROR_SYSCALL) && (errno == EAGAIN || errno == EWOULDBLOCK));
  }

 private:
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  UniqueFd fd_;
  uint64_t seq_ = 0;
  std::vector<uint8_t> last_frame_;
};

// A frame around arbitrary body bytes (the sender's encoder refuses to
// produce invalid frames, a hostile peer does not).
std::vector<uint8_t> raw_frame(const std::string& body) {
  const uint32_t n = static_cast<uint32_t>(body.size());
  std::string f;
  f.reserve(4 + body.size());
  for (int shift = 24; shift >= 0; shift -= 8) f.push_back(static_cast<char>((n >> shift) & 0xff));
  f += body;
  return std::vector<uint8_t>(f.begin(), f.end());
}

pb::Offer offer(uint64_t flow_id, const std::string& origin, const std::string& snapshot) {
  pb::Offer o;
  auto* f = o.mutable_flow();
  const uint8_t client[4] = {198, 18, 0, 2}, service[4] = {198, 18, 0, 100};
  f->mutable_client()->set_ip(std::string(reinterpret_cast<const char*>(client), 4));
  f->mutable_client()->set_port(45678);
  f->mutable_service()->set_ip(std::string(reinterpret_cast<const char*>(service), 4));
  f->mutable_service()->set_port(80);
  o.set_flow_id(flow_id);
  o.set_tcp_snapshot(snapshot);
  o.set_origin_host(origin);
  o.set_payload("GET /data/100/1");
  o.set_ready_timeout_ms(200);
  return o;
}

class HandoffBadPeer : public ::testing::Test {
 protected:
  void SetUp() override {
    ::signal(SIGPIPE, SIG_IGN);  // a peer closing on us is an outcome to check, not a crash
    auto up = OffloadLab::up({.backends = 1, .offload = {"/data/1=backend0"}});
    ASSERT_TRUE(up.ok()) << up.error().to_string();
    lab_ = std::move(*up);
    auto pid = server_pid(ns("backend0"));
    ASSERT_TRUE(pid.ok()) << pid.error().to_string();
    backend_pid_ = *pid;
    auto argv = cmdline_of(backend_pid_);
    ASSERT_TRUE(argv.ok()) << argv.error().to_string();
    pki_ = flag_value(*argv, "--pki");
    ASSERT_FALSE(pki_.empty());
  }

  const std::string& ns(const std::string& host) const { return lab_->lab().find(host)->ns; }
  Identity identity(const std::string& dir, const std::string& host) const {
    return {pki_ + "/ca.crt", dir + "/" + host + ".crt", dir + "/" + host + ".key"};
  }
  // A connection to backend0's control port from the client namespace.
  Status Connect(RawPeer& peer, const Identity& id) {
    return peer.connect(ns("client"), lab_->lab().backend(0).ip, kControlPort, id);
  }

  // The node is alive, holds no state, and the real frontend still offloads.
  void ExpectNodeUnharmed() {
    EXPECT_TRUE(alive(backend_pid_)) << "backend0's xo-testserver died";
    auto entries = lab_->steering_entries("backend0");
    ASSERT_TRUE(entries.ok()) << entries.error().to_string();
    EXPECT_EQ(*entries, 0u) << "backend0 kept steering entries";
    const std::string ctl = ":" + std::to_string(kControlPort);
    auto rows = lab::connection_sockets(ns("backend0"));
    ASSERT_TRUE(rows.ok());
    for (const auto& r : *rows)
      EXPECT_TRUE(r.local.find(ctl) != std::string::npos || r.peer.find(ctl) != std::string::npos)
          << "backend0 holds a client connection: " << r.local << " " << r.peer;
    std::optional<testserver::Client> client;
    {
      auto scope = lab::NetnsScope::enter(ns("client"));
      ASSERT_TRUE(scope.ok());
      auto c = testserver::Client::connect(lab_->service_ip(), 80, 20);
      ASSERT_TRUE(c.ok()) << c.error().to_string();
      client.emplace(std::move(*c));
    }
    auto r = client->get("/data/100000/7");
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->header("x-served-by"), "backend0") << "the real frontend's offload no longer works";
    EXPECT_EQ(testserver::content_mismatch(7, 0, std::span(reinterpret_cast<const uint8_t*>(r->body.data()), r->body.size())),
              -1);
    EXPECT_EQ(r->body.size(), 100000u);
    // ... and it comes back to the frontend (before the lab is torn down).
    bool back = false;
    for (int i = 0; i < 100 && !back; ++i) {
      for (const auto& l : lab_->records("frontend")) back |= l.rfind("record take_back", 0) == 0;
      if (!back) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_TRUE(back) << "the offloaded connection did not come back to the frontend";
  }

  std::unique_ptr<OffloadLab> lab_;
  pid_t backend_pid_ = -1;
  std::string pki_;
};

// Each bad frame, on its own authenticated connection ("frontend"'s own
// certificate: a confused or compromised peer), ends that connection only.
TEST_F(HandoffBadPeer, BadFramesEndOnlyThatConnection) {
  const Identity fe = identity(pki_, "frontend");
  struct Case {
    const char* what;
    std::function<Status(RawPeer&)> send;
  };
  pb::Envelope forged = wire::wrap(pb::Go(), 1);  // says OFFER, carries GO
  forged.mutable_go()->set_flow_id(5);
  forged.set_type(pb::TYPE_OFFER);
  forged.set_seq(1);
  pb::Envelope other_version = wire::wrap(offer(6, "frontend", "x"), 1);
  other_version.set_version(wire::kProtocolVersion + 1);
  other_version.set_seq(1);
  const std::vector<Case> cases = {
      {"oversized length (4 GiB - 1)", [](RawPeer& p) { return p.write({0xff, 0xff, 0xff, 0xff}); }},
      {"zero length", [](RawPeer& p) { return p.write({0, 0, 0, 0}); }},
      {"forged type", [&](RawPeer& p) { return p.write(raw_frame(forged.SerializeAsString())); }},
      {"another protocol version", [&](RawPeer& p) { return p.write(raw_frame(other_version.SerializeAsString())); }},
      {"garbage body", [](RawPeer& p) { return p.write(raw_frame(std::string(300, '\xa5'))); }},
      // Within the frame limit (64 MiB), above the snapshot's (48 MiB): read, then refused by validation.
      {"snapshot above its limit",
       [](RawPeer& p) {
         pb::Envelope e = wire::wrap(offer(14, "frontend", std::string(wire::kMaxTcpSnapshotBytes + 1, 's')), 1);
         e.set_seq(1);
         return p.write(raw_frame(e.SerializeAsString()));
       }},
      {"sequence not starting at 1",
       [](RawPeer& p) {
         pb::QueryCommitted q;
         q.set_flow_id(9);
         pb::Envelope e = wire::wrap(q, 1);
         e.set_seq(7);
         auto f = wire::encode_frame(e);
         return f.ok() ? p.write(*f) : Status(f.error());
       }},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    RawPeer peer;
    ASSERT_OK(Connect(peer, fe));
    ASSERT_OK(c.send(peer));
    EXPECT_TRUE(peer.closed_by_server()) << "backend0 kept a connection after: " << c.what;
  }

  {
    SCOPED_TRACE("replayed frame");
    RawPeer peer;
    ASSERT_OK(Connect(peer, fe));
    pb::QueryCommitted q;
    q.set_flow_id(12345);
    ASSERT_OK(peer.send(wire::wrap(q, 1)));
    // A well-formed request is answered ("not committed": backend0 offered nothing)...
    ASSERT_OK_AND(auto answer, peer.read_envelope());
    EXPECT_EQ(answer.type(), pb::TYPE_COMMITTED);
    EXPECT_FALSE(answer.committed().committed());
    // ... the same bytes again are a replay.
    ASSERT_OK(peer.write(peer.last_frame()));
    EXPECT_TRUE(peer.closed_by_server()) << "a replayed frame was accepted";
  }
  {
    SCOPED_TRACE("truncated frame");
    RawPeer peer;
    ASSERT_OK(Connect(peer, fe));
    auto f = wire::encode_frame([] {
      pb::Envelope e = wire::wrap(offer(13, "frontend", std::string(2000, 's')), 1);
      e.set_seq(1);
      return e;
    }());
    ASSERT_TRUE(f.ok());
    f->resize(f->size() / 2);
    ASSERT_OK(peer.write(*f));
    EXPECT_FALSE(peer.closed_by_server()) << "half a frame is not an error yet (more may come)";
    peer.half_close();  // ... but the peer ends it there
    EXPECT_TRUE(peer.closed_by_server()) << "backend0 kept a connection that ended mid-frame";
  }
  ExpectNodeUnharmed();
}

// OFFERs that decode but must not be taken: another origin than the
// certificate's host, a snapshot that does not decode. REFUSE, nothing kept,
// the connection stays usable.
TEST_F(HandoffBadPeer, ForgedOffersAreRefusedAndLeaveNothing) {
  RawPeer peer;
  ASSERT_OK(Connect(peer, identity(pki_, "frontend")));
  ASSERT_OK(peer.send(wire::wrap(offer(21, "backend0", std::string(64, 's')), 1)));
  ASSERT_OK_AND(auto a1, peer.read_envelope());
  EXPECT_EQ(a1.type(), pb::TYPE_REFUSE) << a1.ShortDebugString();
  EXPECT_EQ(a1.txn(), 1u);
  EXPECT_EQ(a1.refuse().reason(), pb::Refuse::BAD_REQUEST) << a1.ShortDebugString();
  ASSERT_OK(peer.send(wire::wrap(offer(22, "frontend", std::string(64, 's')), 2)));
  ASSERT_OK_AND(auto a2, peer.read_envelope());
  EXPECT_EQ(a2.type(), pb::TYPE_REFUSE) << a2.ShortDebugString();
  EXPECT_EQ(a2.txn(), 2u);
  EXPECT_EQ(a2.refuse().reason(), pb::Refuse::UNSUPPORTED) << a2.ShortDebugString();  // snapshot does not decode
  // GO for a flow nobody offered, and CLOSED for a flow not offloaded from
  // here to the sender, are ignored, not fatal.
  pb::Go go;
  go.set_flow_id(22);
  ASSERT_OK(peer.send(wire::wrap(go, 2)));
  pb::Closed closed;
  closed.set_flow_id(23);
  ASSERT_OK(peer.send(wire::wrap(closed, 3)));
  EXPECT_FALSE(peer.closed_by_server());
  ExpectNodeUnharmed();
}

// Handshakes that must fail: a certificate from another CA, none at all, and
// a valid one for a host that is not backend0's peer.
TEST_F(HandoffBadPeer, PeersWithoutTheRightCertificateAreTurnedAway) {
  const std::string script = XO_PKI_SCRIPT;
  const std::string other = pki_ + "-other-ca";
  ASSERT_EQ(std::system((script + " init '" + other + "' >/dev/null && " + script + " host '" + other +
                         "' frontend >/dev/null")
                            .c_str()),
            0);
  ASSERT_EQ(std::system((script + " host '" + pki_ + "' intruder >/dev/null").c_str()), 0);
  struct Case {
    const char* what;
    Identity id;
  };
  const std::vector<Case> cases = {
      {"certificate from another CA", identity(other, "frontend")},
      {"no client certificate", {pki_ + "/ca.crt", "", ""}},
      {"a cluster host that is not a peer", identity(pki_, "intruder")},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    RawPeer peer;
    Status st = Connect(peer, c.id);
    // TLS 1.3: the client may finish its side before the server's verdict
    // arrives; then the verdict is the connection ending.
    if (st.ok()) {
      pb::QueryCommitted q;
      q.set_flow_id(1);
      (void)peer.send(wire::wrap(q, 1));
      EXPECT_TRUE(peer.closed_by_server()) << "backend0 talked to a peer with " << c.what;
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(other, ec);
  ExpectNodeUnharmed();
}

}  // namespace
}  // namespace xo::handoff::faulttest
