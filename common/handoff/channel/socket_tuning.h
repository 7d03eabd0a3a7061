// Socket options of every control connection, both ends.
#pragma once

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <boost/asio/ip/tcp.hpp>

namespace xo::handoff::channel {

inline void tune_control_socket(boost::asio::ip::tcp::socket& socket) {
  boost::system::error_code ignored;
  // Small, latency-bound messages: no Nagle (with delayed ACKs it costs a
  // request/response round ~40 ms).
  socket.set_option(boost::asio::ip::tcp::no_delay(true), ignored);
  // A peer host that dies without a FIN is noticed in ~10 s even when idle,
  // so the client reconnects (and requests fail fast) instead of waiting.
  socket.set_option(boost::asio::socket_base::keep_alive(true), ignored);
  const int fd = socket.native_handle();
  const int idle = 4, interval = 2, count = 3;
  const unsigned user_timeout_ms = 10'000;  // unacknowledged data: give up after 10 s
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
  ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof user_timeout_ms);
}

}  // namespace xo::handoff::channel
