#include "common/tcp/inject.h"

#include <arpa/inet.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cstring>
#include <string>

#include "common/base/fd.h"

namespace xo::tcp {
namespace {

uint32_t sum16(const void* data, size_t len, uint32_t acc = 0) {
  auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i + 1 < len; i += 2) acc += (uint32_t{p[i]} << 8) | p[i + 1];
  if (len & 1) acc += uint32_t{p[len - 1]} << 8;
  return acc;
}

uint16_t fold(uint32_t acc) {
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return static_cast<uint16_t>(~acc);
}

bool is_v4_mapped(const sockaddr_in6& a) { return IN6_IS_ADDR_V4MAPPED(&a.sin6_addr); }

// A 20-byte TCP header (no options: Linux accepts a segment without the
// timestamp option even when timestamps were negotiated).
tcphdr make_tcp(const InjectedSegment& seg, uint16_t sport, uint16_t dport) {
  tcphdr th{};
  th.source = sport;
  th.dest = dport;
  th.seq = htonl(seg.seq);
  th.ack_seq = htonl(seg.ack);
  th.doff = 5;
  th.ack = 1;
  th.fin = seg.fin ? 1 : 0;
  th.window = htons(seg.window);
  return th;
}

Status send_raw(int family, const void* pkt, size_t len, const sockaddr* dst, socklen_t dlen) {
  // IPPROTO_RAW implies IP_HDRINCL (IPv4) and IPV6_HDRINCL (IPv6, Linux >= 4.5).
  UniqueFd fd(::socket(family, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW));
  if (!fd) return sys_error("inject: socket(SOCK_RAW) (needs CAP_NET_RAW)");
  int mark = static_cast<int>(kInjectMark);
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) != 0)
    return sys_error("inject: setsockopt(SO_MARK)");
  ssize_t n = ::sendto(fd.get(), pkt, len, 0, dst, dlen);
  if (n != static_cast<ssize_t>(len)) return sys_error("inject: sendto(raw segment)");
  return {};
}

}  // namespace

Status inject_segment(const InjectedSegment& seg) {
  if (seg.from.family() != seg.to.family())
    return error("inject: peer and local endpoints differ in family");
  if (seg.to.family() == AF_INET6) {
    auto& src = reinterpret_cast<const sockaddr_in6&>(seg.from.addr);
    auto& dst = reinterpret_cast<const sockaddr_in6&>(seg.to.addr);
    if (!is_v4_mapped(dst)) {
      struct {
        ip6_hdr ip;
        tcphdr th;
      } __attribute__((packed)) pkt{};
      pkt.ip.ip6_flow = htonl(6u << 28);
      pkt.ip.ip6_plen = htons(sizeof(tcphdr));
      pkt.ip.ip6_nxt = IPPROTO_TCP;
      pkt.ip.ip6_hlim = 64;
      pkt.ip.ip6_src = src.sin6_addr;
      pkt.ip.ip6_dst = dst.sin6_addr;
      pkt.th = make_tcp(seg, src.sin6_port, dst.sin6_port);
      uint32_t acc = sum16(&src.sin6_addr, 16);
      acc = sum16(&dst.sin6_addr, 16, acc);
      acc += sizeof(tcphdr) + IPPROTO_TCP;
      pkt.th.check = htons(fold(sum16(&pkt.th, sizeof(tcphdr), acc)));
      sockaddr_in6 to{};
      to.sin6_family = AF_INET6;
      to.sin6_addr = dst.sin6_addr;
      to.sin6_scope_id = dst.sin6_scope_id;
      return send_raw(AF_INET6, &pkt, sizeof(pkt), reinterpret_cast<sockaddr*>(&to), sizeof(to));
    }
    // An IPv6 socket talking IPv4 (v4-mapped addresses): the wire is IPv4.
    InjectedSegment v4 = seg;
    auto map = [](const sockaddr_in6& a6, Endpoint& out) {
      out = {};
      auto& a4 = reinterpret_cast<sockaddr_in&>(out.addr);
      a4.sin_family = AF_INET;
      a4.sin_port = a6.sin6_port;
      std::memcpy(&a4.sin_addr, &a6.sin6_addr.s6_addr[12], 4);
    };
    map(src, v4.from);
    map(dst, v4.to);
    return inject_segment(v4);
  }
  if (seg.to.family() != AF_INET) return error("inject: unknown address family");
  auto& src = reinterpret_cast<const sockaddr_in&>(seg.from.addr);
  auto& dst = reinterpret_cast<const sockaddr_in&>(seg.to.addr);
  struct {
    iphdr ip;
    tcphdr th;
  } __attribute__((packed)) pkt{};
  pkt.ip.version = 4;
  pkt.ip.ihl = 5;
  pkt.ip.tot_len = htons(sizeof(pkt));  // the kernel fills tot_len, id and check
  pkt.ip.ttl = 64;
  pkt.ip.protocol = IPPROTO_TCP;
  pkt.ip.saddr = src.sin_addr.s_addr;
  pkt.ip.daddr = dst.sin_addr.s_addr;
  pkt.th = make_tcp(seg, src.sin_port, dst.sin_port);
  uint32_t acc = sum16(&src.sin_addr, 4);
  acc = sum16(&dst.sin_addr, 4, acc);
  acc += sizeof(tcphdr) + IPPROTO_TCP;
  pkt.th.check = htons(fold(sum16(&pkt.th, sizeof(tcphdr), acc)));
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr = dst.sin_addr;
  return send_raw(AF_INET, &pkt, sizeof(pkt), reinterpret_cast<sockaddr*>(&to), sizeof(to));
}

Status replay_packet(std::string_view ip_packet, const Endpoint& from, const Endpoint& to) {
  if (from.family() != to.family()) return error("replay: peer and local endpoints differ in family", EINVAL);
  std::string pkt(ip_packet);
  auto* bytes = reinterpret_cast<uint8_t*>(pkt.data());
  if (pkt.size() < sizeof(iphdr)) return error("replay: packet too short", EINVAL);
  const int version = bytes[0] >> 4;
  size_t l4 = 0;
  uint32_t acc = 0;
  if (version == 4 && to.family() == AF_INET) {
    auto* ip = reinterpret_cast<iphdr*>(bytes);
    l4 = ip->ihl * 4u;
    if (ip->protocol != IPPROTO_TCP || l4 < sizeof(iphdr) || ntohs(ip->tot_len) != pkt.size())
      return error("replay: not a whole IPv4 TCP packet", EINVAL);
    if (ip->saddr != reinterpret_cast<const sockaddr_in&>(from.addr).sin_addr.s_addr)
      return error("replay: not from " + from.to_string(), EPERM);
    ip->daddr = reinterpret_cast<const sockaddr_in&>(to.addr).sin_addr.s_addr;
    ip->check = 0;  // the kernel fills it (IP_HDRINCL)
    acc = sum16(&ip->saddr, 4);
    acc = sum16(&ip->daddr, 4, acc);
  } else if (version == 6 && to.family() == AF_INET6) {
    auto* ip6 = reinterpret_cast<ip6_hdr*>(bytes);
    l4 = sizeof(ip6_hdr);
    if (pkt.size() < l4 || ip6->ip6_nxt != IPPROTO_TCP || ntohs(ip6->ip6_plen) + l4 != pkt.size())
      return error("replay: not a whole IPv6 TCP packet", EINVAL);
    if (std::memcmp(&ip6->ip6_src, &reinterpret_cast<const sockaddr_in6&>(from.addr).sin6_addr, 16) != 0)
      return error("replay: not from " + from.to_string(), EPERM);
    ip6->ip6_dst = reinterpret_cast<const sockaddr_in6&>(to.addr).sin6_addr;
    acc = sum16(&ip6->ip6_src, 16);
    acc = sum16(&ip6->ip6_dst, 16, acc);
  } else {
    return error("replay: IP version does not match the destination", EINVAL);
  }
  if (pkt.size() < l4 + sizeof(tcphdr)) return error("replay: truncated TCP header", EINVAL);
  auto* th = reinterpret_cast<tcphdr*>(bytes + l4);
  // sin_port and sin6_port sit at the same offset.
  const auto port = [](const Endpoint& e) { return reinterpret_cast<const sockaddr_in&>(e.addr).sin_port; };
  if (th->source != port(from) || th->dest != port(to))
    return error("replay: not a segment from " + from.to_string() + " to port " + std::to_string(ntohs(port(to))),
                 EPERM);
  const size_t tcp_len = pkt.size() - l4;
  th->check = 0;
  acc += static_cast<uint32_t>(tcp_len) + IPPROTO_TCP;
  th->check = htons(fold(sum16(th, tcp_len, acc)));
  if (version == 4) {
    sockaddr_in dst{};
    dst.sin_family = AF_INET;
    dst.sin_addr = reinterpret_cast<const sockaddr_in&>(to.addr).sin_addr;
    return send_raw(AF_INET, pkt.data(), pkt.size(), reinterpret_cast<sockaddr*>(&dst), sizeof dst);
  }
  sockaddr_in6 dst{};
  dst.sin6_family = AF_INET6;
  dst.sin6_addr = reinterpret_cast<const sockaddr_in6&>(to.addr).sin6_addr;
  return send_raw(AF_INET6, pkt.data(), pkt.size(), reinterpret_cast<sockaddr*>(&dst), sizeof dst);
}

}  // namespace xo::tcp
