// The state machines over the real control channel (mutual TLS 1.3 on
// loopback in the test's private network namespace): an offload commits end
// to end; a READY that comes after the origin's timeout is refused with ABORT
// and the target drops the flow without ever serving it.
#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <future>
#include <mutex>
#include <thread>

#include "common/handoff/channel/peer_client.h"
#include "common/handoff/channel/server.h"
#include "common/handoff/channel/tls_config.h"
#include "common/handoff/protocol/connection_link.h"
#include "common/handoff/protocol/commit_query.h"
#include "common/handoff/protocol/origin.h"
#include "common/handoff/protocol/return.h"
#include "common/handoff/protocol/target.h"
#include "common/handoff/test/pki.h"

namespace xo::handoff::protocol {
namespace {

using namespace std::chrono_literals;
namespace asio = boost::asio;
using channel::Role;
using channel::TlsIdentity;

struct SharedEvents {
  std::mutex mu;
  std::vector<std::string> list;
  void add(std::string e) {
    std::lock_guard lock(mu);
    list.push_back(std::move(e));
  }
  std::vector<std::string> get() {
    std::lock_guard lock(mu);
    return list;
  }
};

struct Flow : OriginFlow {
  explicit Flow(SharedEvents& e) : events(e) {}
  Result<FrozenState> freeze() override {
    events.add("origin:freeze");
    return FrozenState{"tcp", std::nullopt};
  }
  Status redirect(const std::string& t) override {
    events.add("origin:redirect:" + t);
    return {};
  }
  void release() override { events.add("origin:release"); }
  Status thaw() override {
    events.add("origin:thaw");
    return {};
  }
  SharedEvents& events;
};

struct TFlow : TargetFlow {
  TFlow(SharedEvents& e) : events(e) {}
  void serve(std::vector<std::string>) override { events.add("target:serve"); }
  void discard() override { events.add("target:discard"); }
  SharedEvents& events;
};

struct Factory : TargetFlowFactory {
  explicit Factory(SharedEvents& e) : events(e) {}
  std::variant<std::unique_ptr<TargetFlow>, Refusal> prepare(const pb::Offer&) override {
    std::this_thread::sleep_for(delay);  // a slow restore
    events.add("target:prepare");
    return std::make_unique<TFlow>(events);
  }
  SharedEvents& events;
  std::chrono::milliseconds delay{0};
};

struct Returning : ReturningFlow {
  explicit Returning(SharedEvents& e) : events(e) {}
  Result<ReturnState> freeze() override {
    events.add("target:freeze");
    return ReturnState{{"tcp", std::string("tls")}, "GET /2 HTTP/1.1\r\n\r\n"};
  }
  void release() override { events.add("target:release"); }
  Status thaw() override {
    events.add("target:thaw");
    return {};
  }
  SharedEvents& events;
};

struct Acceptor : ReturnAcceptor {
  explicit Acceptor(SharedEvents& e) : events(e) {}
  Status take_back(const pb::Return& r, const std::string& from) override {
    events.add("origin:take_back:" + from + ":" + r.client_bytes());
    return {};
  }
  SharedEvents& events;
};

struct NeverCommitted : CommitQuery {
  void query(const std::string&, uint64_t, std::function<void(Result<bool>)> done) override { done(false); }
};

class HandoffOverChannel : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(pki_.ok());
    io_thread_ = std::thread([this] { io_.run(); });
    target_thread_ = std::thread([this] { target_io_.run(); });
    targets_ = TargetHandoffs::create(target_io_.get_executor(), factory_, never_, target_counters_, {200ms});

    auto sctx = channel::make_tls_context(TlsIdentity::from_pki_dir(pki_.dir(), "osd-1"), Role::kServer);
    ASSERT_TRUE(sctx.ok());
    channel::ServerOptions so;
    so.listen = asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0);
    so.handlers.on_message = [this](const channel::ConnectionPtr& conn, pb::Envelope m) {
      targets_->on_message(std::make_shared<ConnectionLink>(conn), std::move(m));
    };
    auto server = channel::Server::create(io_, *sctx, so);
    ASSERT_TRUE(server.ok());
    server_ = *server;
    server_->start();

    auto cctx = channel::make_tls_context(TlsIdentity::from_pki_dir(pki_.dir(), "rgw-1"), Role::kClient);
    ASSERT_TRUE(cctx.ok());
    channel::PeerOptions po;
    po.peer_host_id = "osd-1";
    po.endpoint = server_->local_endpoint();
    po.handlers.on_message = [this](const channel::ConnectionPtr& conn, pb::Envelope m) {
      ConnectionLink link(conn);
      if (m.type() == pb::TYPE_READY) refuse_late_ready(link, m, origin_counters_);
      if (m.type() == pb::TYPE_QUERY_COMMITTED) (void)answer_query_committed(link, m, commits_);
      if (m.type() == pb::TYPE_RETURN) (void)accept_return(link, m, acceptor_, origin_counters_);
    };
    auto client = channel::PeerClient::create(io_, *cctx, po);
    ASSERT_TRUE(client.ok());
    client_ = *client;
    client_->start();
    for (int i = 0; i < 500 && !client_->connected(); ++i) std::this_thread::sleep_for(10ms);
    ASSERT_TRUE(client_->connected());
  }

  void TearDown() override {
    if (client_) client_->stop();
    if (server_) server_->stop();
    std::this_thread::sleep_for(50ms);
    work_.reset();
    target_work_.reset();
    io_.stop();
    target_io_.stop();
    if (io_thread_.joinable()) io_thread_.join();
    if (target_thread_.joinable()) target_thread_.join();
  }

  OriginResult offload(uint64_t flow_id, std::chrono::milliseconds ready_timeout) {
    pb::Flow flow;
    flow.mutable_client()->set_ip(std::string("\x7f\x00\x00\x01", 4));
    flow.mutable_client()->set_port(40000);
    flow.mutable_service()->set_ip(std::string("\x7f\x00\x00\x01", 4));
    flow.mutable_service()->set_port(443);
    std::promise<OriginResult> done;
    auto h = OriginHandoff::create(io_.get_executor(), std::make_shared<PeerClientLink>(client_, "osd-1"),
                                   std::make_unique<Flow>(events_), {flow, flow_id, "plan", "rgw-1", ready_timeout},
                                   commits_, origin_counters_, [&](const OriginResult& r) { done.set_value(r); });
    h->start();
    auto fut = done.get_future();
    if (fut.wait_for(5s) != std::future_status::ready) return {};
    return fut.get();
  }

  test::TempPki pki_{{"osd-1", "rgw-1"}};
  asio::io_context io_, target_io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_ = asio::make_work_guard(io_);
  asio::executor_work_guard<asio::io_context::executor_type> target_work_ = asio::make_work_guard(target_io_);
  std::thread io_thread_, target_thread_;
  SharedEvents events_;
  Factory factory_{events_};
  NeverCommitted never_;
  Acceptor acceptor_{events_};
  Counters origin_counters_, target_counters_;
  CommitLog commits_;
  std::shared_ptr<TargetHandoffs> targets_;
  std::shared_ptr<channel::Server> server_;
  std::shared_ptr<channel::PeerClient> client_;
};

TEST_F(HandoffOverChannel, OffloadCommitsEndToEnd) {
  auto r = offload(1, 1000ms);
  ASSERT_EQ(r.state, OriginState::kCommitted) << (r.why ? r.why->to_string() : "");
  std::fprintf(stderr, "trace: %s\n", r.trace.to_string().c_str());
  for (int i = 0; i < 200 && target_counters_.served == 0; ++i) std::this_thread::sleep_for(5ms);
  const auto ev = events_.get();
  EXPECT_EQ(ev, (std::vector<std::string>{"origin:freeze", "target:prepare", "origin:redirect:osd-1",
                                          "origin:release", "target:serve"}));
  EXPECT_TRUE(commits_.committed(1));
  EXPECT_EQ(target_counters_.served, 1u);
}

TEST_F(HandoffOverChannel, LateReadyIsRefusedAndTheTargetNeverServes) {
  factory_.delay = 300ms;  // READY comes long after the origin gave up
  auto r = offload(2, 100ms);
  ASSERT_EQ(r.state, OriginState::kRolledBack);
  EXPECT_EQ(r.why->code, ETIMEDOUT) << r.why->to_string();
  for (int i = 0; i < 400 && target_counters_.discarded == 0; ++i) std::this_thread::sleep_for(5ms);
  for (int i = 0; i < 200 && origin_counters_.late_ready == 0; ++i) std::this_thread::sleep_for(5ms);
  const auto ev = events_.get();
  EXPECT_EQ(ev, (std::vector<std::string>{"origin:freeze", "origin:thaw", "target:prepare", "target:discard"}));
  EXPECT_EQ(target_counters_.served, 0u);
  EXPECT_EQ(target_counters_.discarded, 1u);
  EXPECT_EQ(origin_counters_.late_ready, 1u);
  EXPECT_FALSE(commits_.committed(2));
}

TEST_F(HandoffOverChannel, ReturnComesBackWithThePipelinedRequest) {
  ASSERT_TRUE(offload(3, 1000ms).state == OriginState::kCommitted);
  // GO reaches the target asynchronously: let it serve before it returns.
  for (int i = 0; i < 400 && target_counters_.served == 0; ++i) std::this_thread::sleep_for(5ms);
  ASSERT_EQ(target_counters_.served, 1u);
  channel::ConnectionPtr to_frontend;
  for (int i = 0; i < 200 && !(to_frontend = server_->connection("rgw-1")); ++i) std::this_thread::sleep_for(5ms);
  ASSERT_TRUE(to_frontend);
  std::promise<ReturnResult> done;
  ReturnHandoff::create(target_io_.get_executor(), std::make_shared<ConnectionLink>(to_frontend),
                        std::make_unique<Returning>(events_), {pb::Flow(), 3, "osd-1", 1000ms}, target_counters_,
                        [&](const ReturnResult& r) { done.set_value(r); })
      ->start();
  auto fut = done.get_future();
  ASSERT_EQ(fut.wait_for(5s), std::future_status::ready);
  auto r = fut.get();
  // An empty Flow is invalid: the RETURN never leaves and the target keeps it.
  EXPECT_EQ(r.outcome, ReturnOutcome::kKept);

  pb::Flow flow;
  flow.mutable_client()->set_ip(std::string("\x7f\x00\x00\x01", 4));
  flow.mutable_client()->set_port(40000);
  flow.mutable_service()->set_ip(std::string("\x7f\x00\x00\x01", 4));
  flow.mutable_service()->set_port(443);
  std::promise<ReturnResult> done2;
  ReturnHandoff::create(target_io_.get_executor(), std::make_shared<ConnectionLink>(to_frontend),
                        std::make_unique<Returning>(events_), {flow, 3, "osd-1", 1000ms}, target_counters_,
                        [&](const ReturnResult& r) { done2.set_value(r); })
      ->start();
  auto fut2 = done2.get_future();
  ASSERT_EQ(fut2.wait_for(5s), std::future_status::ready);
  auto r2 = fut2.get();
  ASSERT_EQ(r2.outcome, ReturnOutcome::kReturned) << (r2.why ? r2.why->to_string() : "");
  std::fprintf(stderr, "return trace: %s\n", r2.trace.to_string().c_str());
  const auto ev = events_.get();
  ASSERT_GE(ev.size(), 4u);
  EXPECT_EQ(std::vector<std::string>(ev.end() - 3, ev.end()),
            (std::vector<std::string>{"target:freeze", "origin:take_back:osd-1:GET /2 HTTP/1.1\r\n\r\n",
                                      "target:release"}));
  EXPECT_EQ(origin_counters_.returns, 1u);
  EXPECT_EQ(target_counters_.returns, 1u);
}

TEST_F(HandoffOverChannel, CommitQueryOverAFreshConnection) {
  // The origin (rgw-1) also listens; the target (osd-1) asks it.
  auto sctx = channel::make_tls_context(TlsIdentity::from_pki_dir(pki_.dir(), "rgw-1"), Role::kServer);
  ASSERT_TRUE(sctx.ok());
  channel::ServerOptions so;
  so.listen = asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0);
  so.handlers.on_message = [this](const channel::ConnectionPtr& conn, pb::Envelope m) {
    ConnectionLink link(conn);
    if (m.type() == pb::TYPE_QUERY_COMMITTED) (void)answer_query_committed(link, m, commits_);
  };
  auto origin_server = channel::Server::create(io_, *sctx, so);
  ASSERT_TRUE(origin_server.ok());
  (*origin_server)->start();
  const auto at = (*origin_server)->local_endpoint();

  auto cctx = channel::make_tls_context(TlsIdentity::from_pki_dir(pki_.dir(), "osd-1"), Role::kClient);
  ASSERT_TRUE(cctx.ok());
  ChannelCommitQuery query(
      io_, *cctx,
      [&](const std::string& host) -> std::optional<asio::ip::tcp::endpoint> {
        if (host == "rgw-1") return at;
        if (host == "rgw-gone") return asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 1);
        return std::nullopt;
      },
      500ms);
  auto ask = [&](const std::string& host, uint64_t flow) {
    auto p = std::make_shared<std::promise<Result<bool>>>();
    query.query(host, flow, [p](Result<bool> r) { p->set_value(std::move(r)); });
    auto f = p->get_future();
    EXPECT_EQ(f.wait_for(3s), std::future_status::ready);
    return f.get();
  };
  commits_.record(50);
  auto yes = ask("rgw-1", 50);
  ASSERT_TRUE(yes.ok()) << yes.error().to_string();
  EXPECT_TRUE(*yes);
  auto no = ask("rgw-1", 51);
  ASSERT_TRUE(no.ok()) << no.error().to_string();
  EXPECT_FALSE(*no);
  auto unknown = ask("rgw-9", 50);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code, EHOSTUNREACH);
  const auto start = std::chrono::steady_clock::now();
  auto gone = ask("rgw-gone", 50);  // nothing listens: the deadline answers
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code, ETIMEDOUT);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  EXPECT_GE((*origin_server)->established(), 2u) << "each question on a fresh connection";
  (*origin_server)->stop();
}

}  // namespace
}  // namespace xo::handoff::protocol
