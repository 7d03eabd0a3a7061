#include "common/steer/bpf_codec.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

namespace xo::steer {

static IpAddr addr_from(int family, const __be32* words) {
  IpAddr a;
  a.family = family;
  std::memcpy(a.bytes.data(), words, family == AF_INET6 ? 16 : 4);
  return a;
}

xo_flow_key to_bpf_key(const FlowKey& flow) {
  xo_flow_key k{};  // zeroed: padding and unused address words are hashed too
  k.family = static_cast<__u8>(flow.src.family);
  k.proto = IPPROTO_TCP;
  k.src_port = htons(flow.src_port);
  k.dst_port = htons(flow.dst_port);
  std::memcpy(k.src_addr, flow.src.bytes.data(), flow.src.size());
  std::memcpy(k.dst_addr, flow.dst.bytes.data(), flow.dst.size());
  return k;
}

xo_flow_value to_bpf_value(const SteerEntry& e) {
  xo_flow_value v{};
  v.action = static_cast<__u32>(e.action);
  v.ifindex = e.ifindex;
  if (e.action != Action::kBlock) std::memcpy(v.addr, e.new_addr.bytes.data(), e.new_addr.size());
  std::memcpy(v.dst_mac, e.dst_mac.data(), 6);
  std::memcpy(v.src_mac, e.src_mac.data(), 6);
  v.owner = e.owner;
  v.insert_time_ns = e.insert_time_ns;
  return v;
}

FlowKey from_bpf_key(const xo_flow_key& k) {
  FlowKey f;
  f.src = addr_from(k.family, k.src_addr);
  f.dst = addr_from(k.family, k.dst_addr);
  f.src_port = ntohs(k.src_port);
  f.dst_port = ntohs(k.dst_port);
  return f;
}

ListedEntry from_bpf(const xo_flow_key& k, const xo_flow_value& v) {
  ListedEntry l;
  l.entry.flow = from_bpf_key(k);
  l.entry.action = static_cast<Action>(v.action);
  if (l.entry.action != Action::kBlock) l.entry.new_addr = addr_from(k.family, v.addr);
  std::memcpy(l.entry.dst_mac.data(), v.dst_mac, 6);
  std::memcpy(l.entry.src_mac.data(), v.src_mac, 6);
  l.entry.ifindex = v.ifindex;
  l.entry.owner = v.owner;
  l.entry.insert_time_ns = v.insert_time_ns;
  l.stats.packets = v.packets;
  l.stats.bytes = v.bytes;
  return l;
}

}  // namespace xo::steer
