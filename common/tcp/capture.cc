// capture() and resume(): read a live socket's whole state in repair mode.
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "common/tcp/fin.h"
#include "common/tcp/repair.h"
#include "common/tcp/snapshot.h"
#include "common/tcp/socket_options.h"

namespace xo::tcp {
namespace {

Status read_endpoints(int fd, Snapshot& s) {
  socklen_t len = sizeof(s.local.addr);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&s.local.addr), &len) != 0)
    return sys_error("getsockname");
  len = sizeof(s.remote.addr);
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&s.remote.addr), &len) != 0)
    return sys_error("getpeername");
  if (s.local.family() != AF_INET && s.local.family() != AF_INET6)
    return error("not an IPv4/IPv6 socket (family " + std::to_string(s.local.family()) + ")");
  return {};
}

// Everything after TCP_REPAIR=1; the caller leaves repair mode if this fails.
Status capture_in_repair(int fd, Snapshot& s) {
  tcp_info ti{};
  socklen_t tlen = sizeof(ti);
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tlen) != 0) return sys_error("getsockopt(TCP_INFO)");
  s.state = ti.tcpi_state;
  if (!fin::supported_state(s.state))
    return error(std::string("socket is in state ") + state_name(s.state) +
                 "; only ESTABLISHED and the half-closed states can be captured");

  XO_ASSIGN_OR_RETURN(uint32_t outq, repair::ioctl_len(fd, SIOCOUTQ, "SIOCOUTQ"));
  XO_ASSIGN_OR_RETURN(uint32_t unsent, repair::ioctl_len(fd, SIOCOUTQNSD, "SIOCOUTQNSD"));
  XO_ASSIGN_OR_RETURN(uint32_t inq, repair::ioctl_len(fd, SIOCINQ, "SIOCINQ"));
  // SIOCOUTQ/SIOCOUTQNSD count our FIN as one byte; the queue holds no byte
  // for it (SIOCINQ already leaves the peer's FIN out).
  if (fin::we_sent_fin(s.state)) {
    if (outq) --outq;
    if (unsent) --unsent;
  }
  if (unsent > outq)
    return error("kernel reports " + std::to_string(unsent) + " unsent bytes of a " +
                 std::to_string(outq) + "-byte send queue");
  // Our FIN rides after the unsent bytes; restore() replays it with
  // shutdown() after sending them, which only works while the FIN is not
  // yet acknowledged and the peer's FIN (if any) came first.
  if (unsent && (s.state == TCP_FIN_WAIT2 || s.state == TCP_CLOSING))
    return error(std::string("inconsistent queue in ") + state_name(s.state) + ": " +
                 std::to_string(unsent) + " bytes unsent behind a FIN already sent");
  if (uint64_t{outq} + inq > Snapshot::kMaxQueueBytes)
    return error("queues hold " + std::to_string(uint64_t{outq} + inq) + " bytes, more than the " +
                 std::to_string(Snapshot::kMaxQueueBytes) + " a snapshot may carry");
  s.unsent = unsent;

  uint32_t mss = 0;
  socklen_t mlen = sizeof(mss);
  // In repair mode TCP_MAXSEG reads mss_clamp, which TCP_REPAIR_OPTIONS sets back.
  if (::getsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &mss, &mlen) != 0)
    return sys_error("getsockopt(TCP_MAXSEG)");
  s.mss = mss;
  s.tcpi_options = ti.tcpi_options;
  if (ti.tcpi_options & TCPI_OPT_WSCALE) {
    s.snd_wscale = ti.tcpi_snd_wscale;
    s.rcv_wscale = ti.tcpi_rcv_wscale;
  }
  if (ti.tcpi_options & TCPI_OPT_TIMESTAMPS) {
    XO_ASSIGN_OR_RETURN(s.timestamp, repair::timestamp(fd));
  }
  XO_ASSIGN_OR_RETURN(auto win, repair::window(fd));
  if (win) s.window = Snapshot::Window{win->snd_wl1, win->snd_wnd, win->max_window, win->rcv_wnd, win->rcv_wup};

  XO_TRY(repair::select_queue(fd, TCP_RECV_QUEUE));
  XO_ASSIGN_OR_RETURN(s.recv_seq, repair::queue_seq(fd));
  XO_ASSIGN_OR_RETURN(s.recv_queue, repair::peek_queue(fd, inq, "receive queue"));
  XO_TRY(repair::select_queue(fd, TCP_SEND_QUEUE));
  XO_ASSIGN_OR_RETURN(s.send_seq, repair::queue_seq(fd));
  XO_ASSIGN_OR_RETURN(s.send_queue, repair::peek_queue(fd, outq, "send queue"));
  XO_TRY(repair::select_queue(fd, TCP_NO_QUEUE));

  XO_TRY(read_endpoints(fd, s));
  XO_TRY(read_socket_options(fd, s.options));
  return {};
}

}  // namespace

Status resume(int fd) {
  auto st = repair::set_mode(fd, TCP_REPAIR_OFF);
  if (!st) return annotate(st.take_error(), "resume");
  return {};
}

Status resume(int fd, const Snapshot& snap) {
  XO_TRY(resume(fd));
  // Leaving repair mode resets sk_reuse (repair forced it): put SO_REUSEADDR back.
  if (snap.options.reuseaddr) {
    int one = 1;
    if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0)
      return sys_error("resume: setsockopt(SO_REUSEADDR)");
  }
  return {};
}

Result<Snapshot> capture(int fd) {
  Snapshot s;
  auto reuse = read_reuseaddr(fd);
  if (!reuse) return annotate(reuse.take_error(), "capture");
  s.options.reuseaddr = *reuse;
  auto on = repair::set_mode(fd, TCP_REPAIR_ON);
  if (!on) {
    // The kernel refuses LISTEN sockets (EPERM) and non-TCP sockets: say which.
    tcp_info ti{};
    socklen_t len = sizeof(ti);
    Error err = on.take_error();
    if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0)
      err.message += std::string(" (socket in state ") + state_name(ti.tcpi_state) + ")";
    return annotate(std::move(err), "capture");
  }
  auto st = capture_in_repair(fd, s);
  if (!st) {
    Error err = annotate(st.take_error(), "capture");
    auto back = resume(fd, s);
    if (!back) err.message += " (and leaving repair mode failed too: " + back.error().to_string() + ")";
    return err;
  }
  return s;
}

}  // namespace xo::tcp
