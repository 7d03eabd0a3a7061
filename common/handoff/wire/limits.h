// Size and value limits of the handoff wire format. One place, so the decoder,
// the validators and the tests agree.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/tcp/limits.h"

namespace xo::handoff::wire {

// Bumped when a change is not backward readable. A peer speaking another
// version is refused (EPROTONOSUPPORT), never half-understood.
// 2: CLOSED, HELD and GO.held (a version-1 peer would take the new types for
//    forged frames).
inline constexpr uint32_t kProtocolVersion = 2;

inline constexpr size_t kFrameHeaderBytes = 4;           // big-endian body length
inline constexpr uint32_t kMaxFrameBytes = 64u << 20;    // checked before allocating

// xo::tcp::encode() output: derived from common/tcp's own cap (queues + fixed
// fields), so what xo_tcp captures and decodes always fits and nothing larger passes.
inline constexpr size_t kMaxTcpSnapshotBytes = tcp::kMaxEncodedSnapshotBytes;
inline constexpr size_t kMaxTlsStateBytes = 64u << 10;
inline constexpr size_t kMaxPayloadBytes = 1u << 20;       // the response plan
inline constexpr size_t kMaxClientBytes = 8u << 20;        // read but not consumed
inline constexpr size_t kMaxHostIdBytes = 64;
inline constexpr size_t kMaxTextBytes = 1024;              // reasons, details
inline constexpr size_t kMaxReconcileFlows = 1u << 20;
inline constexpr uint32_t kMaxReadyTimeoutMs = 60'000;
inline constexpr size_t kMaxHeldPackets = 256;             // dropped segments carried for replay
inline constexpr size_t kMaxHeldPacketBytes = 65535 + 40;  // one IP packet

// The largest OFFER / RETURN (every blob at its limit, plus envelope and
// text fields) must fit in one frame.
static_assert(kMaxTcpSnapshotBytes + kMaxTlsStateBytes + kMaxPayloadBytes + kMaxClientBytes + 4 * kMaxTextBytes +
                      (64u << 10) <=
                  kMaxFrameBytes,
              "an OFFER/RETURN at its field limits would not fit in a frame");

}  // namespace xo::handoff::wire
