// The target's ports: TargetFlowFactory::prepare() BLOCKs the flow on this
// host's ingress, installs the egress SNAT back to the service address,
// restores TCP (bound to this host's data address, NAT mode) and decodes the
// TLS state; TargetFlow::serve() unblocks and hands the connection to the
// daemon; discard() drops it without a trace.
#pragma once

#include <functional>
#include <memory>

#include "common/handoff/node/host_env.h"
#include "common/handoff/protocol/ports.h"

namespace xo::handoff::node {

class SocketTargetFlowFactory final : public protocol::TargetFlowFactory {
 public:
  // `serve` receives every committed connection (on the Node's thread).
  using Serve = std::function<void(AcceptedConnection)>;
  using Discarded = std::function<void(const FlowInfo&, const std::string& origin, const protocol::Trace&)>;
  SocketTargetFlowFactory(HostEnv& env, Serve serve, Discarded discarded)
      : env_(env), serve_(std::move(serve)), discarded_(std::move(discarded)) {}

  std::variant<std::unique_ptr<protocol::TargetFlow>, Refusal> prepare(const pb::Offer& offer) override;

 private:
  HostEnv& env_;
  Serve serve_;
  Discarded discarded_;
};

}  // namespace xo::handoff::node
