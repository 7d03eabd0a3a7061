// OriginFlow over a real socket (frontend): BLOCK both directions, TCP_REPAIR
// snapshot, REDIRECT to the target, silent close; or resume and unblock.
#pragma once

#include <memory>

#include "common/handoff/node/host_env.h"
#include "common/handoff/protocol/ports.h"
#include "common/tcp/snapshot.h"

namespace xo::handoff::node {

// Where a rolled-back connection is handed back to the Node.
struct ConnectionSlot {
  Connection conn;
};

class SocketOriginFlow final : public protocol::OriginFlow {
 public:
  // `conn` is moved into the flow; after thaw() it is in `slot` again.
  SocketOriginFlow(HostEnv& env, FlowInfo flow, Connection conn, std::shared_ptr<ConnectionSlot> slot);
  ~SocketOriginFlow() override;

  Result<protocol::FrozenState> freeze() override;
  Status redirect(const std::string& target_host) override;
  std::vector<std::string> take_held() override { return env_.take_held(flow_.flow_id); }
  void release() override;
  Status thaw() override;

 private:
  HostEnv& env_;
  FlowInfo flow_;
  Connection conn_;
  std::shared_ptr<ConnectionSlot> slot_;
  std::optional<tcp::Snapshot> snapshot_;  // kept until READY (design.md invariant)
  bool blocked_ = false, released_ = false;
};

}  // namespace xo::handoff::node
