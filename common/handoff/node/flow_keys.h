// The addresses of one offloaded flow and the steering keys derived from
// them (NAT mode, design.md "Addresses"), in one place so every port agrees:
//
//   frontend   ingress  client → service   BLOCK, then REDIRECT to the target
//              egress   service → client   BLOCK while frozen
//   target     ingress  client → target    BLOCK while frozen / before GO
//              egress   target → client    SNAT back to the service address
#pragma once

#include <cstdint>
#include <string>

#include "common/base/result.h"
#include "common/handoff/node/node.h"
#include "common/handoff/wire/handoff.pb.h"
#include "common/steer/flow.h"
#include "common/tcp/snapshot.h"

namespace xo::handoff::node {

// The flow of a connected socket on the frontend (local = service address).
Result<FlowInfo> flow_of_socket(int fd);
Result<FlowInfo> flow_from_wire(const pb::Flow& flow, uint64_t flow_id);
Result<pb::Flow> flow_to_wire(const FlowInfo& flow);

steer::FlowKey frontend_ingress_key(const FlowInfo& f);
steer::FlowKey frontend_egress_key(const FlowInfo& f);
steer::FlowKey target_ingress_key(const FlowInfo& f, const steer::IpAddr& target_ip);
steer::FlowKey target_egress_key(const FlowInfo& f, const steer::IpAddr& target_ip);

// `family` is the socket's: an IPv4 address for an AF_INET6 socket (a
// dual-stack listener's connection) becomes v4-mapped.
tcp::Endpoint to_endpoint(const steer::IpAddr& ip, uint16_t port, int family);

// A connection that must vanish without a trace on the wire: back into
// repair mode, then close (no FIN, no RST).
void close_silently(UniqueFd fd);

// Make a live socket send a window probe (TCP_REPAIR on, then off), so the
// peer answers with an ACK. After a restore or resume done while the flow
// was blocked, the peer's answer to the probe sent then was dropped; without
// a fresh ACK the socket's sent-but-unacked data has no retransmission timer
// armed and the connection stalls.
void elicit_ack(int fd);
// elicit_ack() only when the socket holds data not yet acknowledged (or not
// yet sent): with an empty send queue there is nothing a lost ACK could
// stall, and the probe costs a round trip to the client on the critical path.
void elicit_ack_if_unacked(int fd);

// Flow ids: node tag in the high 16 bits, a sequence below (seeded from the
// clock, so a restarted node does not reuse the ids of its pinned entries).
uint16_t tag_of_host(const std::string& host_id);
inline uint16_t tag_of_flow(uint64_t flow_id) { return static_cast<uint16_t>(flow_id >> 48); }

}  // namespace xo::handoff::node
