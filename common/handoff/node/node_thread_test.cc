// Node::executor(): offer() called on the Node's own thread starts there and
// then — the connection is frozen and the OFFER sent before offer() returns,
// and a `done` that needs no peer (served locally) runs before it returns
// too; called from another thread, offer() is posted and `done` runs later,
// on the Node's thread. Two Nodes in this process over the loopback of a
// private network namespace (test_env.cc; mutual TLS with a cluster CA made
// for the test), steering recorded by a fake backend: no
// packets are steered, so the moved connection carries no data here (the lab
// tests do that); what is checked is where and when the protocol runs.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include "common/handoff/node/node.h"
#include "common/handoff/test/pki.h"

namespace xo::handoff::node {
namespace {

using namespace std::chrono_literals;

// Records what the Node asks of its NIC; steers nothing.
class RecordingSteer final : public steer::SteerBackend {
 public:
  Status insert(const steer::SteerEntry& entry) override {
    std::lock_guard lock(mu_);
    entries_[entry.flow.to_string()] = entry;
    ++inserts_;
    return {};
  }
  Status remove(const steer::FlowKey& flow) override {
    std::lock_guard lock(mu_);
    if (entries_.erase(flow.to_string()) == 0) return error("no entry", ENOENT);
    return {};
  }
  Result<std::vector<steer::ListedEntry>> list() override {
    std::lock_guard lock(mu_);
    std::vector<steer::ListedEntry> out;
    for (const auto& [k, e] : entries_) out.push_back({e, {}});
    return out;
  }
  std::string name() const override { return "recording"; }
  int inserts() const {
    std::lock_guard lock(mu_);
    return inserts_;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, steer::SteerEntry> entries_;
  int inserts_ = 0;
};

// A connected loopback pair: the client end and the server end (offered).
struct LoopbackPair {
  UniqueFd client, server;
};

LoopbackPair loopback_pair() {
  LoopbackPair p;
  UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(listener.get(), 1) != 0 ||
      ::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&sa), &len) != 0)
    return p;
  p.client = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (::connect(p.client.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) return {};
  p.server = UniqueFd(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  return p;
}

// Runs `fn` on the Node's thread and waits for it.
void on_thread_of(Node& n, const std::function<void()>& fn) {
  std::promise<void> done;
  boost::asio::post(n.executor(), [&] {
    fn();
    done.set_value();
  });
  done.get_future().wait();
}

class NodeThreadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root: TCP_REPAIR (CAP_NET_ADMIN)";
    ASSERT_TRUE(pki_.ok()) << "qa/pki/xo-pki failed";
    // The target first: the frontend's config names its control endpoint.
    // (Its own connection back to the frontend is not needed here: the
    // frontend's connection to it carries the handoff.)
    const auto nowhere = boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 1);
    auto target = Node::create(config("osd", "127.0.0.2", "fe", nowhere, "127.0.0.1", target_steer_));
    ASSERT_TRUE(target.ok()) << target.error().to_string();
    target_ = std::move(*target);
    auto frontend =
        Node::create(config("fe", "127.0.0.1", "osd", target_->control_endpoint(), "127.0.0.2", frontend_steer_));
    ASSERT_TRUE(frontend.ok()) << frontend.error().to_string();
    frontend_ = std::move(*frontend);
    for (int i = 0; i < 500 && !frontend_->connected("osd"); ++i) std::this_thread::sleep_for(10ms);
    ASSERT_TRUE(frontend_->connected("osd"));
  }

  // `me` with data address `my_ip`, knowing one peer.
  NodeConfig config(const std::string& me, const std::string& my_ip, const std::string& peer,
                    boost::asio::ip::tcp::endpoint peer_control, const std::string& peer_ip, RecordingSteer& steer) {
    NodeConfig cfg;
    cfg.host_id = me;
    cfg.identity = channel::TlsIdentity::from_pki_dir(pki_.dir(), me);
    cfg.listen = boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0);
    Peer p;
    p.control = peer_control;
    p.data_ip4 = *steer::IpAddr::parse(peer_ip);
    cfg.peers[peer] = p;
    cfg.data_ip4 = *steer::IpAddr::parse(my_ip);
    cfg.steer = &steer;
    return cfg;
  }

  test::TempPki pki_{{"fe", "osd"}};
  RecordingSteer frontend_steer_, target_steer_;
  std::unique_ptr<Node> target_, frontend_;
};

TEST_F(NodeThreadTest, OfferOnTheNodesThreadFreezesAndSendsBeforeItReturns) {
  auto pair = loopback_pair();
  ASSERT_TRUE(pair.server);
  std::promise<AcceptedConnection> accepted;
  target_->set_accept_handler([&](AcceptedConnection c) { accepted.set_value(std::move(c)); });
  std::promise<OfferResult> result;
  std::thread::id done_thread;
  int blocks_when_offer_returned = -1;
  uint64_t offers_when_offer_returned = 0;
  on_thread_of(*frontend_, [&] {
    OfferRequest req;
    req.conn.socket = std::move(pair.server);
    req.payload = "plan";
    req.target_host = "osd";
    frontend_->offer(std::move(req), [&](OfferResult r) {
      done_thread = std::this_thread::get_id();
      result.set_value(std::move(r));
    });
    // Inline: the BLOCK pair is in and the OFFER counted (sent) already.
    offers_when_offer_returned = frontend_->counters().offers;
    auto entries = frontend_steer_.list();
    blocks_when_offer_returned = entries.ok() ? static_cast<int>(entries->size()) : -1;
  });
  EXPECT_EQ(offers_when_offer_returned, 1u);
  EXPECT_EQ(blocks_when_offer_returned, 2);  // ingress + egress BLOCK of the flow

  auto fut = result.get_future();
  ASSERT_EQ(fut.wait_for(5s), std::future_status::ready);
  OfferResult r = fut.get();
  EXPECT_EQ(r.outcome, OfferOutcome::kOffloaded) << (r.why ? r.why->to_string() : "");
  EXPECT_NE(done_thread, std::this_thread::get_id());
  auto acc = accepted.get_future();
  ASSERT_EQ(acc.wait_for(5s), std::future_status::ready);
  AcceptedConnection conn = acc.get();
  EXPECT_EQ(conn.payload, "plan");
  EXPECT_EQ(conn.flow.flow_id, r.flow.flow_id);
  target_->close(std::move(conn));
}

TEST_F(NodeThreadTest, ServedLocallyOnTheNodesThreadCompletesBeforeOfferReturns) {
  auto pair = loopback_pair();
  ASSERT_TRUE(pair.server);
  const int fd = pair.server.get();
  bool done_ran = false, done_before_return = false;
  OfferResult result;
  on_thread_of(*frontend_, [&] {
    OfferRequest req;
    req.conn.socket = std::move(pair.server);
    req.conn.unread = "GET / HTTP/1.1\r\n\r\n";
    req.target_host = "nobody";  // not a peer: served locally at once
    frontend_->offer(std::move(req), [&](OfferResult r) {
      done_ran = true;
      result = std::move(r);
    });
    done_before_return = done_ran;
  });
  EXPECT_TRUE(done_before_return);
  EXPECT_EQ(result.outcome, OfferOutcome::kServedLocally);
  EXPECT_EQ(result.conn.socket.get(), fd);  // the same socket back, untouched
  EXPECT_EQ(result.conn.unread, "GET / HTTP/1.1\r\n\r\n");
  EXPECT_EQ(frontend_steer_.inserts(), 0);
}

TEST_F(NodeThreadTest, OfferFromAnotherThreadIsPostedAndCompletesOnTheNodesThread) {
  auto pair = loopback_pair();
  ASSERT_TRUE(pair.server);
  // Hold the Node's thread: a posted offer cannot start before it is free.
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<std::thread::id> node_thread;
  boost::asio::post(frontend_->executor(), [&, released] {
    node_thread.set_value(std::this_thread::get_id());
    released.wait();
  });
  const auto node_tid = node_thread.get_future().get();
  std::promise<std::thread::id> done_thread;
  OfferRequest req;
  req.conn.socket = std::move(pair.server);
  req.target_host = "nobody";
  frontend_->offer(std::move(req), [&](OfferResult r) {
    EXPECT_EQ(r.outcome, OfferOutcome::kServedLocally);
    done_thread.set_value(std::this_thread::get_id());
  });
  auto fut = done_thread.get_future();
  EXPECT_EQ(fut.wait_for(50ms), std::future_status::timeout);  // not inline, not yet run
  release.set_value();
  ASSERT_EQ(fut.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(fut.get(), node_tid);
}

}  // namespace
}  // namespace xo::handoff::node
