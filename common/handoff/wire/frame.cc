#include "common/handoff/wire/frame.h"

#include <algorithm>
#include <string>

#include "common/handoff/wire/errors.h"
#include "common/handoff/wire/limits.h"
#include "common/handoff/wire/messages.h"

namespace xo::handoff::wire {

Result<std::vector<uint8_t>> encode_frame(const pb::Envelope& envelope) {
  if (auto st = validate(envelope); !st.ok()) return annotate(st.take_error(), "encode_frame");
  const size_t body = envelope.ByteSizeLong();
  if (body == 0 || body > kMaxFrameBytes)
    return error("encode_frame: body of " + std::to_string(body) + " bytes exceeds the frame limit of " +
                     std::to_string(kMaxFrameBytes),
                 errc::kOversized);
  std::vector<uint8_t> frame(kFrameHeaderBytes + body);
  frame[0] = static_cast<uint8_t>(body >> 24);
  frame[1] = static_cast<uint8_t>(body >> 16);
  frame[2] = static_cast<uint8_t>(body >> 8);
  frame[3] = static_cast<uint8_t>(body);
  if (!envelope.SerializeToArray(frame.data() + kFrameHeaderBytes, static_cast<int>(body)))
    return error("encode_frame: protobuf serialization failed", errc::kMalformed);
  return frame;
}

Result<uint32_t> decode_frame_length(std::span<const uint8_t> header) {
  if (header.size() < kFrameHeaderBytes)
    return error("frame header: " + std::to_string(header.size()) + " of " +
                     std::to_string(kFrameHeaderBytes) + " bytes",
                 errc::kTruncated);
  const uint32_t length = (uint32_t{header[0]} << 24) | (uint32_t{header[1]} << 16) |
                          (uint32_t{header[2]} << 8) | uint32_t{header[3]};
  if (length == 0) return error("frame header: empty body", errc::kOversized);
  if (length > kMaxFrameBytes)
    return error("frame header: body of " + std::to_string(length) + " bytes exceeds the limit of " +
                     std::to_string(kMaxFrameBytes),
                 errc::kOversized);
  return length;
}

Result<pb::Envelope> decode_envelope(std::span<const uint8_t> body) {
  if (body.size() > kMaxFrameBytes) return error("frame body above the limit", errc::kOversized);
  pb::Envelope envelope;
  if (!envelope.ParseFromArray(body.data(), static_cast<int>(body.size())))
    return error("frame body: not a parsable handoff envelope", errc::kMalformed);
  if (auto st = validate(envelope); !st.ok()) return st.take_error();
  return envelope;
}

Result<pb::Envelope> decode_frame(std::span<const uint8_t> frame) {
  XO_ASSIGN_OR_RETURN(const uint32_t length, decode_frame_length(frame.first(std::min(frame.size(), kFrameHeaderBytes))));
  const auto body = frame.subspan(kFrameHeaderBytes);
  if (body.size() < length)
    return error("frame: body " + std::to_string(body.size()) + " of " + std::to_string(length) + " bytes",
                 errc::kTruncated);
  if (body.size() > length)
    return error("frame: " + std::to_string(body.size() - length) + " bytes after the frame",
                 errc::kMalformed);
  return decode_envelope(body);
}

Status SequenceGuard::accept(uint64_t seq) {
  if (seq != last_ + 1)
    return error("frame seq " + std::to_string(seq) + ", expected " + std::to_string(last_ + 1) +
                     (seq <= last_ ? " (replayed)" : " (out of order)"),
                 errc::kReplay);
  last_ = seq;
  return {};
}

Result<pb::Envelope> decode_frame(std::span<const uint8_t> frame, SequenceGuard& guard) {
  XO_ASSIGN_OR_RETURN(pb::Envelope envelope, decode_frame(frame));
  XO_TRY(guard.accept(envelope.seq()));
  return envelope;
}

}  // namespace xo::handoff::wire
