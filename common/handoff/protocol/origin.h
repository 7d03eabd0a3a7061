// The origin side of one offload (design.md, "The offload protocol"):
//
//   freeze (BLOCK, then TCP_REPAIR + TLS) → OFFER → READY → redirect →
//   record the commit → GO → release the repair-mode socket (it sends nothing)
//
// Before GO nothing is final: a REFUSE, a timeout, a broken channel, a READY
// for another flow or a failed redirect all end in thaw() (the origin serves
// the request itself) and, when the target may hold state, an ABORT. GO is
// the commit point; the commit is recorded before GO is sent, so a target
// that misses GO and asks (QUERY_COMMITTED) gets the truth.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <memory>

#include "common/handoff/protocol/commit_log.h"
#include "common/handoff/protocol/ports.h"
#include "common/handoff/protocol/trace.h"

namespace xo::handoff::protocol {

struct OfferSpec {
  pb::Flow flow;
  uint64_t flow_id = 0;
  std::string payload;        // the response plan, opaque here
  std::string origin_host;    // this host's id (as in its certificate)
  std::chrono::milliseconds ready_timeout{200};
};

enum class OriginState { kStart, kOffered, kCommitted, kRolledBack, kLost };
const char* origin_state_name(OriginState s);

struct OriginResult {
  OriginState state = OriginState::kStart;  // kCommitted, kRolledBack, or kLost (thaw failed)
  std::optional<Error> why;                 // why it was not committed
  Trace trace;
};

class OriginHandoff : public std::enable_shared_from_this<OriginHandoff> {
 public:
  using Done = std::function<void(const OriginResult&)>;
  static std::shared_ptr<OriginHandoff> create(boost::asio::any_io_executor executor,
                                               std::shared_ptr<ControlLink> link, std::unique_ptr<OriginFlow> flow,
                                               OfferSpec spec, CommitLog& commits, Counters& counters, Done done);
  // Runs the handoff on `executor`; `done` is called exactly once.
  void start();
  OriginState state() const { return state_; }

 private:
  OriginHandoff(boost::asio::any_io_executor executor, std::shared_ptr<ControlLink> link,
                std::unique_ptr<OriginFlow> flow, OfferSpec spec, CommitLog& commits, Counters& counters, Done done);
  void run();
  void on_answer(Result<pb::Envelope> answer);
  void roll_back(Error why, bool abort_target);
  void finish(OriginState state, std::optional<Error> why);

  boost::asio::any_io_executor executor_;
  std::shared_ptr<ControlLink> link_;
  std::unique_ptr<OriginFlow> flow_;
  OfferSpec spec_;
  CommitLog& commits_;
  Counters& counters_;
  Done done_;
  OriginState state_ = OriginState::kStart;
  uint64_t txn_ = 0;
  Trace trace_;
};

// A READY whose OFFER is no longer pending (it came after the timeout and the
// rollback): refuse it with ABORT so the target drops its copy now instead of
// at its GO timeout. Other unmatched responses are ignored. Returns true when
// an ABORT was sent.
bool refuse_late_ready(ControlLink& link, const pb::Envelope& unmatched, Counters& counters);

// Answer a target's QUERY_COMMITTED from the commit log.
Status answer_query_committed(ControlLink& link, const pb::Envelope& query, const CommitLog& commits);

}  // namespace xo::handoff::protocol
