// Origin and target state machines against fakes of the TCP/TLS/steering
// side (ports.h): the order of the steps, every rollback path, the commit
// point, late READY, GO timeout with QUERY_COMMITTED, reconcile.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include "common/handoff/protocol/origin.h"
#include "common/handoff/protocol/reconcile.h"
#include "common/handoff/protocol/return.h"
#include "common/handoff/protocol/target.h"
#include "common/handoff/wire/messages.h"

namespace xo::handoff::protocol {
namespace {

using namespace std::chrono_literals;
using Events = std::vector<std::string>;

pb::Flow sample_flow() {
  pb::Flow f;
  f.mutable_client()->set_ip(std::string("\xc6\x12\x00\x0a", 4));
  f.mutable_client()->set_port(40000);
  f.mutable_service()->set_ip(std::string("\xc6\x12\x00\x01", 4));
  f.mutable_service()->set_port(443);
  return f;
}

struct FakeOriginFlow : OriginFlow {
  explicit FakeOriginFlow(Events& e) : events(e) {}
  Result<FrozenState> freeze() override {
    events.push_back("freeze");
    if (fail_freeze) return error("capture failed", EIO);
    return FrozenState{"tcp-snapshot", std::string("tls-state")};
  }
  Status redirect(const std::string& target) override {
    events.push_back("redirect:" + target);
    if (fail_redirect) return error("map full", ENOSPC);
    return {};
  }
  void release() override { events.push_back("release"); }
  std::vector<std::string> take_held() override { return held; }
  Status thaw() override {
    events.push_back("thaw");
    if (fail_thaw) return error("resume failed", EIO);
    return {};
  }
  Events& events;
  bool fail_freeze = false, fail_redirect = false, fail_thaw = false;
  std::vector<std::string> held;  // what the origin's BLOCK "dropped"
};

struct FakeLink : ControlLink {
  struct Request {
    pb::Envelope envelope;
    ResponseHandler done;
  };
  uint64_t request(pb::Envelope r, std::chrono::milliseconds timeout, ResponseHandler done) override {
    if (r.txn() == 0) r.set_txn(next_txn++);
    last_timeout = timeout;
    requests.push_back({r, std::move(done)});
    return r.txn();
  }
  Status send(pb::Envelope m) override {
    if (on_send) on_send(m);
    if (fail_send) return error("channel down", ECONNRESET);
    m.set_seq(1);
    if (auto st = wire::validate(m); !st.ok()) return st;  // what the real channel checks
    sent.push_back(std::move(m));
    return {};
  }
  std::string peer_host_id() const override { return peer; }

  std::string peer = "osd-1";
  uint64_t next_txn = 100;
  std::chrono::milliseconds last_timeout{0};
  std::vector<Request> requests;
  std::vector<pb::Envelope> sent;
  std::function<void(const pb::Envelope&)> on_send;
  bool fail_send = false;
};

class OriginTest : public ::testing::Test {
 protected:
  // The fake keeps completed handlers (the real channel drops them), and they
  // hold the handoff: break that cycle.
  void TearDown() override { link_->requests.clear(); }
  std::shared_ptr<OriginHandoff> start(uint64_t flow_id = 42) {
    auto flow = std::make_unique<FakeOriginFlow>(events_);
    flow_ = flow.get();
    OfferSpec spec{sample_flow(), flow_id, "plan", "rgw-1", 150ms};
    auto h = OriginHandoff::create(io_.get_executor(), link_, std::move(flow), spec, commits_, counters_,
                                   [this](const OriginResult& r) { results_.push_back(r); });
    return h;
  }
  void run() {
    io_.restart();
    io_.poll();
  }
  void answer(pb::Envelope e) {
    ASSERT_FALSE(link_->requests.empty());
    e.set_txn(link_->requests.back().envelope.txn());
    link_->requests.back().done(std::move(e));
    run();
  }
  pb::Envelope ready(uint64_t flow_id) {
    pb::Ready r;
    r.set_flow_id(flow_id);
    return wire::wrap(r);
  }

  boost::asio::io_context io_;
  Events events_;
  FakeOriginFlow* flow_ = nullptr;
  std::shared_ptr<FakeLink> link_ = std::make_shared<FakeLink>();
  CommitLog commits_;
  Counters counters_;
  std::vector<OriginResult> results_;
};

TEST_F(OriginTest, CommitsInTheDesignedOrder) {
  bool committed_before_go = false;
  link_->on_send = [&](const pb::Envelope& m) {
    if (m.type() != pb::TYPE_GO) return;
    committed_before_go = commits_.committed(42);
    events_.push_back("go");
  };
  auto h = start();
  // freeze must be inspected before start runs: the flow is owned by h.
  h->start();
  run();
  ASSERT_EQ(link_->requests.size(), 1u);
  const auto& offer = link_->requests[0].envelope;
  ASSERT_EQ(offer.type(), pb::TYPE_OFFER);
  EXPECT_EQ(offer.offer().tcp_snapshot(), "tcp-snapshot");
  EXPECT_EQ(offer.offer().tls_state(), "tls-state");
  EXPECT_EQ(offer.offer().payload(), "plan");
  EXPECT_EQ(offer.offer().origin_host(), "rgw-1");
  EXPECT_EQ(offer.offer().ready_timeout_ms(), 150u);
  EXPECT_EQ(link_->last_timeout, 150ms);
  EXPECT_EQ(h->state(), OriginState::kOffered);
  EXPECT_FALSE(commits_.committed(42));

  flow_->held = {"dropped-segment"};
  answer(ready(42));
  // GO leaves before the repair-mode socket is closed: release() is local
  // cleanup (the socket sends nothing), not on the client's critical path.
  EXPECT_EQ(events_, (Events{"freeze", "redirect:osd-1", "go", "release"}));
  ASSERT_EQ(link_->sent.size(), 1u);
  EXPECT_EQ(link_->sent[0].type(), pb::TYPE_GO);
  EXPECT_EQ(link_->sent[0].txn(), offer.txn());
  EXPECT_EQ(link_->sent[0].go().flow_id(), 42u);
  ASSERT_EQ(link_->sent[0].go().held_size(), 1);  // the target replays it
  EXPECT_EQ(link_->sent[0].go().held(0), "dropped-segment");
  EXPECT_TRUE(committed_before_go) << "GO sent before the commit was recorded";
  ASSERT_EQ(results_.size(), 1u);
  EXPECT_EQ(results_[0].state, OriginState::kCommitted);
  EXPECT_GE(results_[0].trace.steps().size(), 5u) << results_[0].trace.to_string();
  EXPECT_EQ(counters_.offers, 1u);
  EXPECT_EQ(counters_.accepts, 1u);
  EXPECT_EQ(counters_.rollbacks, 0u);
}

TEST_F(OriginTest, RefusalRollsBackWithoutAbort) {
  start()->start();
  run();
  pb::Refuse r;
  r.set_flow_id(42);
  r.set_reason(pb::Refuse::BUSY);
  answer(wire::wrap(r));
  EXPECT_EQ(events_, (Events{"freeze", "thaw"}));
  EXPECT_TRUE(link_->sent.empty());
  ASSERT_EQ(results_.size(), 1u);
  EXPECT_EQ(results_[0].state, OriginState::kRolledBack);
  EXPECT_NE(results_[0].why->message.find("BUSY"), std::string::npos);
  EXPECT_FALSE(commits_.committed(42));
  EXPECT_EQ(counters_.refusals, 1u);
  EXPECT_EQ(counters_.rollbacks, 1u);
}

TEST_F(OriginTest, TimeoutRollsBackAbortsAndRefusesTheLateReady) {
  start()->start();
  run();
  link_->requests[0].done(error("no answer in time", ETIMEDOUT));
  run();
  EXPECT_EQ(events_, (Events{"freeze", "thaw"}));
  ASSERT_EQ(link_->sent.size(), 1u);
  EXPECT_EQ(link_->sent[0].type(), pb::TYPE_ABORT);
  EXPECT_EQ(link_->sent[0].abort().flow_id(), 42u);
  EXPECT_EQ(results_.at(0).state, OriginState::kRolledBack);
  EXPECT_EQ(results_[0].why->code, ETIMEDOUT);

  // The READY arrives anyway, unmatched: it is refused, never acted upon.
  pb::Envelope late = ready(42);
  late.set_txn(link_->requests[0].envelope.txn());
  EXPECT_TRUE(refuse_late_ready(*link_, late, counters_));
  ASSERT_EQ(link_->sent.size(), 2u);
  EXPECT_EQ(link_->sent[1].type(), pb::TYPE_ABORT);
  EXPECT_EQ(counters_.late_ready, 1u);
  EXPECT_EQ(events_.size(), 2u) << "a late READY must not redirect";
  EXPECT_FALSE(commits_.committed(42));
}

TEST_F(OriginTest, BrokenChannelRollsBack) {
  link_->fail_send = true;  // ABORT cannot go out either
  start()->start();
  run();
  link_->requests[0].done(error("connection closed", ECONNRESET));
  run();
  EXPECT_EQ(events_, (Events{"freeze", "thaw"}));
  EXPECT_EQ(results_.at(0).state, OriginState::kRolledBack);
}

TEST_F(OriginTest, ReadyForAnotherFlowRollsBack) {
  start()->start();
  run();
  answer(ready(43));
  EXPECT_EQ(events_, (Events{"freeze", "thaw"}));
  EXPECT_EQ(results_.at(0).state, OriginState::kRolledBack);
  ASSERT_EQ(link_->sent.size(), 1u);
  EXPECT_EQ(link_->sent[0].type(), pb::TYPE_ABORT);
}

TEST_F(OriginTest, FailedRedirectRollsBackBeforeRelease) {
  auto h = start();
  flow_->fail_redirect = true;
  h->start();
  run();
  answer(ready(42));
  EXPECT_EQ(events_, (Events{"freeze", "redirect:osd-1", "thaw"}));
  EXPECT_EQ(results_.at(0).state, OriginState::kRolledBack);
  ASSERT_EQ(link_->sent.size(), 1u);
  EXPECT_EQ(link_->sent[0].type(), pb::TYPE_ABORT);
  EXPECT_FALSE(commits_.committed(42));
}

TEST_F(OriginTest, FailedFreezeSendsNothing) {
  auto h = start();
  flow_->fail_freeze = true;
  h->start();
  run();
  EXPECT_TRUE(link_->requests.empty());
  EXPECT_EQ(events_, (Events{"freeze"}));
  EXPECT_EQ(results_.at(0).state, OriginState::kRolledBack);
  EXPECT_EQ(counters_.offers, 0u);
}

TEST_F(OriginTest, FailedThawIsReportedAsLost) {
  auto h = start();
  flow_->fail_thaw = true;
  h->start();
  run();
  link_->requests[0].done(error("timeout", ETIMEDOUT));
  run();
  EXPECT_EQ(results_.at(0).state, OriginState::kLost);
}

TEST_F(OriginTest, AnswersQueryCommitted) {
  commits_.record(7);
  pb::QueryCommitted q;
  q.set_flow_id(7);
  ASSERT_TRUE(answer_query_committed(*link_, wire::wrap(q, 5), commits_).ok());
  q.set_flow_id(8);
  ASSERT_TRUE(answer_query_committed(*link_, wire::wrap(q, 6), commits_).ok());
  ASSERT_EQ(link_->sent.size(), 2u);
  EXPECT_TRUE(link_->sent[0].committed().committed());
  EXPECT_EQ(link_->sent[0].txn(), 5u);
  EXPECT_FALSE(link_->sent[1].committed().committed());
}

// ---- target ----

struct FakeTargetFlow : TargetFlow {
  FakeTargetFlow(Events& e, uint64_t id) : events(e), id(id) {}
  void serve(std::vector<std::string> held) override {
    events.push_back("serve:" + std::to_string(id) + (held.empty() ? "" : "+" + std::to_string(held.size()) + " held"));
  }
  void discard() override { events.push_back("discard:" + std::to_string(id)); }
  Events& events;
  uint64_t id;
};

struct FakeFactory : TargetFlowFactory {
  explicit FakeFactory(Events& e) : events(e) {}
  std::variant<std::unique_ptr<TargetFlow>, Refusal> prepare(const pb::Offer& offer) override {
    events.push_back("prepare:" + std::to_string(offer.flow_id()));
    if (refuse) return Refusal{pb::Refuse::RESTORE_FAILED, "restore failed"};
    return std::make_unique<FakeTargetFlow>(events, offer.flow_id());
  }
  Events& events;
  bool refuse = false;
};

struct FakeQuery : CommitQuery {
  void query(const std::string& origin, uint64_t flow_id, std::function<void(Result<bool>)> done) override {
    asked.push_back(origin + ":" + std::to_string(flow_id));
    pending.push_back(std::move(done));
  }
  std::vector<std::string> asked;
  std::vector<std::function<void(Result<bool>)>> pending;
};

class TargetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    link_->peer = "rgw-1";
    targets_ = TargetHandoffs::create(io_.get_executor(), factory_, query_, counters_, {20ms});
  }
  pb::Envelope offer(uint64_t flow_id, const std::string& origin = "rgw-1", uint32_t timeout_ms = 10) {
    pb::Offer o;
    *o.mutable_flow() = sample_flow();
    o.set_flow_id(flow_id);
    o.set_tcp_snapshot("snap");
    o.set_origin_host(origin);
    o.set_ready_timeout_ms(timeout_ms);
    return wire::wrap(o, 1000 + flow_id);
  }
  pb::Envelope go(uint64_t flow_id) {
    pb::Go g;
    g.set_flow_id(flow_id);
    return wire::wrap(g, 1000 + flow_id);
  }
  void deliver(pb::Envelope m, std::shared_ptr<FakeLink> link = nullptr) {
    targets_->on_message(link ? link : link_, std::move(m));
    run();
  }
  void run() {
    io_.restart();
    io_.poll();
  }
  bool run_until(const std::function<bool()>& pred, std::chrono::milliseconds limit = 2s) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!pred() && std::chrono::steady_clock::now() < end) {
      io_.restart();
      io_.run_for(5ms);
    }
    return pred();
  }

  boost::asio::io_context io_;
  Events events_;
  FakeFactory factory_{events_};
  FakeQuery query_;
  Counters counters_;
  std::shared_ptr<FakeLink> link_ = std::make_shared<FakeLink>();
  std::shared_ptr<TargetHandoffs> targets_;
};

TEST_F(TargetTest, OfferReadyGoServes) {
  deliver(offer(1, "rgw-1", 5000));
  ASSERT_EQ(link_->sent.size(), 1u);
  EXPECT_EQ(link_->sent[0].type(), pb::TYPE_READY);
  EXPECT_EQ(link_->sent[0].txn(), 1001u);
  EXPECT_EQ(targets_->count(TargetState::kPrepared), 1u);
  EXPECT_EQ(events_, (Events{"prepare:1"})) << "nothing is served before GO";
  deliver(go(1));
  EXPECT_EQ(events_, (Events{"prepare:1", "serve:1"}));
  EXPECT_EQ(targets_->held(), (std::vector<uint64_t>{1}));
  EXPECT_EQ(counters_.served, 1u);
  deliver(go(1));  // a duplicate GO changes nothing
  EXPECT_EQ(events_.size(), 2u);
  targets_->finished(1);
  run();
  EXPECT_TRUE(targets_->held().empty());
}

TEST_F(TargetTest, OfferFromAnotherHostThanItsCertificateIsRefused) {
  deliver(offer(2, "rgw-9"));
  ASSERT_EQ(link_->sent.size(), 1u);
  EXPECT_EQ(link_->sent[0].type(), pb::TYPE_REFUSE);
  EXPECT_EQ(link_->sent[0].refuse().reason(), pb::Refuse::BAD_REQUEST);
  EXPECT_TRUE(events_.empty()) << "nothing may be prepared for a forged origin";
}

TEST_F(TargetTest, FactoryRefusalBecomesRefuse) {
  factory_.refuse = true;
  deliver(offer(3));
  ASSERT_EQ(link_->sent.size(), 1u);
  EXPECT_EQ(link_->sent[0].refuse().reason(), pb::Refuse::RESTORE_FAILED);
  EXPECT_EQ(counters_.refusals, 1u);
  EXPECT_EQ(targets_->count(TargetState::kPrepared), 0u);
}

TEST_F(TargetTest, DuplicateFlowIsRefused) {
  deliver(offer(4, "rgw-1", 5000));
  deliver(offer(4, "rgw-1", 5000));
  ASSERT_EQ(link_->sent.size(), 2u);
  EXPECT_EQ(link_->sent[1].type(), pb::TYPE_REFUSE);
}

TEST_F(TargetTest, AbortDiscardsAndLateGoIsIgnored) {
  deliver(offer(5, "rgw-1", 5000));
  pb::Abort a;
  a.set_flow_id(5);
  deliver(wire::wrap(a, 1005));
  EXPECT_EQ(events_, (Events{"prepare:5", "discard:5"}));
  deliver(go(5));
  EXPECT_EQ(events_.size(), 2u) << "GO after discard must not serve";
  EXPECT_EQ(counters_.discarded, 1u);
}

TEST_F(TargetTest, GoFromAnotherHostIsIgnored) {
  deliver(offer(6, "rgw-1", 5000));
  auto other = std::make_shared<FakeLink>();
  other->peer = "rgw-2";
  deliver(go(6), other);
  EXPECT_EQ(events_, (Events{"prepare:6"}));
}

TEST_F(TargetTest, NoGoInTimeAsksTheOriginAndServesWhenCommitted) {
  deliver(offer(7));  // ready timeout 10 ms + slack 20 ms
  ASSERT_TRUE(run_until([&] { return !query_.asked.empty(); }));
  EXPECT_EQ(query_.asked[0], "rgw-1:7");
  EXPECT_EQ(targets_->count(TargetState::kQuerying), 1u);
  query_.pending[0](true);
  run();
  EXPECT_EQ(events_, (Events{"prepare:7", "serve:7"}));
}

TEST_F(TargetTest, NoGoInTimeAndNotCommittedDiscards) {
  deliver(offer(8));
  ASSERT_TRUE(run_until([&] { return !query_.asked.empty(); }));
  query_.pending[0](false);
  run();
  EXPECT_EQ(events_, (Events{"prepare:8", "discard:8"}));
}

TEST_F(TargetTest, NoGoInTimeAndOriginUnreachableDiscards) {
  deliver(offer(9));
  ASSERT_TRUE(run_until([&] { return !query_.asked.empty(); }));
  query_.pending[0](error("connect refused", ECONNREFUSED));
  run();
  EXPECT_EQ(events_, (Events{"prepare:9", "discard:9"}));
  deliver(go(9));  // too late
  EXPECT_EQ(events_.size(), 2u);
}

TEST_F(TargetTest, ReadyThatCannotBeSentDiscards) {
  link_->fail_send = true;
  deliver(offer(10, "rgw-1", 5000));
  EXPECT_EQ(events_, (Events{"prepare:10", "discard:10"}));
}

TEST_F(TargetTest, ReconcileAnswersOnlyServedFlowsOfThatOrigin) {
  deliver(offer(11, "rgw-1", 5000));
  deliver(go(11));
  deliver(offer(12, "rgw-1", 5000));  // prepared, not served
  pb::Reconcile r;
  r.add_flow_ids(11);
  r.add_flow_ids(12);
  r.add_flow_ids(13);
  link_->sent.clear();
  deliver(wire::wrap(r, 77));
  ASSERT_EQ(link_->sent.size(), 1u);
  const auto& a = link_->sent[0];
  EXPECT_EQ(a.type(), pb::TYPE_RECONCILE_ANSWER);
  EXPECT_EQ(a.txn(), 77u);
  ASSERT_EQ(a.reconcile_answer().held_flow_ids_size(), 1);
  EXPECT_EQ(a.reconcile_answer().held_flow_ids(0), 11u);
}

// ---- return ----

struct FakeReturningFlow : ReturningFlow {
  explicit FakeReturningFlow(Events& e) : events(e) {}
  Result<ReturnState> freeze() override {
    events.push_back("freeze");
    if (fail_freeze) return error("kTLS partial record", EAGAIN);
    return ReturnState{{"tcp", std::string("tls")}, "GET /next HTTP/1.1\r\n\r\n"};
  }
  void release() override { events.push_back("release"); }
  std::vector<std::string> take_held() override {
    events.push_back("take_held");
    return held;
  }
  Status thaw() override {
    events.push_back("thaw");
    return {};
  }
  Events& events;
  bool fail_freeze = false;
  std::vector<std::string> held;  // what this host's BLOCK "dropped"
};

class ReturnTest : public ::testing::Test {
 protected:
  void SetUp() override { link_->peer = "rgw-1"; }
  void TearDown() override { link_->requests.clear(); }
  void start() {
    auto flow = std::make_unique<FakeReturningFlow>(events_);
    flow_ = flow.get();
    ReturnSpec spec{sample_flow(), 21, "osd-1", 300ms};
    ReturnHandoff::create(io_.get_executor(), link_, std::move(flow), spec, counters_,
                          [this](const ReturnResult& r) { results_.push_back(r); })
        ->start();
    run();
  }
  void run() {
    io_.restart();
    io_.poll();
  }
  void answer(Result<pb::Envelope> r) {
    ASSERT_EQ(link_->requests.size(), 1u);
    if (r.ok()) r->set_txn(link_->requests[0].envelope.txn());
    link_->requests[0].done(std::move(r));
    run();
  }
  boost::asio::io_context io_;
  Events events_;
  FakeReturningFlow* flow_ = nullptr;
  std::shared_ptr<FakeLink> link_ = std::make_shared<FakeLink>();
  Counters counters_;
  std::vector<ReturnResult> results_;
};

TEST_F(ReturnTest, DoneReleasesTheTargetCopy) {
  start();
  ASSERT_EQ(link_->requests.size(), 1u);
  const auto& ret = link_->requests[0].envelope.return_();
  EXPECT_EQ(ret.client_bytes(), "GET /next HTTP/1.1\r\n\r\n");
  EXPECT_EQ(ret.tls_state(), "tls");
  EXPECT_EQ(ret.origin_host(), "osd-1");
  EXPECT_EQ(link_->last_timeout, 300ms);
  flow_->held = {"segment-1", "segment-2"};
  pb::Done d;
  d.set_flow_id(21);
  answer(wire::wrap(d));
  // HELD (what our BLOCK dropped) goes out on DONE, before the local cleanup.
  EXPECT_EQ(events_, (Events{"freeze", "take_held", "release"}));
  ASSERT_EQ(link_->sent.size(), 1u);
  EXPECT_EQ(link_->sent[0].type(), pb::TYPE_HELD);
  EXPECT_EQ(link_->sent[0].held().flow_id(), 21u);
  ASSERT_EQ(link_->sent[0].held().packets_size(), 2);
  EXPECT_EQ(link_->sent[0].held().packets(1), "segment-2");
  EXPECT_EQ(results_.at(0).outcome, ReturnOutcome::kReturned);
  EXPECT_EQ(counters_.returns, 1u);
}

TEST_F(ReturnTest, RefusedReturnIsKept) {
  start();
  pb::Refuse r;
  r.set_flow_id(21);
  r.set_reason(pb::Refuse::RESTORE_FAILED);
  answer(wire::wrap(r));
  EXPECT_EQ(events_, (Events{"freeze", "thaw"}));
  EXPECT_EQ(results_.at(0).outcome, ReturnOutcome::kKept);
}

TEST_F(ReturnTest, NeverSentIsKeptButUnknownFateIsDropped) {
  start();
  answer(error("no control connection", ENOTCONN));
  EXPECT_EQ(events_, (Events{"freeze", "thaw"}));
  EXPECT_EQ(results_.at(0).outcome, ReturnOutcome::kKept);

  events_.clear();
  link_->requests.clear();
  start();
  answer(error("no answer in time", ETIMEDOUT));
  EXPECT_EQ(events_, (Events{"freeze", "release"})) << "a RETURN that may have landed must not be thawed";
  EXPECT_EQ(results_.at(1).outcome, ReturnOutcome::kDropped);
}

TEST_F(ReturnTest, FreezeFailureKeepsTheConnection) {
  auto flow = std::make_unique<FakeReturningFlow>(events_);
  flow->fail_freeze = true;
  ReturnHandoff::create(io_.get_executor(), link_, std::move(flow), {sample_flow(), 21, "osd-1", 300ms}, counters_,
                        [this](const ReturnResult& r) { results_.push_back(r); })
      ->start();
  run();
  EXPECT_TRUE(link_->requests.empty());
  EXPECT_EQ(results_.at(0).outcome, ReturnOutcome::kKept);
}

struct FakeAcceptor : ReturnAcceptor {
  Status take_back(const pb::Return& r, const std::string& from) override {
    taken.push_back(from + ":" + std::to_string(r.flow_id()) + ":" + r.client_bytes());
    if (fail) return error("restore failed", EADDRINUSE);
    return {};
  }
  std::vector<std::string> taken;
  bool fail = false;
};

TEST(AcceptReturn, DoneOrRefuse) {
  FakeLink link;
  link.peer = "osd-1";
  FakeAcceptor acceptor;
  Counters counters;
  pb::Return r;
  *r.mutable_flow() = sample_flow();
  r.set_flow_id(5);
  r.set_tcp_snapshot("tcp");
  r.set_client_bytes("next");
  r.set_origin_host("osd-1");
  ASSERT_TRUE(accept_return(link, wire::wrap(r, 9), acceptor, counters).ok());
  ASSERT_EQ(link.sent.size(), 1u);
  EXPECT_EQ(link.sent[0].type(), pb::TYPE_DONE);
  EXPECT_EQ(link.sent[0].txn(), 9u);
  EXPECT_EQ(acceptor.taken, (std::vector<std::string>{"osd-1:5:next"}));

  acceptor.fail = true;
  ASSERT_TRUE(accept_return(link, wire::wrap(r, 10), acceptor, counters).ok());
  EXPECT_EQ(link.sent[1].type(), pb::TYPE_REFUSE);
  EXPECT_EQ(link.sent[1].refuse().reason(), pb::Refuse::RESTORE_FAILED);

  r.set_origin_host("osd-2");  // names another host than its certificate
  acceptor.fail = false;
  ASSERT_TRUE(accept_return(link, wire::wrap(r, 11), acceptor, counters).ok());
  EXPECT_EQ(link.sent[2].refuse().reason(), pb::Refuse::BAD_REQUEST);
  EXPECT_EQ(acceptor.taken.size(), 2u) << "a forged RETURN must not be restored";
}

// ---- reconcile ----

TEST(Reconcile, SortsFlowsIntoHeldStaleAndUnknown) {
  auto a = std::make_shared<FakeLink>();
  a->peer = "osd-1";
  auto b = std::make_shared<FakeLink>();
  b->peer = "osd-2";
  std::map<std::string, std::vector<uint64_t>> redirects = {
      {"osd-1", {1, 2, 3}}, {"osd-2", {4, 5}}, {"osd-3", {6}}};
  std::optional<ReconcileResult> result;
  reconcile(
      redirects,
      [&](const std::string& host) -> std::shared_ptr<ControlLink> {
        if (host == "osd-1") return a;
        if (host == "osd-2") return b;
        return nullptr;  // no connection to osd-3
      },
      1s, [&](ReconcileResult r) { result = std::move(r); });
  ASSERT_EQ(a->requests.size(), 1u);
  ASSERT_EQ(b->requests.size(), 1u);
  EXPECT_FALSE(result) << "done before every target answered";
  pb::ReconcileAnswer ans;
  ans.add_held_flow_ids(2);
  ans.add_held_flow_ids(99);  // not asked: ignored
  a->requests[0].done(wire::wrap(ans, a->requests[0].envelope.txn()));
  EXPECT_FALSE(result);
  b->requests[0].done(error("timeout", ETIMEDOUT));
  ASSERT_TRUE(result);
  std::sort(result->stale.begin(), result->stale.end());
  std::sort(result->unknown.begin(), result->unknown.end());
  EXPECT_EQ(result->held, (std::vector<uint64_t>{2}));
  EXPECT_EQ(result->stale, (std::vector<uint64_t>{1, 3}));
  EXPECT_EQ(result->unknown, (std::vector<uint64_t>{4, 5, 6}));
  a->requests.clear();
  b->requests.clear();
}

}  // namespace
}  // namespace xo::handoff::protocol
