// encode()/decode(): the snapshot's wire format.
//
//   magic "XOTS" | u16 version | u16 compat | u32 body length | body
//
// Big-endian. `compat` is the oldest version that can read this body (Ceph's
// ENCODE_START idea): a reader accepts compat <= its kVersion and ignores
// body bytes after the fields it knows when version > kVersion. Body (v1):
//   endpoint local, endpoint remote      u8 family (4|6), 4|16 addr bytes,
//                                        u16 port, [v6: u32 flowinfo, u32 scope]
//   u8 state, u32 send_seq, u32 recv_seq, u8 tcpi_options, u32 mss,
//   u8 snd_wscale, u8 rcv_wscale, u32 timestamp,
//   u8 has_window [5 x u32 snd_wl1 snd_wnd max_window rcv_wnd rcv_wup],
//   u32 unsent, blob send_queue, blob recv_queue,
//   options: u8 flags (1 nodelay, 2 keepalive, 4 reuseaddr), i32 keepidle,
//   keepintvl, keepcnt, notsent_lowat, sndbuf, rcvbuf, blob congestion
// (blob = u32 length + bytes)
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <cstring>

#include "common/base/bytes.h"
#include "common/tcp/fin.h"
#include "common/tcp/snapshot.h"

namespace xo::tcp {
namespace {

constexpr uint8_t kMagic[4] = {'X', 'O', 'T', 'S'};
constexpr uint16_t kCompat = 1;
constexpr size_t kHeaderSize = 12;
constexpr size_t kMaxCongestionName = 15;  // TCP_CA_NAME_MAX - 1
constexpr uint8_t kNodelay = 1, kKeepalive = 2, kReuseaddr = 4;

void put_endpoint(ByteWriter& w, const Endpoint& ep) {
  if (ep.family() == AF_INET6) {
    auto& a = reinterpret_cast<const sockaddr_in6&>(ep.addr);
    w.u8(6);
    w.raw(&a.sin6_addr, 16);
    w.u16(ntohs(a.sin6_port));
    w.u32(ntohl(a.sin6_flowinfo));
    w.u32(a.sin6_scope_id);
  } else {
    auto& a = reinterpret_cast<const sockaddr_in&>(ep.addr);
    w.u8(4);
    w.raw(&a.sin_addr, 4);
    w.u16(ntohs(a.sin_port));
  }
}

Result<Endpoint> get_endpoint(ByteReader& r, const char* which) {
  Endpoint ep;
  XO_ASSIGN_OR_RETURN(uint8_t fam, r.u8(which));
  if (fam == 4) {
    auto& a = reinterpret_cast<sockaddr_in&>(ep.addr);
    a.sin_family = AF_INET;
    XO_ASSIGN_OR_RETURN(auto addr, r.raw(4, which));
    std::memcpy(&a.sin_addr, addr.data(), 4);
    XO_ASSIGN_OR_RETURN(uint16_t port, r.u16(which));
    a.sin_port = htons(port);
  } else if (fam == 6) {
    auto& a = reinterpret_cast<sockaddr_in6&>(ep.addr);
    a.sin6_family = AF_INET6;
    XO_ASSIGN_OR_RETURN(auto addr, r.raw(16, which));
    std::memcpy(&a.sin6_addr, addr.data(), 16);
    XO_ASSIGN_OR_RETURN(uint16_t port, r.u16(which));
    a.sin6_port = htons(port);
    XO_ASSIGN_OR_RETURN(uint32_t flow, r.u32(which));
    a.sin6_flowinfo = htonl(flow);
    XO_ASSIGN_OR_RETURN(a.sin6_scope_id, r.u32(which));
  } else {
    return error(std::string(which) + ": bad address family " + std::to_string(fam) +
                 " (want 4 or 6)");
  }
  return ep;
}

Status decode_body(ByteReader& r, Snapshot& s) {
  XO_ASSIGN_OR_RETURN(s.local, get_endpoint(r, "local endpoint"));
  XO_ASSIGN_OR_RETURN(s.remote, get_endpoint(r, "remote endpoint"));
  XO_ASSIGN_OR_RETURN(uint8_t state, r.u8("state"));
  s.state = state;
  XO_ASSIGN_OR_RETURN(s.send_seq, r.u32("send_seq"));
  XO_ASSIGN_OR_RETURN(s.recv_seq, r.u32("recv_seq"));
  XO_ASSIGN_OR_RETURN(s.tcpi_options, r.u8("tcpi_options"));
  XO_ASSIGN_OR_RETURN(s.mss, r.u32("mss"));
  XO_ASSIGN_OR_RETURN(s.snd_wscale, r.u8("snd_wscale"));
  XO_ASSIGN_OR_RETURN(s.rcv_wscale, r.u8("rcv_wscale"));
  XO_ASSIGN_OR_RETURN(s.timestamp, r.u32("timestamp"));
  XO_ASSIGN_OR_RETURN(uint8_t has_window, r.u8("window flag"));
  if (has_window > 1) return error("window flag is " + std::to_string(has_window) + " (want 0 or 1)");
  if (has_window) {
    Snapshot::Window w;
    XO_ASSIGN_OR_RETURN(w.snd_wl1, r.u32("window.snd_wl1"));
    XO_ASSIGN_OR_RETURN(w.snd_wnd, r.u32("window.snd_wnd"));
    XO_ASSIGN_OR_RETURN(w.max_window, r.u32("window.max_window"));
    XO_ASSIGN_OR_RETURN(w.rcv_wnd, r.u32("window.rcv_wnd"));
    XO_ASSIGN_OR_RETURN(w.rcv_wup, r.u32("window.rcv_wup"));
    s.window = w;
  }
  XO_ASSIGN_OR_RETURN(s.unsent, r.u32("unsent"));
  XO_ASSIGN_OR_RETURN(auto sq, r.blob(Snapshot::kMaxQueueBytes, "send queue"));
  XO_ASSIGN_OR_RETURN(auto rq, r.blob(Snapshot::kMaxQueueBytes - sq.size(), "receive queue"));
  s.send_queue.assign(sq.begin(), sq.end());
  s.recv_queue.assign(rq.begin(), rq.end());
  XO_ASSIGN_OR_RETURN(uint8_t flags, r.u8("option flags"));
  if (flags & ~(kNodelay | kKeepalive | kReuseaddr))
    return error("unknown option flags " + std::to_string(flags));
  s.options.nodelay = flags & kNodelay;
  s.options.keepalive = flags & kKeepalive;
  s.options.reuseaddr = flags & kReuseaddr;
  XO_ASSIGN_OR_RETURN(s.options.keepidle, r.i32("keepidle"));
  XO_ASSIGN_OR_RETURN(s.options.keepintvl, r.i32("keepintvl"));
  XO_ASSIGN_OR_RETURN(s.options.keepcnt, r.i32("keepcnt"));
  XO_ASSIGN_OR_RETURN(s.options.notsent_lowat, r.i32("notsent_lowat"));
  XO_ASSIGN_OR_RETURN(s.options.sndbuf, r.i32("sndbuf"));
  XO_ASSIGN_OR_RETURN(s.options.rcvbuf, r.i32("rcvbuf"));
  XO_ASSIGN_OR_RETURN(s.options.congestion, r.str(kMaxCongestionName, "congestion"));
  return {};
}

}  // namespace

Status validate(const Snapshot& s) {
  if (!fin::supported_state(s.state))
    return error(std::string("unsupported state ") + std::to_string(s.state) + " (" +
                 state_name(s.state) + ")");
  for (const Endpoint* ep : {&s.local, &s.remote})
    if (ep->family() != AF_INET && ep->family() != AF_INET6)
      return error("endpoint family " + std::to_string(ep->family()) + " is neither IPv4 nor IPv6");
  if (s.local.family() != s.remote.family()) return error("local and remote endpoints differ in family");
  if (s.send_queue.size() + s.recv_queue.size() > Snapshot::kMaxQueueBytes)
    return error("queues total " + std::to_string(s.send_queue.size() + s.recv_queue.size()) +
                 " bytes, above the limit of " + std::to_string(Snapshot::kMaxQueueBytes));
  if (s.unsent > s.send_queue.size())
    return error("unsent (" + std::to_string(s.unsent) + ") exceeds the send queue (" +
                 std::to_string(s.send_queue.size()) + " bytes)");
  if (s.unsent && (s.state == TCP_FIN_WAIT2 || s.state == TCP_CLOSING))
    return error(std::string("unsent bytes behind a FIN already sent (") + state_name(s.state) + ")");
  if (s.snd_wscale > 14 || s.rcv_wscale > 14)
    return error("window scale above 14 (RFC 7323)");
  if (s.mss == 0 || s.mss > 65535) return error("mss " + std::to_string(s.mss) + " out of range");
  if (s.options.congestion.size() > kMaxCongestionName)
    return error("congestion control name longer than 15 characters");
  if (s.options.sndbuf < 0 || s.options.rcvbuf < 0 || s.options.keepidle < 0 ||
      s.options.keepintvl < 0 || s.options.keepcnt < 0 || s.options.notsent_lowat < 0)
    return error("negative socket option value");
  return {};
}

std::vector<uint8_t> encode(const Snapshot& s) {
  ByteWriter w;
  w.reserve(kHeaderSize + 160 + s.send_queue.size() + s.recv_queue.size());
  w.raw(kMagic, sizeof(kMagic));
  w.u16(Snapshot::kVersion);
  w.u16(kCompat);
  const size_t len_at = w.size();
  w.u32(0);
  put_endpoint(w, s.local);
  put_endpoint(w, s.remote);
  w.u8(static_cast<uint8_t>(s.state));
  w.u32(s.send_seq);
  w.u32(s.recv_seq);
  w.u8(s.tcpi_options);
  w.u32(s.mss);
  w.u8(s.snd_wscale);
  w.u8(s.rcv_wscale);
  w.u32(s.timestamp);
  w.u8(s.window ? 1 : 0);
  if (s.window) {
    w.u32(s.window->snd_wl1);
    w.u32(s.window->snd_wnd);
    w.u32(s.window->max_window);
    w.u32(s.window->rcv_wnd);
    w.u32(s.window->rcv_wup);
  }
  w.u32(s.unsent);
  w.blob(s.send_queue);
  w.blob(s.recv_queue);
  const auto& o = s.options;
  w.u8((o.nodelay ? kNodelay : 0) | (o.keepalive ? kKeepalive : 0) | (o.reuseaddr ? kReuseaddr : 0));
  w.i32(o.keepidle);
  w.i32(o.keepintvl);
  w.i32(o.keepcnt);
  w.i32(o.notsent_lowat);
  w.i32(o.sndbuf);
  w.i32(o.rcvbuf);
  w.str(o.congestion);
  w.patch_u32(len_at, static_cast<uint32_t>(w.size() - kHeaderSize));
  return w.take();
}

Result<Snapshot> decode(std::span<const uint8_t> bytes) {
  auto fail = [](Error e) { return annotate(std::move(e), "tcp snapshot decode"); };
  ByteReader hdr(bytes);
  auto magic = hdr.raw(4, "magic");
  if (!magic) return fail(magic.take_error());
  if (std::memcmp(magic->data(), kMagic, 4) != 0) return fail(error("bad magic (not an XO TCP snapshot)"));
  auto version = hdr.u16("version");
  if (!version) return fail(version.take_error());
  auto compat = hdr.u16("compat version");
  if (!compat) return fail(compat.take_error());
  if (*version == 0 || *compat == 0 || *compat > *version)
    return fail(error("bad version " + std::to_string(*version) + "/compat " + std::to_string(*compat)));
  if (*compat > Snapshot::kVersion)
    return fail(error("snapshot needs a reader of version " + std::to_string(*compat) +
                      "; this build reads up to " + std::to_string(Snapshot::kVersion)));
  auto len = hdr.u32("body length");
  if (!len) return fail(len.take_error());
  if (*len != hdr.remaining())
    return fail(error("body length says " + std::to_string(*len) + " bytes, input has " +
                      std::to_string(hdr.remaining())));
  auto body = hdr.raw(*len, "body");
  if (!body) return fail(body.take_error());

  Snapshot s;
  ByteReader r(*body);
  auto st = decode_body(r, s);
  if (!st) return fail(st.take_error());
  // A newer writer may append fields we do not know; our own must fit exactly.
  if (*version <= Snapshot::kVersion && !r.empty())
    return fail(error(std::to_string(r.remaining()) + " unexpected bytes after the last field"));
  auto valid = validate(s);
  if (!valid) return fail(valid.take_error());
  return s;
}

}  // namespace xo::tcp
