// Thin wrappers of the TCP_REPAIR* socket options. Each failure names the
// option, so the errors of capture()/restore() say which step failed.
#pragma once

#include <netinet/tcp.h>

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "common/base/result.h"

namespace xo::tcp::repair {

// TCP_REPAIR: TCP_REPAIR_ON, TCP_REPAIR_OFF or TCP_REPAIR_OFF_NO_WP.
Status set_mode(int fd, int mode);

// TCP_REPAIR_QUEUE: TCP_NO_QUEUE, TCP_RECV_QUEUE or TCP_SEND_QUEUE.
Status select_queue(int fd, int queue);

// TCP_QUEUE_SEQ of the selected queue.
Result<uint32_t> queue_seq(int fd);
Status set_queue_seq(int fd, uint32_t seq);

Status set_options(int fd, std::span<const tcp_repair_opt> opts);

Result<uint32_t> timestamp(int fd);
Status set_timestamp(int fd, uint32_t ts);

// TCP_REPAIR_WINDOW; nullopt when the kernel does not know the option (< 4.8).
Result<std::optional<tcp_repair_window>> window(int fd);
Status set_window(int fd, const tcp_repair_window& w);

// ioctl SIOCINQ / SIOCOUTQ / SIOCOUTQNSD.
Result<uint32_t> ioctl_len(int fd, unsigned long req, const char* name);

// Reads exactly `len` bytes of the selected queue with MSG_PEEK; fails if the
// queue holds fewer (or more) bytes than the ioctl said.
Result<std::vector<uint8_t>> peek_queue(int fd, uint32_t len, const char* name);

// Writes `bytes` into the queue selected with select_queue() in repair mode.
// The receive queue gets linear skbs of the size passed to send(); a large one
// fails with ENOMEM, so retry with halved chunks down to 1 KiB (as libsoccr).
Status fill_queue(int fd, std::span<const uint8_t> bytes, const char* name);

}  // namespace xo::tcp::repair
