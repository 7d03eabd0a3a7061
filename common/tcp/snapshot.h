// xo::tcp — take a live TCP connection out of one kernel and put it into another.
//
// In the spirit of CRIU's libsoccr: capture() puts the socket into repair mode
// and reads its whole state into a Snapshot (a plain value); encode()/decode()
// carry it; restore() builds an equivalent socket elsewhere.
//
// Contract (what the caller does, not this library):
//  * Block the flow's incoming packets BEFORE capture(): a socket in repair
//    mode still ACKs new data, and those bytes would be lost.
//  * After a successful capture() the socket stays in repair mode. The caller
//    either closes it (close() in repair mode sends neither FIN nor RST: the
//    connection now lives elsewhere) or calls resume() to take it back.
//  * If capture() fails, the socket is already out of repair mode and usable.
//  * Packets must reach the restored socket (steering) — not done here.
//  * Addresses: restore() binds the snapshot's local address unless
//    RestoreOptions::local overrides it (NAT mode). Binding an address the
//    host does not own needs it on `lo` or IP_TRANSPARENT (set by restore()
//    when RestoreOptions::transparent is true).
//  * Half-closed states: the peer's FIN (CLOSE_WAIT, LAST_ACK, CLOSING) and the
//    ACK of our FIN (FIN_WAIT2) cannot be put into a socket by any sockopt.
//    restore() does what libsoccr does: it injects that one segment through a
//    raw socket (needs CAP_NET_RAW), marked with SO_MARK kInjectMark, towards
//    the restored socket. A caller that blocks the flow on the restoring host
//    must let packets with that mark through. TIME_WAIT, SYN_* and LISTEN are
//    refused by capture().
//  * Socket options: SocketOptions below travel; anything else (SO_MARK,
//    IP_TOS, TCP_USER_TIMEOUT, cgroup/bpf attachments, ...) does not.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/base/fd.h"
#include "common/base/result.h"
#include "common/tcp/limits.h"

namespace xo::tcp {

// An IPv4 or IPv6 address and port, stored as sockaddr_storage.
struct Endpoint {
  sockaddr_storage addr{};
  int family() const { return addr.ss_family; }
  socklen_t len() const {
    return family() == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  }
  std::string to_string() const;  // "198.18.0.1:80" / "[fd00::1]:80"
  static Result<Endpoint> parse(const std::string& host, uint16_t port);
};

// Ordinary socket options that shape behaviour and travel with the connection.
struct SocketOptions {
  bool nodelay = false;
  bool keepalive = false;
  int keepidle = 0, keepintvl = 0, keepcnt = 0;
  std::string congestion;          // e.g. "cubic"
  int notsent_lowat = 0;           // 0: unset
  // Only when the application locked them (setsockopt(SO_SNDBUF/SO_RCVBUF)
  // sets SOCK_*BUF_LOCK and turns autotuning off): capture() reads the lock
  // bits with getsockopt(SO_BUF_LOCK) (Linux >= 5.14; on older kernels the
  // sizes are not captured and autotuning applies after restore). The value
  // is what getsockopt() returns, i.e. the kernel's doubled size; restore()
  // sets half of it. 0: not locked.
  int sndbuf = 0, rcvbuf = 0;
  bool reuseaddr = false;          // put back after repair off
};

struct Snapshot {
  static constexpr uint16_t kVersion = 1;
  // decode() refuses snapshots whose queues together exceed this (limits.h;
  // the handoff wire format derives its snapshot limit from the same constant).
  static constexpr size_t kMaxQueueBytes = kMaxSnapshotQueueBytes;

  Endpoint local, remote;
  // TCP_ESTABLISHED, TCP_FIN_WAIT1, TCP_FIN_WAIT2, TCP_CLOSE_WAIT,
  // TCP_LAST_ACK or TCP_CLOSING (linux/tcp.h numbering).
  int state = 0;

  // Sequence numbers at the END of each queue, as TCP_QUEUE_SEQ reads them in
  // repair mode. As in libsoccr they include a FIN: send_seq counts our FIN
  // when `state` says we sent one (FIN_WAIT1/2, CLOSING, LAST_ACK), recv_seq
  // counts the peer's FIN when we received one (CLOSE_WAIT, LAST_ACK, CLOSING).
  uint32_t send_seq = 0;           // write_seq: end of the send queue
  uint32_t recv_seq = 0;           // rcv_nxt

  // Negotiated options (TCPI_OPT_* bits from TCP_INFO) and their values.
  uint8_t tcpi_options = 0;
  uint32_t mss = 0;
  uint8_t snd_wscale = 0, rcv_wscale = 0;
  uint32_t timestamp = 0;          // TCP_TIMESTAMP, opaque

  // TCP_REPAIR_WINDOW; absent on kernels without it.
  struct Window {
    uint32_t snd_wl1 = 0, snd_wnd = 0, max_window = 0, rcv_wnd = 0, rcv_wup = 0;
  };
  std::optional<Window> window;

  // Send queue (data only, never the FIN): the first (send_queue.size() -
  // unsent) bytes were sent and not yet acknowledged; the last `unsent` bytes
  // were never sent.
  std::vector<uint8_t> send_queue;
  uint32_t unsent = 0;
  std::vector<uint8_t> recv_queue; // received, not yet read by the application

  SocketOptions options;
};

// Leave repair mode on the original socket (rollback after capture()).
// Leaving repair mode clears SO_REUSEADDR (repair mode forces sk_reuse and
// turning it off resets it); the overload taking the snapshot puts it back.
Status resume(int fd);
Status resume(int fd, const Snapshot& snap);

// Put `fd` into repair mode and read its state. On failure the socket is out
// of repair mode again and the error says what could not be captured.
Result<Snapshot> capture(int fd);

// SO_MARK of the segments restore() injects for half-closed states (as
// libsoccr's SOCCR_MARK), so that flow-blocking rules can let them pass.
inline constexpr uint32_t kInjectMark = 0xC114;

// "ESTABLISHED", "FIN_WAIT1", ... for messages.
const char* state_name(int state);

struct RestoreOptions {
  std::optional<Endpoint> local;   // bind here instead of snapshot.local (NAT mode)
  bool transparent = false;        // IP_TRANSPARENT before bind
  bool window_probe = true;        // TCP_REPAIR_OFF (probe) vs TCP_REPAIR_OFF_NO_WP
};

// Build a connected socket equal to the snapshot. Leaves repair mode, then
// sends the unsent tail of the send queue normally. The socket is blocking
// and close-on-exec. On failure the half-built socket is closed in repair
// mode (no FIN, no RST), so the snapshot can be restored again (elsewhere,
// or into the origin). Only a failure after repair off (while queueing the
// unsent tail) may have let part of that tail reach the peer.
Result<UniqueFd> restore(const Snapshot& snap, const RestoreOptions& opts = {});

// The same into `fresh`, a socket from make_repair_socket() of the
// snapshot's family, made ahead of time: its creation (~3 µs) then stays off
// the path of the restore. Taken either way.
Result<UniqueFd> restore(const Snapshot& snap, UniqueFd fresh, const RestoreOptions& opts = {});

// A new TCP socket of `family` (AF_INET/AF_INET6) in repair mode: what
// restore() starts from.
Result<UniqueFd> make_repair_socket(int family);

// The checks decode() applies, for a Snapshot built by hand: a supported
// state, IPv4/IPv6 endpoints of one family, unsent <= send queue, queue
// sizes within kMaxQueueBytes, a congestion name of at most 15 chars.
Status validate(const Snapshot& snap);

// Versioned, bounds-checked encoding. decode() rejects truncated, oversized or
// inconsistent input with a clear error.
std::vector<uint8_t> encode(const Snapshot& snap);
Result<Snapshot> decode(std::span<const uint8_t> bytes);

}  // namespace xo::tcp
