#include "common/handoff/protocol/origin.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>

#include "common/handoff/wire/messages.h"

namespace xo::handoff::protocol {

const char* origin_state_name(OriginState s) {
  switch (s) {
    case OriginState::kStart: return "start";
    case OriginState::kOffered: return "offered";
    case OriginState::kCommitted: return "committed";
    case OriginState::kRolledBack: return "rolled-back";
    case OriginState::kLost: return "lost";
  }
  return "?";
}

std::shared_ptr<OriginHandoff> OriginHandoff::create(boost::asio::any_io_executor executor,
                                                     std::shared_ptr<ControlLink> link,
                                                     std::unique_ptr<OriginFlow> flow, OfferSpec spec,
                                                     CommitLog& commits, Counters& counters, Done done) {
  return std::shared_ptr<OriginHandoff>(new OriginHandoff(std::move(executor), std::move(link), std::move(flow),
                                                          std::move(spec), commits, counters, std::move(done)));
}

OriginHandoff::OriginHandoff(boost::asio::any_io_executor executor, std::shared_ptr<ControlLink> link,
                             std::unique_ptr<OriginFlow> flow, OfferSpec spec, CommitLog& commits,
                             Counters& counters, Done done)
    : executor_(std::move(executor)),
      link_(std::move(link)),
      flow_(std::move(flow)),
      spec_(std::move(spec)),
      commits_(commits),
      counters_(counters),
      done_(std::move(done)) {}

void OriginHandoff::start() {
  // On the executor's own thread (the Node's) it runs at once: the client's
  // connection is frozen from here on, nothing else should go first.
  boost::asio::dispatch(executor_, [self = shared_from_this()] { self->run(); });
}

void OriginHandoff::run() {
  auto frozen = flow_->freeze();
  trace_.mark("freeze");
  if (!frozen.ok()) return finish(OriginState::kRolledBack, annotate(frozen.take_error(), "freeze"));

  pb::Offer offer;
  *offer.mutable_flow() = spec_.flow;
  offer.set_flow_id(spec_.flow_id);
  offer.set_tcp_snapshot(std::move(frozen->tcp_snapshot));
  if (frozen->tls_state) offer.set_tls_state(std::move(*frozen->tls_state));
  offer.set_payload(spec_.payload);
  offer.set_origin_host(spec_.origin_host);
  offer.set_ready_timeout_ms(static_cast<uint32_t>(spec_.ready_timeout.count()));
  if (auto st = wire::validate(offer); !st.ok()) return roll_back(annotate(st.take_error(), "offer"), false);

  state_ = OriginState::kOffered;
  ++counters_.offers;
  txn_ = link_->request(wire::wrap(std::move(offer)), spec_.ready_timeout,
                        [self = shared_from_this()](Result<pb::Envelope> answer) {
                          // dispatch: a READY arriving on this thread commits at once.
                          boost::asio::dispatch(self->executor_, [self, answer = std::move(answer)]() mutable {
                            self->on_answer(std::move(answer));
                          });
                        });
  trace_.mark("offer_sent");
}

void OriginHandoff::on_answer(Result<pb::Envelope> answer) {
  if (state_ != OriginState::kOffered) return;
  trace_.mark("answer");
  if (!answer.ok()) {
    // Timeout or broken channel: the target may have restored the flow and
    // be waiting for GO; ABORT (best effort) lets it drop it at once.
    return roll_back(annotate(answer.take_error(), "no READY"), true);
  }
  if (answer->type() == pb::TYPE_REFUSE) {
    ++counters_.refusals;
    return roll_back(error("target " + link_->peer_host_id() + " refused: " +
                           pb::Refuse::Reason_Name(answer->refuse().reason()) + " " + answer->refuse().detail()),
                     false);
  }
  if (answer->type() != pb::TYPE_READY || answer->ready().flow_id() != spec_.flow_id)
    return roll_back(error("target answered " + std::string(wire::type_name(answer->type())) + " for another flow",
                           EPROTO),
                     true);

  if (auto st = flow_->redirect(link_->peer_host_id()); !st.ok()) {
    return roll_back(annotate(st.take_error(), "redirect"), true);
  }
  trace_.mark("redirect");
  // Record before GO: from here on a QUERY_COMMITTED must hear "committed".
  commits_.record(spec_.flow_id);
  pb::Go go;
  go.set_flow_id(spec_.flow_id);
  // The REDIRECT is in: nothing more is dropped here for this flow.
  wire::add_held_packets(go.mutable_held(), flow_->take_held());
  // A GO lost with the channel is recovered by the target's QUERY_COMMITTED.
  (void)link_->send(wire::wrap(go, txn_));
  trace_.mark("go_sent");
  // Only now close the repair-mode socket: it sends nothing (still in repair
  // mode, egress blocked), so the target need not wait for it.
  flow_->release();
  trace_.mark("release");
  ++counters_.accepts;
  finish(OriginState::kCommitted, std::nullopt);
}

void OriginHandoff::roll_back(Error why, bool abort_target) {
  ++counters_.rollbacks;
  if (abort_target) {
    pb::Abort abort;
    abort.set_flow_id(spec_.flow_id);
    abort.set_reason(why.message.substr(0, 512));
    (void)link_->send(wire::wrap(abort, txn_ ? txn_ : 1));
  }
  auto st = flow_->thaw();
  trace_.mark("thaw");
  if (!st.ok()) return finish(OriginState::kLost, annotate(st.take_error(), "thaw after: " + why.message));
  finish(OriginState::kRolledBack, std::move(why));
}

void OriginHandoff::finish(OriginState state, std::optional<Error> why) {
  state_ = state;
  OriginResult result{state, std::move(why), trace_};
  if (auto done = std::move(done_)) done(result);
}

bool refuse_late_ready(ControlLink& link, const pb::Envelope& unmatched, Counters& counters) {
  if (unmatched.type() != pb::TYPE_READY) return false;
  ++counters.late_ready;
  pb::Abort abort;
  abort.set_flow_id(unmatched.ready().flow_id());
  abort.set_reason("READY after the origin rolled back");
  return link.send(wire::wrap(abort, unmatched.txn())).ok();
}

Status answer_query_committed(ControlLink& link, const pb::Envelope& query, const CommitLog& commits) {
  if (query.type() != pb::TYPE_QUERY_COMMITTED) return error("not a QUERY_COMMITTED", EINVAL);
  pb::Committed c;
  c.set_flow_id(query.query_committed().flow_id());
  c.set_committed(commits.committed(c.flow_id()));
  return link.send(wire::wrap(c, query.txn()));
}

}  // namespace xo::handoff::protocol
