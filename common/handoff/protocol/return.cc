#include "common/handoff/protocol/return.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>

#include "common/handoff/wire/messages.h"

namespace xo::handoff::protocol {

const char* return_outcome_name(ReturnOutcome o) {
  switch (o) {
    case ReturnOutcome::kReturned: return "returned";
    case ReturnOutcome::kKept: return "kept";
    case ReturnOutcome::kDropped: return "dropped";
    case ReturnOutcome::kLost: return "lost";
  }
  return "?";
}

std::shared_ptr<ReturnHandoff> ReturnHandoff::create(boost::asio::any_io_executor executor,
                                                     std::shared_ptr<ControlLink> link,
                                                     std::unique_ptr<ReturningFlow> flow, ReturnSpec spec,
                                                     Counters& counters, Done done) {
  return std::shared_ptr<ReturnHandoff>(new ReturnHandoff(std::move(executor), std::move(link), std::move(flow),
                                                          std::move(spec), counters, std::move(done)));
}

ReturnHandoff::ReturnHandoff(boost::asio::any_io_executor executor, std::shared_ptr<ControlLink> link,
                             std::unique_ptr<ReturningFlow> flow, ReturnSpec spec, Counters& counters, Done done)
    : executor_(std::move(executor)),
      link_(std::move(link)),
      flow_(std::move(flow)),
      spec_(std::move(spec)),
      counters_(counters),
      done_(std::move(done)) {}

void ReturnHandoff::start() {
  // On the executor's own thread (the Node's) it runs at once: the client's
  // connection is frozen from here on, nothing else should go first.
  boost::asio::dispatch(executor_, [self = shared_from_this()] { self->run(); });
}

void ReturnHandoff::run() {
  auto frozen = flow_->freeze();
  trace_.mark("freeze");
  if (!frozen.ok()) return finish(ReturnOutcome::kKept, annotate(frozen.take_error(), "freeze"));
  pb::Return ret;
  *ret.mutable_flow() = spec_.flow;
  ret.set_flow_id(spec_.flow_id);
  ret.set_tcp_snapshot(std::move(frozen->frozen.tcp_snapshot));
  if (frozen->frozen.tls_state) ret.set_tls_state(std::move(*frozen->frozen.tls_state));
  ret.set_client_bytes(std::move(frozen->client_bytes));
  ret.set_origin_host(spec_.sender_host);
  if (auto st = wire::validate(ret); !st.ok()) return keep(annotate(st.take_error(), "return"));
  link_->request(wire::wrap(std::move(ret)), spec_.done_timeout,
                 [self = shared_from_this()](Result<pb::Envelope> answer) {
                   // dispatch: a DONE arriving on this thread is answered with HELD at once.
                   boost::asio::dispatch(self->executor_, [self, answer = std::move(answer)]() mutable {
                     self->on_answer(std::move(answer));
                   });
                 });
  trace_.mark("return_sent");
}

void ReturnHandoff::on_answer(Result<pb::Envelope> answer) {
  trace_.mark("answer");
  if (!answer.ok()) {
    const int code = answer.error().code;
    // Never left this host: we still own the connection.
    if (code == ENOTCONN || code == EINVAL) return keep(annotate(answer.take_error(), "RETURN not sent"));
    // Sent, fate unknown: the frontend may have restored it. Drop our copy.
    flow_->release();
    trace_.mark("release");
    return finish(ReturnOutcome::kDropped, annotate(answer.take_error(), "no DONE"));
  }
  if (answer->type() == pb::TYPE_REFUSE)
    return keep(error("frontend " + link_->peer_host_id() + " refused the RETURN: " + answer->refuse().detail()));
  if (answer->type() != pb::TYPE_DONE || answer->done().flow_id() != spec_.flow_id) {
    flow_->release();  // a confused frontend: do not risk two senders
    return finish(ReturnOutcome::kDropped, error("frontend answered for another flow", EPROTO));
  }
  // The frontend hands the connection to its application once HELD is in:
  // what our BLOCK dropped (often the client's next request) is replayed into
  // the socket first. Sent even when empty; local cleanup comes after.
  pb::Held held;
  held.set_flow_id(spec_.flow_id);
  wire::add_held_packets(held.mutable_packets(), flow_->take_held());
  (void)link_->send(wire::wrap(std::move(held), spec_.flow_id));
  flow_->release();
  trace_.mark("release");
  ++counters_.returns;
  finish(ReturnOutcome::kReturned, std::nullopt);
}

void ReturnHandoff::keep(Error why) {
  auto st = flow_->thaw();
  trace_.mark("thaw");
  if (!st.ok()) return finish(ReturnOutcome::kLost, annotate(st.take_error(), "thaw after: " + why.message));
  finish(ReturnOutcome::kKept, std::move(why));
}

void ReturnHandoff::finish(ReturnOutcome outcome, std::optional<Error> why) {
  ReturnResult result{outcome, std::move(why), trace_};
  if (auto done = std::move(done_)) done(result);
}

Status accept_return(ControlLink& link, const pb::Envelope& message, ReturnAcceptor& acceptor, Counters& counters) {
  if (message.type() != pb::TYPE_RETURN) return error("not a RETURN", EINVAL);
  const pb::Return& ret = message.return_();
  auto refuse = [&](pb::Refuse::Reason reason, const std::string& detail) {
    ++counters.refusals;
    pb::Refuse r;
    r.set_flow_id(ret.flow_id());
    r.set_reason(reason);
    r.set_detail(detail.substr(0, 1000));
    return link.send(wire::wrap(std::move(r), message.txn()));
  };
  if (ret.origin_host() != link.peer_host_id())
    return refuse(pb::Refuse::BAD_REQUEST, "RETURN names " + ret.origin_host() + " but the certificate is " +
                                               link.peer_host_id());
  if (auto st = acceptor.take_back(ret, link.peer_host_id()); !st.ok())
    return refuse(pb::Refuse::RESTORE_FAILED, st.error().to_string());
  ++counters.returns;
  pb::Done done;
  done.set_flow_id(ret.flow_id());
  return link.send(wire::wrap(done, message.txn()));
}

}  // namespace xo::handoff::protocol
