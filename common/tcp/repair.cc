#include "common/tcp/repair.h"

#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <string>

namespace xo::tcp::repair {
namespace {

Status setopt(int fd, int opt, const void* v, socklen_t len, const char* name) {
  if (::setsockopt(fd, IPPROTO_TCP, opt, v, len) != 0)
    return sys_error(std::string("setsockopt(") + name + ")");
  return {};
}

Result<uint32_t> getopt_u32(int fd, int opt, const char* name) {
  uint32_t v = 0;
  socklen_t len = sizeof(v);
  if (::getsockopt(fd, IPPROTO_TCP, opt, &v, &len) != 0)
    return sys_error(std::string("getsockopt(") + name + ")");
  return v;
}

}  // namespace

Status set_mode(int fd, int mode) {
  return setopt(fd, TCP_REPAIR, &mode, sizeof(mode),
                mode == TCP_REPAIR_ON ? "TCP_REPAIR, on"
                : mode == TCP_REPAIR_OFF ? "TCP_REPAIR, off"
                                         : "TCP_REPAIR, off without window probe");
}

Status select_queue(int fd, int queue) {
  return setopt(fd, TCP_REPAIR_QUEUE, &queue, sizeof(queue), "TCP_REPAIR_QUEUE");
}

Result<uint32_t> queue_seq(int fd) { return getopt_u32(fd, TCP_QUEUE_SEQ, "TCP_QUEUE_SEQ"); }

Status set_queue_seq(int fd, uint32_t seq) {
  return setopt(fd, TCP_QUEUE_SEQ, &seq, sizeof(seq), "TCP_QUEUE_SEQ");
}

Status set_options(int fd, std::span<const tcp_repair_opt> opts) {
  return setopt(fd, TCP_REPAIR_OPTIONS, opts.data(),
                static_cast<socklen_t>(opts.size_bytes()), "TCP_REPAIR_OPTIONS");
}

Result<uint32_t> timestamp(int fd) { return getopt_u32(fd, TCP_TIMESTAMP, "TCP_TIMESTAMP"); }

Status set_timestamp(int fd, uint32_t ts) {
  return setopt(fd, TCP_TIMESTAMP, &ts, sizeof(ts), "TCP_TIMESTAMP");
}

Result<std::optional<tcp_repair_window>> window(int fd) {
  tcp_repair_window w{};
  socklen_t len = sizeof(w);
  if (::getsockopt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, &w, &len) != 0) {
    // The option appeared in Linux 4.8, TCP_REPAIR itself in 3.11.
    if (errno == ENOPROTOOPT || errno == EINVAL) return std::optional<tcp_repair_window>{};
    return sys_error("getsockopt(TCP_REPAIR_WINDOW)");
  }
  if (len != sizeof(w))
    return error("getsockopt(TCP_REPAIR_WINDOW): short answer of " + std::to_string(len) + " bytes");
  return std::optional<tcp_repair_window>{w};
}

Status set_window(int fd, const tcp_repair_window& w) {
  return setopt(fd, TCP_REPAIR_WINDOW, &w, sizeof(w), "TCP_REPAIR_WINDOW");
}

Result<uint32_t> ioctl_len(int fd, unsigned long req, const char* name) {
  int v = 0;
  if (::ioctl(fd, req, &v) != 0) return sys_error(std::string("ioctl(") + name + ")");
  if (v < 0) return error(std::string("ioctl(") + name + ") returned " + std::to_string(v));
  return static_cast<uint32_t>(v);
}

Result<std::vector<uint8_t>> peek_queue(int fd, uint32_t len, const char* name) {
  std::vector<uint8_t> buf;
  if (len == 0) return buf;
  // Ask for one byte more than expected: a longer answer means the queue
  // changed under us (flow not blocked?), a shorter one that bytes would be lost.
  buf.resize(size_t{len} + 1);
  ssize_t n = ::recv(fd, buf.data(), buf.size(), MSG_PEEK | MSG_DONTWAIT);
  if (n < 0) return sys_error(std::string("recv(MSG_PEEK) of the ") + name);
  if (static_cast<size_t>(n) != len)
    return error(std::string("recv(MSG_PEEK) of the ") + name + " returned " + std::to_string(n) +
                 " bytes but the kernel reports " + std::to_string(len) + " queued");
  buf.resize(len);
  return buf;
}

Status fill_queue(int fd, std::span<const uint8_t> bytes, const char* name) {
  constexpr size_t kMinChunk = 1024;
  size_t max_chunk = bytes.size();
  size_t off = 0;
  while (off < bytes.size()) {
    size_t chunk = std::min(bytes.size() - off, max_chunk);
    // MSG_DONTWAIT: a full buffer must fail with a reason, never hang restore().
    ssize_t n = ::send(fd, bytes.data() + off, chunk, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == ENOMEM && max_chunk > kMinChunk) {
      max_chunk /= 2;
      continue;
    }
    int err = n < 0 ? errno : 0;
    return sys_error(std::string("send() into the ") + name + " in repair mode: wrote " +
                         std::to_string(off) + " of " + std::to_string(bytes.size()) + " bytes",
                     err);
  }
  return {};
}

}  // namespace xo::tcp::repair
