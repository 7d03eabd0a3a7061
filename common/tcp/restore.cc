// restore(): build a connected socket equal to a Snapshot, in the order that
// works (see README.md), with libsoccr's FIN accounting for half-closed states.
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <chrono>
#include <thread>

#include "common/tcp/fin.h"
#include "common/tcp/inject.h"
#include "common/tcp/repair.h"
#include "common/tcp/snapshot.h"
#include "common/tcp/socket_options.h"

namespace xo::tcp {
namespace {

constexpr int kSndbufLock = 1, kRcvbufLock = 2;  // SOCK_*BUF_LOCK (include/uapi/linux/socket.h)

Status set_sockopt_int(int fd, int level, int opt, int v, const char* name) {
  if (::setsockopt(fd, level, opt, &v, sizeof(v)) != 0)
    return sys_error(std::string("setsockopt(") + name + ", " + std::to_string(v) + ")");
  return {};
}

Result<int> sockopt_int(int fd, int level, int opt, const char* name) {
  int v = 0;
  socklen_t len = sizeof(v);
  if (::getsockopt(fd, level, opt, &v, &len) != 0)
    return sys_error(std::string("getsockopt(") + name + ")");
  return v;
}

Result<int> tcp_state(int fd) {
  tcp_info ti{};
  socklen_t len = sizeof(ti);
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) return sys_error("getsockopt(TCP_INFO)");
  return int{ti.tcpi_state};
}

// Buffer sizes. A locked size from the snapshot is set as the application set
// it (the kernel doubles what setsockopt gets). Otherwise the queues may not
// fit into a fresh socket's buffers (repair-mode send() obeys sk_sndbuf, the
// receive queue sk_rcvbuf): grow them for the restore; that locks them, so
// unlock_buffers() hands them back to autotuning at the end.
Result<bool> prepare_buffers(int fd, const Snapshot& s) {
  const SocketOptions& o = s.options;
  if (o.sndbuf) XO_TRY(set_sockopt_int(fd, SOL_SOCKET, SO_SNDBUF, o.sndbuf / 2, "SO_SNDBUF"));
  if (o.rcvbuf) XO_TRY(set_sockopt_int(fd, SOL_SOCKET, SO_RCVBUF, o.rcvbuf / 2, "SO_RCVBUF"));
  bool grown = false;
  auto grow = [&](int opt, int force, const char* name, size_t bytes) -> Status {
    if (bytes == 0) return {};
    // Room for the payload plus skb overhead: twice the bytes and 64 KiB.
    const size_t want = 2 * bytes + (64u << 10);
    XO_ASSIGN_OR_RETURN(int have, sockopt_int(fd, SOL_SOCKET, opt, name));
    if (static_cast<size_t>(have) >= want) return {};
    const int half = static_cast<int>(want / 2);
    // *BUFFORCE ignores net.core.[wr]mem_max (needs CAP_NET_ADMIN).
    if (::setsockopt(fd, SOL_SOCKET, force, &half, sizeof(half)) != 0)
      XO_TRY(set_sockopt_int(fd, SOL_SOCKET, opt, half, name));
    grown = true;
    return {};
  };
  if (!o.sndbuf) XO_TRY(grow(SO_SNDBUF, SO_SNDBUFFORCE, "SO_SNDBUF", s.send_queue.size()));
  if (!o.rcvbuf) XO_TRY(grow(SO_RCVBUF, SO_RCVBUFFORCE, "SO_RCVBUF", s.recv_queue.size()));
  return grown;
}

Status unlock_buffers(int fd, const Snapshot& s) {
  int locks = (s.options.sndbuf ? kSndbufLock : 0) | (s.options.rcvbuf ? kRcvbufLock : 0);
  return set_sockopt_int(fd, SOL_SOCKET, SO_BUF_LOCK, locks, "SO_BUF_LOCK");
}

// Our FIN, by the event that made it: shutdown(SHUT_WR) in repair mode. With
// TCP_SEND_QUEUE selected the kernel records it as sent, not transmitted
// (libsoccr does so for an acked FIN); for an unacked one the retransmit
// timer and the window probe at repair-off recover it.
Status replay_our_fin(int fd) {
  XO_TRY(repair::select_queue(fd, TCP_SEND_QUEUE));
  if (::shutdown(fd, SHUT_WR) != 0) return sys_error("shutdown(SHUT_WR) in repair mode (our FIN)");
  return repair::select_queue(fd, TCP_NO_QUEUE);
}

// Waits until an injected segment has moved the socket to `want`. Loopback
// delivery normally completes inside sendto(); allow ~50 ms for softirq lag.
Status await_state(int fd, int want, const char* what) {
  int st = -1;
  for (int i = 0; i < 500; ++i) {
    XO_ASSIGN_OR_RETURN(st, tcp_state(fd));
    if (st == want) return {};
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  return error(std::string(what) + " was not accepted: socket is in " + state_name(st) +
               ", expected " + state_name(want) +
               " (is the flow blocked on this host without an exception for SO_MARK 0xC114?)");
}

uint16_t peer_window(const Snapshot& s) {
  if (!s.window) return 0xffff;
  uint32_t w = s.window->snd_wnd >> ((s.tcpi_options & TCPI_OPT_WSCALE) ? s.snd_wscale : 0);
  return static_cast<uint16_t>(w > 0xffff ? 0xffff : w);
}

Result<UniqueFd> restore_impl(const Snapshot& s, UniqueFd fresh, const RestoreOptions& opts) {
  XO_TRY(validate(s));
  const Endpoint& local = opts.local ? *opts.local : s.local;
  if (local.family() != s.remote.family())
    return error("local address " + local.to_string() + " and peer " + s.remote.to_string() +
                 " differ in family");
  const bool our_fin = fin::we_sent_fin(s.state);
  const bool peer_fin = fin::peer_sent_fin(s.state);
  // With unsent bytes our FIN comes after them: send it by an ordinary
  // shutdown() once they are queued (after repair off).
  const bool fin_after_unsent = our_fin && s.unsent > 0;
  const uint32_t send_len = static_cast<uint32_t>(s.send_queue.size());
  const uint32_t recv_len = static_cast<uint32_t>(s.recv_queue.size());
  const uint32_t sent_len = send_len - s.unsent;
  // The FINs are not in the queues: start each sequence space before them.
  const uint32_t send_end = s.send_seq - (our_fin ? 1 : 0);
  const uint32_t recv_end = s.recv_seq - (peer_fin ? 1 : 0);

  UniqueFd fd = std::move(fresh);
  if (!fd) {
    XO_ASSIGN_OR_RETURN(fd, make_repair_socket(local.family()));
  }
  const int sk = fd.get();
  // On any failure the half-built socket is closed in repair mode: no FIN,
  // no RST reaches the peer (declared after fd, so it runs before the close).
  struct SilentClose {
    int fd;
    bool armed = true;
    ~SilentClose() {
      int on = TCP_REPAIR_ON;
      if (armed) ::setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &on, sizeof(on));
    }
  } silent_close{sk};
  // (Repair mode, on since make_repair_socket(), also sets sk_reuse =
  // SK_FORCE_REUSE, so bind() succeeds next to a listener or a not-yet-closed
  // original; do NOT set SO_REUSEADDR here, it would overwrite that with the
  // weaker SK_CAN_REUSE.)
  if (opts.transparent) {
    if (local.family() == AF_INET6)
      XO_TRY(set_sockopt_int(sk, IPPROTO_IPV6, IPV6_TRANSPARENT, 1, "IPV6_TRANSPARENT"));
    else
      XO_TRY(set_sockopt_int(sk, IPPROTO_IP, IP_TRANSPARENT, 1, "IP_TRANSPARENT"));
  }
  if (::bind(sk, reinterpret_cast<const sockaddr*>(&local.addr), local.len()) != 0)
    return sys_error("bind(" + local.to_string() + ")");
  // The kernel advances each queue's sequence as we refill it, so set the
  // start: end of queue minus its length.
  XO_TRY(repair::select_queue(sk, TCP_RECV_QUEUE));
  XO_TRY(repair::set_queue_seq(sk, recv_end - recv_len));
  XO_TRY(repair::select_queue(sk, TCP_SEND_QUEUE));
  XO_TRY(repair::set_queue_seq(sk, send_end - send_len));
  // In repair mode connect() sends no SYN: the socket is ESTABLISHED at once.
  if (::connect(sk, reinterpret_cast<const sockaddr*>(&s.remote.addr), s.remote.len()) != 0)
    return sys_error("connect(" + s.remote.to_string() + ") in repair mode");

  // Only the options the two ends negotiated; MSS always.
  tcp_repair_opt ropts[4];
  size_t n = 0;
  if (s.tcpi_options & TCPI_OPT_SACK) ropts[n++] = {TCPOPT_SACK_PERMITTED, 0};
  if (s.tcpi_options & TCPI_OPT_WSCALE)
    ropts[n++] = {TCPOPT_WINDOW, uint32_t{s.snd_wscale} | (uint32_t{s.rcv_wscale} << 16)};
  if (s.tcpi_options & TCPI_OPT_TIMESTAMPS) ropts[n++] = {TCPOPT_TIMESTAMP, 0};
  ropts[n++] = {TCPOPT_MAXSEG, s.mss};
  XO_TRY(repair::set_options(sk, {ropts, n}));
  if (s.tcpi_options & TCPI_OPT_TIMESTAMPS) XO_TRY(repair::set_timestamp(sk, s.timestamp));

  XO_ASSIGN_OR_RETURN(bool buffers_grown, prepare_buffers(sk, s));
  if (recv_len) {
    XO_TRY(repair::select_queue(sk, TCP_RECV_QUEUE));
    XO_TRY(repair::fill_queue(sk, s.recv_queue, "receive queue"));
  }
  // Sent but unacknowledged bytes go in under repair: the stack must know
  // they were sent, since ACKs for them may arrive.
  if (sent_len) {
    XO_TRY(repair::select_queue(sk, TCP_SEND_QUEUE));
    XO_TRY(repair::fill_queue(sk, {s.send_queue.data(), sent_len}, "send queue"));
  }
  XO_TRY(repair::select_queue(sk, TCP_NO_QUEUE));

  // The window after the queues: filling the receive queue moves rcv_wup.
  if (s.window) {
    tcp_repair_window w{s.window->snd_wl1, s.window->snd_wnd, s.window->max_window,
                        s.window->rcv_wnd, s.window->rcv_wup};
    // rcv_wup counted the peer's FIN, which is not in the queue yet (libsoccr).
    if (peer_fin) {
      w.rcv_wup--;
      w.rcv_wnd++;
    }
    auto st = repair::set_window(sk, w);
    // Tolerate a kernel without TCP_REPAIR_WINDOW (< 4.8): default windows.
    if (!st && st.error().code != ENOPROTOOPT) return st.take_error();
  }

  // Half-closed states, in the order the FINs happened (libsoccr): ours
  // first in FIN_WAIT1/FIN_WAIT2/CLOSING, the peer's first in LAST_ACK.
  const uint32_t snd_una = send_end - send_len;
  if (our_fin && !fin_after_unsent && s.state != TCP_LAST_ACK) XO_TRY(replay_our_fin(sk));
  if (peer_fin) {
    // The peer's FIN at seq recv_end, acknowledging what it had acknowledged.
    XO_TRY(inject_segment({s.remote, local, recv_end, snd_una, peer_window(s), true}));
    int want = s.state == TCP_CLOSING ? TCP_CLOSING : TCP_CLOSE_WAIT;
    XO_TRY(await_state(sk, want, "the peer's FIN (injected)"));
  }
  if (s.state == TCP_LAST_ACK && !fin_after_unsent) XO_TRY(replay_our_fin(sk));
  if (fin::our_fin_acked(s.state)) {
    // FIN_WAIT2: the peer's ACK of our FIN (s.send_seq counts the FIN).
    XO_TRY(inject_segment({s.remote, local, recv_end, s.send_seq, peer_window(s), false}));
    XO_TRY(await_state(sk, TCP_FIN_WAIT2, "the ACK of our FIN (injected)"));
  }

  // Before repair off: a failure up to here leaves nothing on the wire, so
  // the caller can still resume the original. TCP_NODELAY also shapes how the
  // unsent tail leaves below.
  XO_TRY(apply_socket_options(sk, s.options));
  XO_TRY(repair::set_mode(sk, opts.window_probe ? TCP_REPAIR_OFF : TCP_REPAIR_OFF_NO_WP));

  // Unsent bytes were never on the wire: an ordinary send().
  if (s.unsent) {
    size_t off = sent_len;
    while (off < send_len) {
      ssize_t w = ::send(sk, s.send_queue.data() + off, send_len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (w <= 0)
        return sys_error("send() of the unsent tail after repair off: " + std::to_string(off - sent_len) +
                         " of " + std::to_string(s.unsent) + " bytes queued");
      off += static_cast<size_t>(w);
    }
  }
  if (fin_after_unsent && ::shutdown(sk, SHUT_WR) != 0)
    return sys_error("shutdown(SHUT_WR) after the unsent tail (our FIN)");
  // Repair off reset sk_reuse: put the application's SO_REUSEADDR back now.
  if (s.options.reuseaddr) XO_TRY(set_sockopt_int(sk, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR"));
  if (buffers_grown) XO_TRY(unlock_buffers(sk, s));
  silent_close.armed = false;
  return fd;
}

}  // namespace

Result<UniqueFd> make_repair_socket(int family) {
  UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP));
  if (!fd) return sys_error("socket");
  XO_TRY(repair::set_mode(fd.get(), TCP_REPAIR_ON));
  return fd;
}

Result<UniqueFd> restore(const Snapshot& snap, const RestoreOptions& opts) { return restore(snap, UniqueFd(), opts); }

Result<UniqueFd> restore(const Snapshot& snap, UniqueFd fresh, const RestoreOptions& opts) {
  auto r = restore_impl(snap, std::move(fresh), opts);
  if (!r) return annotate(r.take_error(), "restore");
  return r;
}

}  // namespace xo::tcp
