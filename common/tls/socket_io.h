// Blocking socket helpers shared by the record layers (EINTR handled here).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/base/result.h"

namespace xo::tls {

// Send every byte (blocking fd), or fail.
Status send_all(int fd, std::span<const uint8_t> data);
// Append what one recv() returns (at most `max` bytes) to `buf`; returns the
// count, 0 on EOF. With nonblocking=true returns 0 with no error on EAGAIN and
// sets *would_block.
Result<size_t> recv_append(int fd, std::vector<uint8_t>& buf, size_t max, bool nonblocking = false,
                           bool* would_block = nullptr);

}  // namespace xo::tls
