// ReturningFlow over a served socket (target → frontend): BLOCK this host's
// ingress, TCP_REPAIR snapshot; after DONE a silent close and removal of this
// host's BLOCK and SNAT; after a refusal resume and unblock.
#pragma once

#include <memory>

#include "common/handoff/node/host_env.h"
#include "common/handoff/protocol/ports.h"
#include "common/tcp/snapshot.h"

namespace xo::handoff::node {

struct AcceptedSlot {
  AcceptedConnection conn;
  std::string unread;
};

class SocketReturningFlow final : public protocol::ReturningFlow {
 public:
  SocketReturningFlow(HostEnv& env, AcceptedConnection conn, std::string unread, std::shared_ptr<AcceptedSlot> slot);
  ~SocketReturningFlow() override;

  Result<protocol::ReturnState> freeze() override;
  void release() override;
  std::vector<std::string> take_held() override { return env_.take_held(conn_.flow.flow_id); }
  Status thaw() override;

 private:
  steer::FlowKey in_key() const;
  steer::FlowKey out_key() const;

  HostEnv& env_;
  AcceptedConnection conn_;
  std::string unread_;
  std::shared_ptr<AcceptedSlot> slot_;
  std::optional<steer::IpAddr> target_ip_;
  std::optional<tcp::Snapshot> snapshot_;
  bool blocked_ = false, egress_blocked_ = false, done_ = false;
};

}  // namespace xo::handoff::node
