// RETURN: the target hands a connection back to the frontend, which owns the
// redirect (design.md, "Who owns what").
//
//   target: freeze (BLOCK, capture, unread client bytes) → RETURN
//   frontend: take_back (restore, REDIRECT → local delivery) → DONE
//   target: release (drop the repair-mode socket, BLOCK and SNAT)
//
// REFUSE, or a RETURN that never left (no connection, invalid): the target
// thaws and still owns the connection. A RETURN whose answer never came
// (timeout, channel lost after sending) has an unknown fate: the target drops
// its copy silently. If the frontend did restore, the connection lives there;
// if not, the client sees a reset — never two senders on one connection.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <memory>

#include "common/handoff/protocol/ports.h"
#include "common/handoff/protocol/trace.h"

namespace xo::handoff::protocol {

struct ReturnSpec {
  pb::Flow flow;
  uint64_t flow_id = 0;
  std::string sender_host;  // this host's id (as in its certificate)
  std::chrono::milliseconds done_timeout{500};
};

enum class ReturnOutcome { kReturned, kKept, kDropped, kLost };
const char* return_outcome_name(ReturnOutcome o);

struct ReturnResult {
  ReturnOutcome outcome = ReturnOutcome::kLost;
  std::optional<Error> why;
  Trace trace;
};

class ReturnHandoff : public std::enable_shared_from_this<ReturnHandoff> {
 public:
  using Done = std::function<void(const ReturnResult&)>;
  static std::shared_ptr<ReturnHandoff> create(boost::asio::any_io_executor executor,
                                               std::shared_ptr<ControlLink> link, std::unique_ptr<ReturningFlow> flow,
                                               ReturnSpec spec, Counters& counters, Done done);
  void start();  // `done` is called exactly once

 private:
  ReturnHandoff(boost::asio::any_io_executor executor, std::shared_ptr<ControlLink> link,
                std::unique_ptr<ReturningFlow> flow, ReturnSpec spec, Counters& counters, Done done);
  void run();
  void on_answer(Result<pb::Envelope> answer);
  void keep(Error why);
  void finish(ReturnOutcome outcome, std::optional<Error> why);

  boost::asio::any_io_executor executor_;
  std::shared_ptr<ControlLink> link_;
  std::unique_ptr<ReturningFlow> flow_;
  ReturnSpec spec_;
  Counters& counters_;
  Done done_;
  Trace trace_;
};

// Frontend: answer a RETURN. The sender must be the host the certificate
// names (return.origin_host); take_back() decides; DONE or REFUSE goes back.
Status accept_return(ControlLink& link, const pb::Envelope& message, ReturnAcceptor& acceptor, Counters& counters);

}  // namespace xo::handoff::protocol
