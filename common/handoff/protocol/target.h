// The target side: every connection offered to this host.
//
//   OFFER → prepare (BLOCK, restore, SNAT; nothing written) → READY
//   GO → serve                      ABORT → discard
//   no GO in time → QUERY_COMMITTED to the origin over a fresh connection:
//     committed → serve; anything else → discard (silently: no FIN, no RST)
//
// An OFFER whose origin_host differs from the host id of the certificate on
// the connection it came over is refused: a host only offers its own flows.
// Messages for a flow must come from the host that offered it.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <map>
#include <memory>
#include <set>

#include "common/handoff/protocol/ports.h"
#include "common/handoff/protocol/trace.h"

namespace xo::handoff::protocol {

struct TargetOptions {
  // How long after READY the target waits for GO, beyond the origin's own
  // ready_timeout (READY may arrive just before the origin gives up).
  std::chrono::milliseconds go_slack{1000};
};

enum class TargetState { kPrepared, kQuerying, kServing };

class TargetHandoffs : public std::enable_shared_from_this<TargetHandoffs> {
 public:
  static std::shared_ptr<TargetHandoffs> create(boost::asio::any_io_executor executor, TargetFlowFactory& factory,
                                                CommitQuery& query, Counters& counters, TargetOptions options = {});

  // A message from a control connection (OFFER, GO, ABORT, RECONCILE); posts
  // to the executor. Other types are ignored.
  void on_message(std::shared_ptr<ControlLink> link, pb::Envelope message);

  // The daemon finished with a served flow (returned or closed).
  void finished(uint64_t flow_id);

  // For tests and reconcile: flows in each state.
  size_t count(TargetState state) const;
  std::vector<uint64_t> held() const;  // flows being served

 private:
  struct Entry {
    TargetState state = TargetState::kPrepared;
    std::string origin_host;
    std::unique_ptr<TargetFlow> flow;
    std::unique_ptr<boost::asio::steady_timer> go_timer;
    Trace trace;
  };
  TargetHandoffs(boost::asio::any_io_executor executor, TargetFlowFactory& factory, CommitQuery& query,
                 Counters& counters, TargetOptions options);
  void handle(const std::shared_ptr<ControlLink>& link, pb::Envelope message);
  void on_offer(const std::shared_ptr<ControlLink>& link, const pb::Envelope& message);
  void on_go(const std::shared_ptr<ControlLink>& link, const pb::Go& go);
  void on_abort(const std::shared_ptr<ControlLink>& link, uint64_t flow_id);
  void on_go_timeout(uint64_t flow_id);
  void serve(uint64_t flow_id, Entry& entry, std::vector<std::string> held);
  void discard(uint64_t flow_id);
  void refuse(ControlLink& link, const pb::Envelope& offer, pb::Refuse::Reason reason, const std::string& detail);

  boost::asio::any_io_executor executor_;
  TargetFlowFactory& factory_;
  CommitQuery& query_;
  Counters& counters_;
  TargetOptions options_;
  std::map<uint64_t, Entry> flows_;  // by flow id; only touched on executor_
};

}  // namespace xo::handoff::protocol
