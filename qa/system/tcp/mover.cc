#include "qa/system/tcp/mover.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cstdio>

#include "common/tcp/snapshot.h"
#include "qa/lab/netns.h"

namespace xo::tcpmove {
namespace {

using Clock = std::chrono::steady_clock;

double us_since(Clock::time_point& t) {
  auto now = Clock::now();
  double us = std::chrono::duration<double, std::micro>(now - t).count();
  t = now;
  return us;
}

std::string describe(const testserver::ResumeState& st) {
  if (!st.owed) return "next request";
  const auto& o = *st.owed;
  if (!o.head_written) return o.method + " " + o.target + " (request #" + std::to_string(o.seq) + ")";
  return o.method + " " + o.target + " from body byte " + std::to_string(o.body_offset);
}

// A window probe from the restored socket, sent once the client's packets
// reach it: the client answers with its current ACK and window. Without it a
// socket restored with a closed or stale peer window waits for its probe or
// retransmission timer (1 s and more, no RTT sample yet), and the connection
// stalls. Leaving repair mode with TCP_REPAIR_OFF is the one call that sends
// a probe now. Leaving repair resets SO_REUSEADDR; it is put back.
Status probe_window(int fd, bool reuseaddr) {
  int on = 1, off = 0;  // TCP_REPAIR_ON, TCP_REPAIR_OFF (with probe)
  if (::setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &on, sizeof on) != 0) return sys_error("TCP_REPAIR on");
  if (::setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &off, sizeof off) != 0) return sys_error("TCP_REPAIR off");
  if (reuseaddr && ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0)
    return sys_error("SO_REUSEADDR");
  return {};
}

}  // namespace

Result<UniqueFd> Mover::restore_at(const HostServer& to, std::span<const uint8_t> snapshot_bytes,
                                   MoveRecord& rec) {
  auto t = Clock::now();
  XO_ASSIGN_OR_RETURN(tcp::Snapshot snap, tcp::decode(snapshot_bytes));
  rec.us_decode = us_since(t);
  XO_TRY(diverter_.prepare(rec.flow, to.host));
  t = Clock::now();
  // The restored socket must be created inside the new owner's namespace.
  XO_ASSIGN_OR_RETURN(auto scope, lab::NetnsScope::enter(to.ns));
  // No window probe at repair off: the client's answer would still go to the
  // origin (and be dropped there), and it would spend the client's
  // out-of-window ACK rate limit (tcp_invalid_ratelimit, 500 ms) that the
  // probe after delivery needs (see probe_window()).
  auto fd = tcp::restore(snap, {.window_probe = false});
  rec.us_restore = us_since(t);
  return fd;
}

MoveRecord Mover::move(UniqueFd fd, testserver::ResumeState state, const HostServer& from, const HostServer& to) {
  MoveRecord rec;
  rec.from = from.host;
  rec.to = to.host;
  rec.at = std::chrono::system_clock::now();
  rec.unread = state.unread.size();
  rec.owed = describe(state);
  auto start = Clock::now(), t = start;

  auto fail = [&](const std::string& why, bool blocked) {
    rec.error = why;
    if (blocked) (void)diverter_.unblock(rec.flow);
    std::fprintf(stderr, "tcp move %s -> %s failed: %s\n", from.host.c_str(), to.host.c_str(), why.c_str());
    if (fd) from.server->adopt(std::move(fd), std::move(state));
    std::lock_guard lock(mu_);
    records_.push_back(rec);
    return rec;
  };

  auto flow = lab::flow_of(fd.get());
  if (!flow.ok()) return fail(flow.error().to_string(), false);
  rec.flow = *flow;
  // Block BEFORE TCP_REPAIR: a socket in repair mode still ACKs new data.
  if (auto s = diverter_.block(rec.flow); !s.ok()) return fail(s.error().to_string(), false);
  rec.us_block = us_since(t);

  auto snap = tcp::capture(fd.get());
  if (!snap.ok()) return fail("capture: " + snap.error().to_string(), true);  // socket already out of repair
  rec.us_capture = us_since(t);
  rec.tcp_state = snap->state;
  rec.unsent = snap->unsent;
  rec.unacked = snap->send_queue.size() - snap->unsent;
  rec.recv_queue = snap->recv_queue.size();
  std::vector<uint8_t> snapshot_bytes = tcp::encode(*snap);
  std::vector<uint8_t> state_bytes = testserver::encode(state);
  rec.snapshot_bytes = snapshot_bytes.size();
  rec.us_encode = us_since(t);

  auto restored = restore_at(to, snapshot_bytes, rec);
  if (!restored.ok()) {
    // The origin still holds the snapshot's socket: take it back.
    if (auto s = tcp::resume(fd.get(), *snap); !s.ok())
      std::fprintf(stderr, "tcp move: resume failed too: %s\n", s.error().to_string().c_str());
    return fail("restore on " + to.host + ": " + restored.error().to_string(), true);
  }
  t = Clock::now();
  // close() in repair mode sends neither FIN nor RST: the connection lives on at `to`.
  fd.reset();
  if (auto s = diverter_.deliver_to(rec.flow, to.host); !s.ok()) {
    rec.error = "deliver: " + s.error().to_string();
    std::fprintf(stderr, "tcp move: %s\n", rec.error.c_str());
  }
  rec.us_deliver = us_since(t);
  (void)diverter_.unblock(rec.flow);
  if (auto s = probe_window(restored->get(), snap->options.reuseaddr); !s.ok()) {
    rec.error = "window probe: " + s.error().to_string();
    std::fprintf(stderr, "tcp move: %s\n", rec.error.c_str());
  }
  rec.us_total = std::chrono::duration<double, std::micro>(Clock::now() - start).count();

  auto decoded_state = testserver::decode_resume_state(state_bytes);
  rec.ok = rec.error.empty() && decoded_state.ok();
  {
    std::lock_guard lock(mu_);
    records_.push_back(rec);
  }
  to.server->adopt(std::move(*restored), decoded_state.ok() ? std::move(*decoded_state) : std::move(state));
  return rec;
}

std::vector<MoveRecord> Mover::records() const {
  std::lock_guard lock(mu_);
  return records_;
}

}  // namespace xo::tcpmove
