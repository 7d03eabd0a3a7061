// Node: one io_context thread runs the control channel (server + one
// PeerClient per peer), the state machines and the ports. Everything that
// touches a flow happens on that thread; the public methods post to it (or,
// called on it, run at once).
#include "common/handoff/node/node.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <fcntl.h>
#include <linux/sockios.h>
#include <sched.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string_view>
#include <thread>

#include "common/handoff/channel/poll_window.h"
#include "common/handoff/channel/peer_client.h"
#include "common/handoff/channel/server.h"
#include "common/handoff/node/flow_keys.h"
#include "common/handoff/node/host_env.h"
#include "common/handoff/node/io_loop.h"
#include "common/handoff/node/origin_flow.h"
#include "common/handoff/node/return_acceptor.h"
#include "common/handoff/node/returning_flow.h"
#include "common/handoff/node/target_flow.h"
#include "common/handoff/protocol/commit_query.h"
#include "common/handoff/protocol/connection_link.h"
#include "common/handoff/protocol/origin.h"
#include "common/handoff/protocol/return.h"
#include "common/handoff/protocol/target.h"
#include "common/handoff/wire/messages.h"

namespace xo::handoff::node {

namespace asio = boost::asio;

const char* offer_outcome_name(OfferOutcome o) {
  switch (o) {
    case OfferOutcome::kOffloaded: return "offloaded";
    case OfferOutcome::kServedLocally: return "served-locally";
    case OfferOutcome::kLost: return "lost";
  }
  return "?";
}

const char* handoff_kind_name(HandoffRecord::Kind k) {
  switch (k) {
    case HandoffRecord::Kind::kOffer: return "offer";
    case HandoffRecord::Kind::kAccept: return "accept";
    case HandoffRecord::Kind::kDiscard: return "discard";
    case HandoffRecord::Kind::kGiveBack: return "give_back";
    case HandoffRecord::Kind::kTakeBack: return "take_back";
    case HandoffRecord::Kind::kClose: return "close";
    case HandoffRecord::Kind::kEnded: return "end";
  }
  return "?";
}

class Node::Impl {
 public:
  explicit Impl(NodeConfig config) : config_(std::move(config)), env_(config_) {}
  ~Impl() { stop(); }

  Status start();
  void stop();

  void offer(OfferRequest request, OfferDone done);
  void give_back(AcceptedConnection conn, std::string unread, GiveBackDone done);
  void start_give_back(AcceptedConnection conn, std::string unread, GiveBackDone done);
  void close(AcceptedConnection conn);
  void reconcile(std::chrono::milliseconds timeout, std::function<void(protocol::ReconcileResult)> done);

  NodeConfig config_;
  HostEnv env_;
  uint16_t tag_ = 0;
  asio::io_context io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::thread thread_;
  std::shared_ptr<asio::ssl::context> server_tls_, client_tls_;
  std::shared_ptr<channel::Server> server_;
  std::map<std::string, std::shared_ptr<channel::PeerClient>> peer_clients_;
  protocol::CommitLog commits_;
  protocol::Counters counters_;
  std::unique_ptr<SocketTargetFlowFactory> factory_;
  std::unique_ptr<protocol::ChannelCommitQuery> commit_query_;
  std::shared_ptr<protocol::TargetHandoffs> targets_;
  std::unique_ptr<SocketReturnAcceptor> acceptor_;
  std::atomic<uint64_t> next_seq_{0};
  std::atomic<uint64_t> closed_{0}, ended_{0};
  bool stopped_ = false;

  mutable std::mutex mu_;  // handlers and flow tables (read by stats() from any thread)
  AcceptHandler on_accept_;
  ReturnHandler on_return_;
  EndedHandler on_ended_;
  RecordObserver observer_;
  std::atomic<bool> has_observer_{false};
  struct FlowOut {
    std::string target;
    FlowInfo flow;
  };
  std::map<uint64_t, FlowOut> flows_out_;      // offloaded from here, by flow id
  // Taken back, until the target's HELD (what its BLOCK dropped) is in: a dup
  // of the socket keeps it open meanwhile, so a replay meets the connection
  // even if the application closed it (never a reset from a missing socket).
  struct AwaitingHeld {
    std::string from_host;
    FlowInfo flow;
    UniqueFd keep_open;
  };
  std::map<uint64_t, AwaitingHeld> awaiting_held_;
  std::map<uint64_t, FlowInfo> flows_in_;      // served here
  std::map<uint64_t, std::function<void()>> deferred_;  // timed work, run at stop() at the latest
  uint64_t deferred_seq_ = 0;

 private:
  uint64_t next_flow_id() {
    return (uint64_t{tag_} << 48) | (next_seq_.fetch_add(1) & ((uint64_t{1} << 48) - 1));
  }
  std::shared_ptr<channel::PeerClient> peer_client(const std::string& host) const {
    auto it = peer_clients_.find(host);
    return it == peer_clients_.end() ? nullptr : it->second;
  }
  void dispatch(const channel::ConnectionPtr& conn, pb::Envelope message);
  // Built only when someone observes (tests, the test server): an accept's
  // and a take-back's record come before the application's handler.
  void record(HandoffRecord::Kind kind, const FlowInfo& flow, const std::string& peer, std::string_view outcome,
              const std::optional<Error>& why, const protocol::Trace& trace) {
    if (!has_observer_.load(std::memory_order_acquire)) return;
    RecordObserver obs;
    {
      std::lock_guard lock(mu_);
      obs = observer_;
    }
    if (obs) obs(HandoffRecord{kind, flow, peer, std::string(outcome), why, trace});
  }
  void defer(std::chrono::milliseconds delay, std::function<void()> fn);
  void sweep_dead_flows();
  void accepted(AcceptedConnection conn);
  void returned(ReturnedConnection conn);
  void ended_at_target(uint64_t flow_id, const std::string& host);
  void held_at_target(const pb::Held& held, const std::string& host);
  bool owns(uint64_t flow_id, const std::string& host);
  void target_done(uint64_t flow_id) {
    if (targets_) targets_->finished(flow_id);
    std::lock_guard lock(mu_);
    flows_in_.erase(flow_id);
  }
};

Status Node::Impl::start() {
  XO_TRY(wire::validate_host_id(config_.host_id, "host_id"));
  if (!config_.steer) return error("NodeConfig.steer is required", EINVAL);
  tag_ = config_.node_tag ? config_.node_tag : tag_of_host(config_.host_id);
  // Sequence seeded from the clock (µs): a restarted node does not reuse
  // the flow ids of entries that survived it in the pinned maps.
  next_seq_ = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
  sweep_dead_flows();
  XO_ASSIGN_OR_RETURN(server_tls_, channel::make_tls_context(config_.identity, channel::Role::kServer));
  XO_ASSIGN_OR_RETURN(client_tls_, channel::make_tls_context(config_.identity, channel::Role::kClient));

  env_.set_defer([this](std::chrono::milliseconds delay, std::function<void()> fn) { defer(delay, std::move(fn)); });
  factory_ = std::make_unique<SocketTargetFlowFactory>(
      env_, [this](AcceptedConnection c) { accepted(std::move(c)); },
      [this](const FlowInfo& flow, const std::string& origin, const protocol::Trace& trace) {
        record(HandoffRecord::Kind::kDiscard, flow, origin, "discarded", std::nullopt, trace);
      });
  commit_query_ = std::make_unique<protocol::ChannelCommitQuery>(
      io_, client_tls_,
      [this](const std::string& host) -> std::optional<asio::ip::tcp::endpoint> {
        auto it = config_.peers.find(host);
        if (it == config_.peers.end()) return std::nullopt;
        return it->second.control;
      },
      config_.commit_query_deadline);
  protocol::TargetOptions topts;
  topts.go_slack = config_.go_slack;
  targets_ = protocol::TargetHandoffs::create(io_.get_executor(), *factory_, *commit_query_, counters_, topts);
  acceptor_ = std::make_unique<SocketReturnAcceptor>(
      env_, [this](uint64_t id, const std::string& host) { return owns(id, host); },
      [this](ReturnedConnection c) { returned(std::move(c)); });

  channel::ConnectionHandlers handlers;
  handlers.on_message = [this](const channel::ConnectionPtr& conn, pb::Envelope m) { dispatch(conn, std::move(m)); };
  channel::ServerOptions sopts;
  sopts.listen = config_.listen;
  sopts.handlers = handlers;
  sopts.accept_peer = [this](const std::string& id) { return config_.peers.count(id) != 0; };
  sopts.log = channel::stderr_logger(config_.host_id);
  XO_ASSIGN_OR_RETURN(server_, channel::Server::create(io_, server_tls_, sopts));
  for (const auto& [id, peer] : config_.peers) {
    channel::PeerOptions popts;
    popts.peer_host_id = id;
    popts.endpoint = peer.control;
    popts.handlers = handlers;
    popts.log = channel::stderr_logger(config_.host_id + "->" + id);
    popts.backoff.max = std::chrono::milliseconds(1000);
    XO_ASSIGN_OR_RETURN(auto client, channel::PeerClient::create(io_, client_tls_, popts));
    peer_clients_[id] = client;
  }
  server_->start();
  for (auto& [id, client] : peer_clients_) client->start();
  work_.emplace(io_.get_executor());
  thread_ = std::thread([this] { run_io_loop(io_, config_.busy_poll); });
  return {};
}

void Node::Impl::sweep_dead_flows() {
  // The pinned map outlives a crashed daemon. Its REDIRECTs still steer live
  // connections (they are served elsewhere; reconcile() decides about them),
  // but BLOCK and SNAT entries belonged to sockets of the dead process, which
  // are gone: nothing can use them any more.
  auto entries = config_.steer->list();
  if (!entries.ok()) return;
  size_t n = 0;
  for (const auto& e : *entries) {
    if (e.entry.action == steer::Action::kRedirect) continue;
    env_.remove(e.entry.flow, e.entry.owner);
    ++n;
  }
  if (n)
    std::fprintf(stderr, "xo-handoff[%s]: removed %zu BLOCK/SNAT entries left by a previous process\n",
                 config_.host_id.c_str(), n);
}

void Node::Impl::stop() {
  if (stopped_) return;
  stopped_ = true;
  if (server_) server_->stop();
  for (auto& [id, client] : peer_clients_) client->stop();
  work_.reset();
  if (thread_.joinable()) {
    // Let the close_notify exchanges run briefly, then stop.
    asio::steady_timer t(io_, std::chrono::milliseconds(100));
    t.async_wait([this](boost::system::error_code) { io_.stop(); });
    thread_.join();
  }
  // Flows still prepared (no GO) are discarded by their destructors here.
  targets_.reset();
  // Deferred removals still waiting run now: a stopped node leaves no entry
  // it meant to remove.
  std::map<uint64_t, std::function<void()>> pending;
  {
    std::lock_guard lock(mu_);
    pending.swap(deferred_);
  }
  for (auto& [id, fn] : pending) fn();
}

void Node::Impl::defer(std::chrono::milliseconds delay, std::function<void()> fn) {
  if (delay.count() <= 0) {
    // After the current handler; not through a timer (on a VM a timer due
    // at once reprograms the vCPU's timer: ~15 µs).
    asio::post(io_, std::move(fn));
    return;
  }
  uint64_t id;
  {
    std::lock_guard lock(mu_);
    id = ++deferred_seq_;
    deferred_[id] = std::move(fn);
  }
  auto timer = std::make_shared<asio::steady_timer>(io_, delay);
  timer->async_wait([this, timer, id](boost::system::error_code) {
    std::function<void()> fn;
    {
      std::lock_guard lock(mu_);
      auto it = deferred_.find(id);
      if (it == deferred_.end()) return;
      fn = std::move(it->second);
      deferred_.erase(it);
    }
    fn();
  });
}

void Node::Impl::dispatch(const channel::ConnectionPtr& conn, pb::Envelope message) {
  auto link = std::make_shared<protocol::ConnectionLink>(conn);
  switch (message.type()) {
    case pb::TYPE_OFFER:
    case pb::TYPE_GO:
    case pb::TYPE_ABORT:
    case pb::TYPE_RECONCILE: targets_->on_message(link, std::move(message)); return;
    case pb::TYPE_RETURN: (void)protocol::accept_return(*link, message, *acceptor_, counters_); return;
    case pb::TYPE_QUERY_COMMITTED: (void)protocol::answer_query_committed(*link, message, commits_); return;
    case pb::TYPE_READY: (void)protocol::refuse_late_ready(*link, message, counters_); return;
    case pb::TYPE_CLOSED: return ended_at_target(message.closed().flow_id(), conn->peer_host_id());
    case pb::TYPE_HELD: return held_at_target(message.held(), conn->peer_host_id());
    default: return;
  }
}

bool Node::Impl::owns(uint64_t flow_id, const std::string& host) {
  {
    std::lock_guard lock(mu_);
    auto it = flows_out_.find(flow_id);
    if (it != flows_out_.end()) return it->second.target == host;
  }
  // After a restart the table is empty but the pinned REDIRECT survived.
  auto entries = config_.steer->list();
  if (!entries.ok()) return false;
  for (const auto& e : *entries)
    if (e.entry.action == steer::Action::kRedirect && e.entry.owner == flow_id)
      return env_.peer_by_ip(e.entry.new_addr) == host;
  return false;
}

void Node::Impl::ended_at_target(uint64_t flow_id, const std::string& host) {
  std::optional<FlowInfo> flow;
  EndedHandler handler;
  {
    std::lock_guard lock(mu_);
    auto it = flows_out_.find(flow_id);
    // Only the host the flow was offloaded to may end it. Unknown: already
    // returned, or from before a restart (reconcile() handles those).
    if (it == flows_out_.end() || it->second.target != host) return;
    flow = it->second.flow;
    flows_out_.erase(it);
    handler = on_ended_;
  }
  ++ended_;
  // The client's last ACK or FIN may still be on its way to the target.
  env_.remove_later(frontend_ingress_key(*flow), flow_id);
  record(HandoffRecord::Kind::kEnded, *flow, host, "ended-at-target", std::nullopt, protocol::Trace{});
  if (handler) handler(*flow, host);
}

void Node::Impl::held_at_target(const pb::Held& held, const std::string& host) {
  std::optional<AwaitingHeld> awaiting;
  {
    std::lock_guard lock(mu_);
    auto it = awaiting_held_.find(held.flow_id());
    // Only from the host that gave this flow back.
    if (it == awaiting_held_.end() || it->second.from_host != host) return;
    awaiting = std::move(it->second);
    awaiting_held_.erase(it);
  }
  env_.replay_held({held.packets().begin(), held.packets().end()}, awaiting->flow, awaiting->flow.service_ip);
}  // the dup closes here

void Node::Impl::accepted(AcceptedConnection conn) {
  AcceptHandler handler;
  {
    std::lock_guard lock(mu_);
    flows_in_[conn.flow.flow_id] = conn.flow;
    handler = on_accept_;
  }
  record(HandoffRecord::Kind::kAccept, conn.flow, conn.origin_host, "accepted", std::nullopt, conn.trace);
  if (handler) return handler(std::move(conn));
  std::fprintf(stderr, "xo-handoff[%s]: no accept handler: closing %s\n", config_.host_id.c_str(),
               conn.flow.to_string().c_str());
  close(std::move(conn));
}

void Node::Impl::returned(ReturnedConnection conn) {
  // DONE goes out next; the target answers with HELD: what its BLOCK dropped
  // while the flow came back (often the client's next request), replayed
  // into this socket. Without one in time (a target that died) the client
  // resends what is missing.
  const uint64_t id = conn.flow.flow_id;
  ReturnHandler handler;
  {
    std::lock_guard lock(mu_);
    flows_out_.erase(id);
    awaiting_held_[id] = {conn.from_host, conn.flow, UniqueFd(::fcntl(conn.socket.get(), F_DUPFD_CLOEXEC, 0))};
    handler = on_return_;
  }
  defer(config_.held_timeout, [this, id] {
    std::lock_guard lock(mu_);
    awaiting_held_.erase(id);
  });
  record(HandoffRecord::Kind::kTakeBack, conn.flow, conn.from_host, "taken-back", std::nullopt, conn.trace);
  if (handler) return handler(std::move(conn));
  // Nobody serves returned connections here: close it (FIN).
  conn.socket.reset();
}

void Node::Impl::offer(OfferRequest req, OfferDone done) {
  auto local = [&](Error why, FlowInfo flow) {
    OfferResult r;
    r.outcome = OfferOutcome::kServedLocally;
    r.why = std::move(why);
    r.flow = std::move(flow);
    r.conn = std::move(req.conn);
    record(HandoffRecord::Kind::kOffer, r.flow, req.target_host, offer_outcome_name(r.outcome), r.why, r.trace);
    done(std::move(r));
  };
  auto flow = flow_of_socket(req.conn.socket.get());
  if (!flow.ok()) return local(annotate(flow.take_error(), "offer"), {});
  flow->flow_id = next_flow_id();
  {
    // The connection leaves again: a dup kept for a HELD that never came
    // must not keep its socket (same 4-tuple) alive beside the next restore.
    std::lock_guard lock(mu_);
    std::erase_if(awaiting_held_, [&](const auto& entry) {
      const FlowInfo& f = entry.second.flow;
      return f.client_ip == flow->client_ip && f.client_port == flow->client_port &&
             f.service_ip == flow->service_ip && f.service_port == flow->service_port;
    });
  }
  auto client = peer_client(req.target_host);
  if (!client) return local(error("offer: unknown target " + req.target_host, ENOENT), *flow);
  // Which connection: the one the target opened to us, when it is up. The
  // target sends its RETURNs over it and gets DONE on it, so an OFFER for
  // the same connection right after a return arrives behind that DONE, never
  // before it (on another connection it could overtake the DONE, and the
  // target would still hold the returned socket's 4-tuple: EADDRNOTAVAIL).
  std::shared_ptr<protocol::ControlLink> link;
  if (auto conn = server_->connection(req.target_host); conn && conn->is_open())
    link = std::make_shared<protocol::ConnectionLink>(conn);
  else if (client->connected())
    link = std::make_shared<protocol::PeerClientLink>(client, req.target_host);
  else  // not connected: serve locally at once instead of freezing for nothing
    return local(error("offer: no control connection to " + req.target_host, ENOTCONN), *flow);
  auto wire_flow = flow_to_wire(*flow);
  if (!wire_flow.ok()) return local(annotate(wire_flow.take_error(), "offer"), *flow);

  protocol::OfferSpec spec;
  spec.flow = *wire_flow;
  spec.flow_id = flow->flow_id;
  spec.payload = std::move(req.payload);
  spec.origin_host = config_.host_id;
  spec.ready_timeout = config_.ready_timeout;
  {
    // Before GO: a RETURN can follow GO faster than our callback runs.
    std::lock_guard lock(mu_);
    flows_out_[flow->flow_id] = {req.target_host, *flow};
  }
  auto slot = std::make_shared<ConnectionSlot>();
  auto origin = std::make_unique<SocketOriginFlow>(env_, *flow, std::move(req.conn), slot);
  auto handoff = protocol::OriginHandoff::create(
      io_.get_executor(), link, std::move(origin), std::move(spec), commits_, counters_,
      [this, slot, done = std::move(done), info = *flow, target = req.target_host](const protocol::OriginResult& o) {
        OfferResult r;
        r.flow = info;
        r.why = o.why;
        r.trace = o.trace;
        switch (o.state) {
          case protocol::OriginState::kCommitted: r.outcome = OfferOutcome::kOffloaded; break;
          case protocol::OriginState::kRolledBack:
            r.outcome = OfferOutcome::kServedLocally;
            r.conn = std::move(slot->conn);
            break;
          default: r.outcome = OfferOutcome::kLost; break;
        }
        if (r.outcome != OfferOutcome::kOffloaded) {
          std::lock_guard lock(mu_);
          flows_out_.erase(info.flow_id);
        }
        record(HandoffRecord::Kind::kOffer, r.flow, target, offer_outcome_name(r.outcome), r.why, r.trace);
        done(std::move(r));
      });
  handoff->start();
}

void Node::Impl::give_back(AcceptedConnection conn, std::string unread, GiveBackDone done) {
  // First let the client acknowledge what was sent (bounded). The ACK
  // usually follows within tens of µs (the client's wake-up): check on every
  // turn of this thread's loop for a while — re-posted, not a short timer: on
  // a VM, arming a timer tens of µs out reprograms the vCPU's timer, ~15 µs
  // each (arm + disarm, measured) — then back off with timers.
  channel::PollWindow::note_traffic();
  struct Drain {
    AcceptedConnection conn;
    std::string unread;
    GiveBackDone done;
    std::chrono::steady_clock::time_point until, spin_until;
    asio::steady_timer timer;
    std::chrono::microseconds step{50};
  };
  const auto now = std::chrono::steady_clock::now();
  auto d = std::make_shared<Drain>(Drain{std::move(conn), std::move(unread), std::move(done),
                                         now + config_.return_drain, now + std::chrono::microseconds(300),
                                         asio::steady_timer(io_)});
  auto poll = std::make_shared<std::function<void()>>();
  *poll = [this, d, poll] {
    int outq = 0;
    const bool drained = ::ioctl(d->conn.socket.get(), SIOCOUTQ, &outq) != 0 || outq == 0;
    if (drained || std::chrono::steady_clock::now() >= d->until) {
      // Break the poll ↔ lambda cycle; this lambda's captures die with it,
      // so keep what is still needed in locals first.
      Impl* self = this;
      auto drain = d;
      auto keep = poll;
      *keep = nullptr;
      return self->start_give_back(std::move(drain->conn), std::move(drain->unread), std::move(drain->done));
    }
    if (std::chrono::steady_clock::now() < d->spin_until) {
      channel::PollWindow::note_traffic();
      // A re-posted handler keeps the loop from its idle yield: yield here,
      // or the client's thread on this CPU (whose ACK we wait for) waits.
      ::sched_yield();
      return asio::post(io_, [poll] {
        if (*poll) (*poll)();
      });
    }
    d->timer.expires_after(d->step);
    d->step = std::min(d->step * 2, std::chrono::microseconds(1000));
    d->timer.async_wait([poll](boost::system::error_code) {
      if (*poll) (*poll)();
    });
  };
  (*poll)();
}

void Node::Impl::start_give_back(AcceptedConnection conn, std::string unread, GiveBackDone done) {
  auto client = peer_client(conn.origin_host);
  if (!client || !client->connected()) {
    GiveBackResult r;
    r.outcome = ReturnOutcome::kKept;
    r.why = error("give_back: no control connection to " + conn.origin_host, ENOTCONN);
    r.conn = std::move(conn);
    r.unread = std::move(unread);
    record(HandoffRecord::Kind::kGiveBack, r.conn.flow, r.conn.origin_host, return_outcome_name(r.outcome), r.why,
           r.trace);
    return done(std::move(r));
  }
  auto wire_flow = flow_to_wire(conn.flow);
  protocol::ReturnSpec spec;
  spec.flow = *wire_flow;
  spec.flow_id = conn.flow.flow_id;
  spec.sender_host = config_.host_id;
  spec.done_timeout = config_.done_timeout;
  FlowInfo info = conn.flow;
  std::string origin_host = conn.origin_host;
  auto slot = std::make_shared<AcceptedSlot>();
  auto flow = std::make_unique<SocketReturningFlow>(env_, std::move(conn), std::move(unread), slot);
  auto link = std::make_shared<protocol::PeerClientLink>(client, origin_host);
  auto handoff = protocol::ReturnHandoff::create(
      io_.get_executor(), link, std::move(flow), std::move(spec), counters_,
      [this, slot, done = std::move(done), info, origin_host](const protocol::ReturnResult& o) {
        GiveBackResult r;
        r.why = o.why;
        r.trace = o.trace;
        r.outcome = o.outcome;
        if (r.outcome == ReturnOutcome::kKept) {
          r.conn = std::move(slot->conn);
          r.unread = std::move(slot->unread);
        } else {
          target_done(info.flow_id);
        }
        record(HandoffRecord::Kind::kGiveBack, info, origin_host, return_outcome_name(r.outcome), r.why, r.trace);
        done(std::move(r));
      });
  handoff->start();
}

void Node::Impl::close(AcceptedConnection conn) {
  const FlowInfo flow = conn.flow;
  conn.socket.reset();  // a normal close: FIN (leaves with the SNAT kept below)
  // The ingress BLOCK went at GO; the SNAT stays until the FIN exchange is over.
  if (auto ip = env_.data_ip(flow.client_ip.family); ip.ok())
    env_.remove_later(target_egress_key(flow, *ip), flow.flow_id);
  // No longer served here: a reconciling frontend may drop its REDIRECT.
  target_done(flow.flow_id);
  ++closed_;
  record(HandoffRecord::Kind::kClose, flow, conn.origin_host, "closed", std::nullopt, protocol::Trace{});
  // Tell the frontend, so its REDIRECT does not wait for a reconcile. Best
  // effort: without a channel now, reconcile() finds the entry later.
  if (auto client = peer_client(conn.origin_host); client && client->connected()) {
    pb::Closed closed;
    closed.set_flow_id(flow.flow_id);
    (void)client->send(wire::wrap(closed, /*txn=*/flow.flow_id));  // a notification: its own transaction
  }
}

void Node::Impl::reconcile(std::chrono::milliseconds timeout, std::function<void(protocol::ReconcileResult)> done) {
  auto entries = config_.steer->list();
  std::map<std::string, std::vector<uint64_t>> redirects;
  auto keys = std::make_shared<std::map<uint64_t, steer::FlowKey>>();
  if (entries.ok()) {
    for (const auto& e : *entries) {
      if (e.entry.action != steer::Action::kRedirect || tag_of_flow(e.entry.owner) != tag_) continue;
      auto host = env_.peer_by_ip(e.entry.new_addr);
      if (!host) continue;  // a target we do not know: leave it to an operator
      redirects[*host].push_back(e.entry.owner);
      (*keys)[e.entry.owner] = e.entry.flow;
    }
  }
  protocol::reconcile(
      redirects,
      [this](const std::string& host) -> std::shared_ptr<protocol::ControlLink> {
        auto client = peer_client(host);
        if (!client) return nullptr;
        return std::make_shared<protocol::PeerClientLink>(client, host);
      },
      timeout,
      [this, keys, done = std::move(done)](protocol::ReconcileResult result) {
        asio::post(io_, [this, keys, done, result = std::move(result)] {
          for (uint64_t id : result.stale) {
            env_.remove((*keys)[id], id);
            std::lock_guard lock(mu_);
            flows_out_.erase(id);
          }
          done(result);
        });
      });
}

// ---- Node ------------------------------------------------------------------

Result<std::unique_ptr<Node>> Node::create(NodeConfig config) {
  auto impl = std::make_unique<Impl>(std::move(config));
  XO_TRY(impl->start());
  return std::unique_ptr<Node>(new Node(std::move(impl)));
}

Node::Node(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Node::~Node() { stop(); }

void Node::set_accept_handler(AcceptHandler handler) {
  std::lock_guard lock(impl_->mu_);
  impl_->on_accept_ = std::move(handler);
}
void Node::set_return_handler(ReturnHandler handler) {
  std::lock_guard lock(impl_->mu_);
  impl_->on_return_ = std::move(handler);
}
void Node::set_ended_handler(EndedHandler handler) {
  std::lock_guard lock(impl_->mu_);
  impl_->on_ended_ = std::move(handler);
}
void Node::set_record_observer(RecordObserver observer) {
  std::lock_guard lock(impl_->mu_);
  impl_->has_observer_ = static_cast<bool>(observer);
  impl_->observer_ = std::move(observer);
}

boost::asio::any_io_executor Node::executor() { return impl_->io_.get_executor(); }

// dispatch: on the Node's own thread the work starts now (a caller doing its
// client I/O there offers without a thread hop); from any other thread it is
// posted.
void Node::offer(OfferRequest request, OfferDone done) {
  asio::dispatch(impl_->io_, [impl = impl_.get(), request = std::move(request), done = std::move(done)]() mutable {
    impl->offer(std::move(request), std::move(done));
  });
}

void Node::give_back(AcceptedConnection conn, std::string unread, GiveBackDone done) {
  asio::dispatch(impl_->io_, [impl = impl_.get(), conn = std::move(conn), unread = std::move(unread),
                              done = std::move(done)]() mutable {
    impl->give_back(std::move(conn), std::move(unread), std::move(done));
  });
}

void Node::close(AcceptedConnection conn) {
  asio::dispatch(impl_->io_, [impl = impl_.get(), conn = std::move(conn)]() mutable { impl->close(std::move(conn)); });
}

void Node::reconcile(std::chrono::milliseconds timeout, std::function<void(protocol::ReconcileResult)> done) {
  asio::post(impl_->io_, [impl = impl_.get(), timeout, done = std::move(done)]() mutable {
    impl->reconcile(timeout, std::move(done));
  });
}

bool Node::connected(const std::string& host_id) const {
  auto it = impl_->peer_clients_.find(host_id);
  return it != impl_->peer_clients_.end() && it->second->connected();
}
boost::asio::ip::tcp::endpoint Node::control_endpoint() const { return impl_->server_->local_endpoint(); }
const std::string& Node::host_id() const { return impl_->config_.host_id; }
uint16_t Node::node_tag() const { return impl_->tag_; }

NodeStats Node::stats() const {
  const auto& c = impl_->counters_;
  NodeStats s;
  s.offers = c.offers;
  s.accepts = c.accepts;
  s.refusals = c.refusals;
  s.rollbacks = c.rollbacks;
  s.late_ready = c.late_ready;
  s.served = c.served;
  s.discarded = c.discarded;
  s.returns = c.returns;
  s.steer_errors = impl_->env_.steer_errors();
  s.closed = impl_->closed_.load();
  s.replayed = impl_->env_.replayed();
  s.ended = impl_->ended_.load();
  std::lock_guard lock(impl_->mu_);
  s.flows_out = impl_->flows_out_.size();
  s.flows_in = impl_->flows_in_.size();
  return s;
}

const protocol::Counters& Node::counters() const { return impl_->counters_; }

Result<std::vector<steer::ListedEntry>> Node::steering_entries() const { return impl_->config_.steer->list(); }

void Node::stop() { impl_->stop(); }

}  // namespace xo::handoff::node
