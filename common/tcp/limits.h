// Size limits of a TCP snapshot, in one place: common/tcp enforces them when
// capturing and decoding, and the handoff wire format (common/handoff/wire/
// limits.h) derives its snapshot field limit from them, so a snapshot this
// library accepts always fits into an OFFER / RETURN and vice versa.
#pragma once

#include <cstddef>

namespace xo::tcp {

// Send + receive queue bytes a snapshot may carry together (a large sndbuf).
inline constexpr size_t kMaxSnapshotQueueBytes = 48u << 20;
// Everything else in an encoding: header, endpoints, sequence numbers,
// options, and fields a newer writer may append (readers skip those).
inline constexpr size_t kMaxSnapshotFixedBytes = 64u << 10;
// Upper bound of encode(snapshot).size() that decode() is expected to accept.
inline constexpr size_t kMaxEncodedSnapshotBytes = kMaxSnapshotQueueBytes + kMaxSnapshotFixedBytes;

}  // namespace xo::tcp
