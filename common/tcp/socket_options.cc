#include "common/tcp/socket_options.h"

#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cstring>

namespace xo::tcp {
namespace {

// Kernel constants that no userspace header exports (include/net/tcp.h,
// include/net/sock.h via linux/socket.h, which clashes with sys/socket.h).
constexpr size_t kCongestionNameMax = 16;  // TCP_CA_NAME_MAX
constexpr int kSndbufLock = 1;             // SOCK_SNDBUF_LOCK
constexpr int kRcvbufLock = 2;             // SOCK_RCVBUF_LOCK

Result<int> get_int(int fd, int level, int opt, const char* name) {
  int v = 0;
  socklen_t len = sizeof(v);
  if (::getsockopt(fd, level, opt, &v, &len) != 0)
    return sys_error(std::string("getsockopt(") + name + ")");
  return v;
}

Status set_int(int fd, int level, int opt, int v, const char* name) {
  if (::setsockopt(fd, level, opt, &v, sizeof(v)) != 0)
    return sys_error(std::string("setsockopt(") + name + ", " + std::to_string(v) + ")");
  return {};
}

}  // namespace

Result<bool> read_reuseaddr(int fd) {
  XO_ASSIGN_OR_RETURN(int v, get_int(fd, SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR"));
  return v != 0;
}

Status read_socket_options(int fd, SocketOptions& out) {
  XO_ASSIGN_OR_RETURN(int nodelay, get_int(fd, IPPROTO_TCP, TCP_NODELAY, "TCP_NODELAY"));
  out.nodelay = nodelay != 0;
  XO_ASSIGN_OR_RETURN(int keepalive, get_int(fd, SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE"));
  out.keepalive = keepalive != 0;
  if (out.keepalive) {
    XO_ASSIGN_OR_RETURN(out.keepidle, get_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, "TCP_KEEPIDLE"));
    XO_ASSIGN_OR_RETURN(out.keepintvl, get_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, "TCP_KEEPINTVL"));
    XO_ASSIGN_OR_RETURN(out.keepcnt, get_int(fd, IPPROTO_TCP, TCP_KEEPCNT, "TCP_KEEPCNT"));
  }
  char cc[kCongestionNameMax] = {};
  socklen_t cclen = sizeof(cc);
  if (::getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, cc, &cclen) != 0)
    return sys_error("getsockopt(TCP_CONGESTION)");
  out.congestion.assign(cc, strnlen(cc, cclen));
  // 0 means "not set, follow net.ipv4.tcp_notsent_lowat" in the kernel too.
  XO_ASSIGN_OR_RETURN(out.notsent_lowat,
                      get_int(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, "TCP_NOTSENT_LOWAT"));
  // No getsockopt tells whether SO_SNDBUF was set by the application except
  // SO_BUF_LOCK (Linux >= 5.14), which returns the SOCK_*BUF_LOCK bits.
  int locks = 0;
  socklen_t llen = sizeof(locks);
  if (::getsockopt(fd, SOL_SOCKET, SO_BUF_LOCK, &locks, &llen) != 0) {
    if (errno != ENOPROTOOPT && errno != EINVAL) return sys_error("getsockopt(SO_BUF_LOCK)");
    locks = 0;  // older kernel: sizes stay with autotuning on the new host
  }
  out.sndbuf = out.rcvbuf = 0;
  if (locks & kSndbufLock) {
    XO_ASSIGN_OR_RETURN(out.sndbuf, get_int(fd, SOL_SOCKET, SO_SNDBUF, "SO_SNDBUF"));
  }
  if (locks & kRcvbufLock) {
    XO_ASSIGN_OR_RETURN(out.rcvbuf, get_int(fd, SOL_SOCKET, SO_RCVBUF, "SO_RCVBUF"));
  }
  return {};
}

Status apply_socket_options(int fd, const SocketOptions& o) {
  // Only what differs from a fresh socket's defaults: each setsockopt costs.
  if (o.nodelay) XO_TRY(set_int(fd, IPPROTO_TCP, TCP_NODELAY, 1, "TCP_NODELAY"));
  if (o.keepalive) {
    if (o.keepidle > 0) XO_TRY(set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, o.keepidle, "TCP_KEEPIDLE"));
    if (o.keepintvl > 0)
      XO_TRY(set_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, o.keepintvl, "TCP_KEEPINTVL"));
    if (o.keepcnt > 0) XO_TRY(set_int(fd, IPPROTO_TCP, TCP_KEEPCNT, o.keepcnt, "TCP_KEEPCNT"));
    XO_TRY(set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE"));
  }
  if (!o.congestion.empty()) {
    if (::setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, o.congestion.data(),
                     static_cast<socklen_t>(o.congestion.size())) != 0)
      return sys_error("setsockopt(TCP_CONGESTION, \"" + o.congestion +
                       "\") (module not available on this host?)");
  }
  if (o.notsent_lowat != 0)
    XO_TRY(set_int(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, o.notsent_lowat, "TCP_NOTSENT_LOWAT"));
  return {};
}

}  // namespace xo::tcp
