// pb::Endpoint <-> sockaddr_storage, so callers never pack address bytes by
// hand (xo::tcp::Endpoint wraps a sockaddr_storage too).
#pragma once

#include <sys/socket.h>

#include "common/base/result.h"
#include "common/handoff/wire/handoff.pb.h"

namespace xo::handoff::wire {

// AF_INET / AF_INET6 only; IPv6 scope ids and flow labels do not travel.
Result<pb::Endpoint> endpoint_to_wire(const sockaddr_storage& addr);
// Validates first (4 or 16 bytes, port 1..65535).
Result<sockaddr_storage> endpoint_from_wire(const pb::Endpoint& endpoint);

}  // namespace xo::handoff::wire
