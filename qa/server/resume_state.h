// ResumeState: where a test-server connection stopped when it was handed over.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/base/result.h"

namespace xo::testserver {

// A GET/HEAD the server still owes the client (fully or in part).
struct Owed {
  std::string method;         // "GET" or "HEAD"
  std::string target;         // "/data/10485760/7"
  bool keep_alive = true;
  uint64_t seq = 0;           // X-Request-Seq of this request
  bool head_written = false;  // the response head is already in the socket
  uint64_t body_offset = 0;   // body bytes already written (when head_written)
};

struct ResumeState {
  // Bytes read from the socket but not consumed (pipelined requests), in
  // order; they precede whatever is still in the kernel's receive queue.
  std::vector<uint8_t> unread;
  std::optional<Owed> owed;
  uint64_t requests = 0;      // requests read on this connection so far
  // The stream's own state (Stream::freeze_for_handover(), e.g. the encoded
  // TLS state); empty for plain TCP.
  std::vector<uint8_t> stream;
};

// Versioned, bounds-checked encoding (a test carries it next to the TCP snapshot).
std::vector<uint8_t> encode(const ResumeState& s);
Result<ResumeState> decode_resume_state(std::span<const uint8_t> bytes);

}  // namespace xo::testserver
