#include "common/handoff/protocol/target.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>

#include "common/handoff/wire/messages.h"

namespace xo::handoff::protocol {

std::shared_ptr<TargetHandoffs> TargetHandoffs::create(boost::asio::any_io_executor executor,
                                                       TargetFlowFactory& factory, CommitQuery& query,
                                                       Counters& counters, TargetOptions options) {
  return std::shared_ptr<TargetHandoffs>(
      new TargetHandoffs(std::move(executor), factory, query, counters, options));
}

TargetHandoffs::TargetHandoffs(boost::asio::any_io_executor executor, TargetFlowFactory& factory,
                               CommitQuery& query, Counters& counters, TargetOptions options)
    : executor_(std::move(executor)), factory_(factory), query_(query), counters_(counters), options_(options) {}

void TargetHandoffs::on_message(std::shared_ptr<ControlLink> link, pb::Envelope message) {
  // dispatch: from the channel's read handler (same thread) an OFFER is
  // prepared and a GO served at once, not after other queued work.
  boost::asio::dispatch(executor_, [self = shared_from_this(), link = std::move(link),
                                message = std::move(message)]() mutable { self->handle(link, std::move(message)); });
}

void TargetHandoffs::handle(const std::shared_ptr<ControlLink>& link, pb::Envelope message) {
  switch (message.type()) {
    case pb::TYPE_OFFER: return on_offer(link, message);
    case pb::TYPE_GO: return on_go(link, message.go());
    case pb::TYPE_ABORT: return on_abort(link, message.abort().flow_id());
    case pb::TYPE_RECONCILE: {
      pb::ReconcileAnswer answer;
      for (uint64_t id : message.reconcile().flow_ids()) {
        auto it = flows_.find(id);
        if (it != flows_.end() && it->second.state == TargetState::kServing &&
            it->second.origin_host == link->peer_host_id())
          answer.add_held_flow_ids(id);
      }
      (void)link->send(wire::wrap(std::move(answer), message.txn()));
      return;
    }
    default: return;
  }
}

void TargetHandoffs::refuse(ControlLink& link, const pb::Envelope& offer, pb::Refuse::Reason reason,
                            const std::string& detail) {
  ++counters_.refusals;
  pb::Refuse r;
  r.set_flow_id(offer.offer().flow_id());
  r.set_reason(reason);
  r.set_detail(detail.substr(0, 1000));
  (void)link.send(wire::wrap(std::move(r), offer.txn()));
}

void TargetHandoffs::on_offer(const std::shared_ptr<ControlLink>& link, const pb::Envelope& message) {
  const pb::Offer& offer = message.offer();
  if (offer.origin_host() != link->peer_host_id())
    return refuse(*link, message, pb::Refuse::BAD_REQUEST,
                  "origin_host " + offer.origin_host() + " but the connection's certificate is " +
                      link->peer_host_id());
  if (flows_.count(offer.flow_id()))
    return refuse(*link, message, pb::Refuse::BAD_REQUEST, "flow id already held");

  Entry entry;
  auto prepared = factory_.prepare(offer);
  entry.trace.mark("prepare");
  if (auto* refusal = std::get_if<TargetFlowFactory::Refusal>(&prepared))
    return refuse(*link, message, refusal->reason, refusal->detail);
  entry.flow = std::move(std::get<std::unique_ptr<TargetFlow>>(prepared));
  entry.origin_host = offer.origin_host();
  const uint64_t flow_id = offer.flow_id();
  auto& stored = flows_.emplace(flow_id, std::move(entry)).first->second;

  pb::Ready ready;
  ready.set_flow_id(flow_id);
  if (!link->send(wire::wrap(ready, message.txn())).ok()) {
    discard(flow_id);  // the origin cannot hear READY: it will roll back
    return;
  }
  stored.trace.mark("ready_sent");
  // Armed after READY is out (arming may reprogram the timerfd: not on the
  // origin's critical path). Nothing can arrive in between: same thread.
  stored.go_timer = std::make_unique<boost::asio::steady_timer>(
      executor_, std::chrono::milliseconds(offer.ready_timeout_ms()) + options_.go_slack);
  stored.go_timer->async_wait([weak = weak_from_this(), flow_id](boost::system::error_code ec) {
    if (auto self = weak.lock(); self && !ec) self->on_go_timeout(flow_id);
  });
}

void TargetHandoffs::on_go(const std::shared_ptr<ControlLink>& link, const pb::Go& go) {
  const uint64_t flow_id = go.flow_id();
  auto it = flows_.find(flow_id);
  // A GO for a flow already discarded cannot be honoured: the client will see
  // a reset, never bytes from two hosts.
  if (it == flows_.end() || it->second.origin_host != link->peer_host_id()) return;
  if (it->second.state == TargetState::kServing) return;
  serve(flow_id, it->second, {go.held().begin(), go.held().end()});
}

void TargetHandoffs::on_abort(const std::shared_ptr<ControlLink>& link, uint64_t flow_id) {
  auto it = flows_.find(flow_id);
  if (it == flows_.end() || it->second.origin_host != link->peer_host_id()) return;
  if (it->second.state == TargetState::kServing) return;  // after GO an ABORT is a bug on the origin
  discard(flow_id);
}

void TargetHandoffs::on_go_timeout(uint64_t flow_id) {
  auto it = flows_.find(flow_id);
  if (it == flows_.end() || it->second.state != TargetState::kPrepared) return;
  it->second.state = TargetState::kQuerying;
  it->second.trace.mark("go_timeout");
  query_.query(it->second.origin_host, flow_id, [weak = weak_from_this(), flow_id](Result<bool> committed) {
    auto self = weak.lock();
    if (!self) return;
    boost::asio::post(self->executor_, [self, flow_id, committed = std::move(committed)] {
      auto it = self->flows_.find(flow_id);
      if (it == self->flows_.end() || it->second.state != TargetState::kQuerying) return;
      // (GO was lost: so were the segments it carried; the client resends them.)
      if (committed.ok() && *committed) return self->serve(flow_id, it->second, {});
      self->discard(flow_id);  // no "committed" answer: drop silently
    });
  });
}

void TargetHandoffs::serve(uint64_t, Entry& entry, std::vector<std::string> held) {
  // Cancelled after serving (cancelling may reprogram the timer; same
  // thread, so it cannot fire in between). Held here: serving may end the
  // entry (a connection closed at once).
  auto go_timer = std::move(entry.go_timer);
  entry.state = TargetState::kServing;
  entry.trace.mark("serve");
  ++counters_.served;
  entry.flow->serve(std::move(held));
  if (go_timer) go_timer->cancel();
}

void TargetHandoffs::discard(uint64_t flow_id) {
  auto it = flows_.find(flow_id);
  if (it == flows_.end()) return;
  if (it->second.go_timer) it->second.go_timer->cancel();
  ++counters_.discarded;
  it->second.flow->discard();
  flows_.erase(it);
}

void TargetHandoffs::finished(uint64_t flow_id) {
  boost::asio::post(executor_, [self = shared_from_this(), flow_id] {
    auto it = self->flows_.find(flow_id);
    if (it != self->flows_.end() && it->second.state == TargetState::kServing) self->flows_.erase(it);
  });
}

size_t TargetHandoffs::count(TargetState state) const {
  size_t n = 0;
  for (const auto& [id, e] : flows_) n += e.state == state;
  return n;
}

std::vector<uint64_t> TargetHandoffs::held() const {
  std::vector<uint64_t> ids;
  for (const auto& [id, e] : flows_)
    if (e.state == TargetState::kServing) ids.push_back(id);
  return ids;
}

}  // namespace xo::handoff::protocol
