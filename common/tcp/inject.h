// Injecting one segment "from the peer" into a restored socket.
//
// No sockopt puts the peer's FIN into a socket, nor acknowledges our FIN: a
// restored half-closed connection gets them as libsoccr gives them, by a
// hand-built segment sent through a raw socket to the restored socket's own
// (local) address. The segment carries SO_MARK kInjectMark.
#pragma once

#include <cstdint>
#include <string_view>

#include "common/base/result.h"
#include "common/tcp/snapshot.h"

namespace xo::tcp {

struct InjectedSegment {
  Endpoint from;  // the peer (source of the segment)
  Endpoint to;    // the restored socket (must be an address of this host)
  uint32_t seq = 0, ack = 0;
  uint16_t window = 0;  // already scaled down by the peer's window scale
  bool fin = false;     // FIN|ACK, else a bare ACK
};

Status inject_segment(const InjectedSegment& seg);

// Replays a segment that was dropped on its way to this host's socket (an IP
// packet from its header on, as bpf/steer.bpf.c held it): the destination
// address becomes `to`'s (the address the socket is bound to now), the TCP
// checksum is recomputed, and it is sent through a raw socket to that local
// address. Refuses anything but a whole IPv4/IPv6 TCP segment from `from`
// (address and port) to `to`'s port: nothing can be injected into another
// connection.
Status replay_packet(std::string_view ip_packet, const Endpoint& from, const Endpoint& to);

}  // namespace xo::tcp
