#include "common/tls/socket_io.h"

#include <sys/socket.h>

#include <cerrno>

namespace xo::tls {

Status send_all(int fd, std::span<const uint8_t> data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return sys_error("send");
    }
    data = data.subspan(size_t(n));
  }
  return {};
}

Result<size_t> recv_append(int fd, std::vector<uint8_t>& buf, size_t max, bool nonblocking, bool* would_block) {
  if (would_block) *would_block = false;
  size_t at = buf.size();
  buf.resize(at + max);
  for (;;) {
    ssize_t n = ::recv(fd, buf.data() + at, max, nonblocking ? MSG_DONTWAIT : 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      buf.resize(at);
      if (nonblocking && (err == EAGAIN || err == EWOULDBLOCK)) {
        if (would_block) *would_block = true;
        return size_t{0};
      }
      return sys_error("recv", err);
    }
    buf.resize(at + size_t(n));
    return size_t(n);
  }
}

}  // namespace xo::tls
