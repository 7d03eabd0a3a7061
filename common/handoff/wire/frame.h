// Framing of handoff messages on a byte stream.
//
//   frame = u32 big-endian body length | body = serialized pb::Envelope
//
// The length is checked against kMaxFrameBytes before any buffer is
// allocated. Every decoded envelope has passed validate() (messages.h).
// Replays: each direction of a connection numbers its frames 1, 2, 3, ...;
// the receiver's SequenceGuard accepts exactly the next number, so a replayed,
// dropped or reordered frame is an error and the connection is closed.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "common/base/result.h"
#include "common/handoff/wire/handoff.pb.h"

namespace xo::handoff::wire {

// Serialize a validated envelope into one frame. Fails on an invalid envelope
// (the sender never puts garbage on the wire) or one above kMaxFrameBytes.
Result<std::vector<uint8_t>> encode_frame(const pb::Envelope& envelope);

// The body length from a frame header. `header` must hold kFrameHeaderBytes
// (fewer: errc::kTruncated). 0 or above kMaxFrameBytes: errc::kOversized.
Result<uint32_t> decode_frame_length(std::span<const uint8_t> header);

// Parse and validate a frame body (without its header).
Result<pb::Envelope> decode_envelope(std::span<const uint8_t> body);

// Decode a buffer that holds exactly one frame: header, then body.
// Short input: errc::kTruncated; bytes after the frame: errc::kMalformed.
Result<pb::Envelope> decode_frame(std::span<const uint8_t> frame);

// Sending side: the next sequence number of this direction of a connection.
class SequenceCounter {
 public:
  uint64_t next() { return ++last_; }
  uint64_t last() const { return last_; }

 private:
  uint64_t last_ = 0;
};

// Receiving side: accepts exactly last + 1 (errc::kReplay otherwise).
class SequenceGuard {
 public:
  Status accept(uint64_t seq);
  uint64_t last() const { return last_; }

 private:
  uint64_t last_ = 0;
};

// Decode one frame and check its sequence number in one step.
Result<pb::Envelope> decode_frame(std::span<const uint8_t> frame, SequenceGuard& guard);

}  // namespace xo::handoff::wire
