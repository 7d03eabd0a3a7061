// ReturnAcceptor on the frontend: take a connection back from a target.
// BLOCK replaces the REDIRECT (packets in flight are dropped, not reset),
// restore on the service address, then remove the entry (local delivery).
// All or nothing: on failure the REDIRECT to the target is put back.
#pragma once

#include <functional>

#include "common/handoff/node/host_env.h"
#include "common/handoff/protocol/ports.h"

namespace xo::handoff::node {

class SocketReturnAcceptor final : public protocol::ReturnAcceptor {
 public:
  using Deliver = std::function<void(ReturnedConnection)>;
  // Whether `flow_id` was offloaded from here to `host` (and not yet returned).
  using Owned = std::function<bool(uint64_t flow_id, const std::string& host)>;
  SocketReturnAcceptor(HostEnv& env, Owned owned, Deliver deliver)
      : env_(env), owned_(std::move(owned)), deliver_(std::move(deliver)) {}
  Status take_back(const pb::Return& returned, const std::string& from_host) override;

 private:
  HostEnv& env_;
  Owned owned_;
  Deliver deliver_;
};

}  // namespace xo::handoff::node
