// libFuzzer target: arbitrary bytes into the handoff frame decoder.
// The decoder must reject or accept without crashing, leaking or reading out
// of bounds; whatever it accepts must be valid and re-encode to the same
// message.
#include <google/protobuf/stubs/logging.h>

#include <cstdlib>

#include "common/handoff/wire/frame.h"
#include "common/handoff/wire/limits.h"
#include "common/handoff/wire/messages.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // protobuf logs every invalid UTF-8 string it rejects; that is expected here.
  static const bool quiet = [] {
    google::protobuf::SetLogHandler(nullptr);
    return true;
  }();
  (void)quiet;

  std::span<const uint8_t> bytes(data, size);
  xo::handoff::wire::SequenceGuard guard;
  auto envelope = xo::handoff::wire::decode_frame(bytes, guard);
  if (envelope.ok()) {
    if (!xo::handoff::wire::validate(*envelope).ok()) std::abort();
    auto again = xo::handoff::wire::encode_frame(*envelope);
    if (!again.ok()) std::abort();
    auto back = xo::handoff::wire::decode_frame(*again);
    if (!back.ok() || back->SerializeAsString() != envelope->SerializeAsString()) std::abort();
  }
  // The same bytes as a frame body: reaches protobuf parsing and validate()
  // without first having to guess a matching length header.
  if (auto body = xo::handoff::wire::decode_envelope(std::span<const uint8_t>(data, size)); body.ok()) {
    if (!xo::handoff::wire::encode_frame(*body).ok()) std::abort();  // accepted means sendable
  }
  // Also as a stream of frames, the way a connection reads them.
  xo::handoff::wire::SequenceGuard stream_guard;
  while (bytes.size() >= xo::handoff::wire::kFrameHeaderBytes) {
    auto length = xo::handoff::wire::decode_frame_length(bytes.first(4));
    if (!length.ok() || bytes.size() - 4 < *length) break;
    auto e = xo::handoff::wire::decode_envelope(bytes.subspan(4, *length));
    if (!e.ok() || !stream_guard.accept(e->seq()).ok()) break;
    bytes = bytes.subspan(4 + *length);
  }
  return 0;
}
