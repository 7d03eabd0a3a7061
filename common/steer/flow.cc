#include "common/steer/flow.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cstdio>
#include <ctime>
#include <functional>

namespace xo::steer {

Result<IpAddr> IpAddr::parse(std::string_view text) {
  std::string s(text);
  IpAddr a;
  if (inet_pton(AF_INET, s.c_str(), a.bytes.data()) == 1) {
    a.family = AF_INET;
    return a;
  }
  if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) == 1) {
    a.family = AF_INET6;
    return a;
  }
  return error("not an IP address: '" + s + "'", EINVAL);
}

std::string IpAddr::to_string() const {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (family == AF_INET || family == AF_INET6) inet_ntop(family, bytes.data(), buf, sizeof(buf));
  return buf;
}

Result<MacAddr> parse_mac(std::string_view text) {
  MacAddr m{};
  unsigned v[6];
  std::string s(text);
  char tail;
  if (std::sscanf(s.c_str(), "%x:%x:%x:%x:%x:%x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &tail) != 6)
    return error("not a MAC address: '" + s + "'", EINVAL);
  for (int i = 0; i < 6; i++) {
    if (v[i] > 0xff) return error("not a MAC address: '" + s + "'", EINVAL);
    m[i] = static_cast<uint8_t>(v[i]);
  }
  return m;
}

std::string mac_to_string(const MacAddr& m) {
  char buf[18];
  std::snprintf(buf, sizeof(buf), "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
  return buf;
}

static std::string endpoint(const IpAddr& a, uint16_t port) {
  return a.family == AF_INET6 ? "[" + a.to_string() + "]:" + std::to_string(port)
                              : a.to_string() + ":" + std::to_string(port);
}

std::string FlowKey::to_string() const { return endpoint(src, src_port) + " -> " + endpoint(dst, dst_port); }

size_t FlowKeyHash::operator()(const FlowKey& k) const {
  size_t h = std::hash<uint64_t>()((uint64_t(k.src_port) << 16) | k.dst_port);
  for (int i = 0; i < 16; i++) h = h * 131 + k.src.bytes[i] * 7 + k.dst.bytes[i];
  return h ^ static_cast<size_t>(k.src.family);
}

std::string_view action_name(Action a) {
  switch (a) {
    case Action::kBlock: return "block";
    case Action::kRedirect: return "redirect";
    case Action::kSnat: return "snat";
  }
  return "unknown";
}

SteerEntry SteerEntry::block(FlowKey flow, uint64_t owner, uint64_t now_ns) {
  SteerEntry e;
  e.flow = std::move(flow);
  e.action = Action::kBlock;
  e.owner = owner;
  e.insert_time_ns = now_ns;
  return e;
}

SteerEntry SteerEntry::redirect(FlowKey flow, IpAddr to, MacAddr to_mac, MacAddr our_mac, uint64_t owner,
                                uint64_t now_ns, uint32_t ifindex) {
  SteerEntry e = block(std::move(flow), owner, now_ns);
  e.action = Action::kRedirect;
  e.new_addr = to;
  e.dst_mac = to_mac;
  e.src_mac = our_mac;
  e.ifindex = ifindex;
  return e;
}

SteerEntry SteerEntry::snat(FlowKey flow, IpAddr service, uint64_t owner, uint64_t now_ns) {
  SteerEntry e = block(std::move(flow), owner, now_ns);
  e.action = Action::kSnat;
  e.new_addr = service;
  return e;
}

Status SteerEntry::validate() const {
  int fam = flow.src.family;
  if (fam != AF_INET && fam != AF_INET6) return error("steer: flow has no address family", EINVAL);
  if (flow.dst.family != fam) return error("steer: flow mixes IPv4 and IPv6: " + flow.to_string(), EINVAL);
  if (action != Action::kBlock && new_addr.family != fam)
    return error("steer: rewrite address family differs from the flow's: " + to_string(), EINVAL);
  if (action != Action::kBlock && action != Action::kRedirect && action != Action::kSnat)
    return error("steer: unknown action", EINVAL);
  return {};
}

std::string SteerEntry::to_string() const {
  std::string s = std::string(action_name(action)) + " " + flow.to_string();
  if (action == Action::kRedirect)
    s += " to " + new_addr.to_string() + " mac " + mac_to_string(dst_mac) + " via ifindex " + std::to_string(ifindex);
  if (action == Action::kSnat) s += " source " + new_addr.to_string();
  return s;
}

uint64_t realtime_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

}  // namespace xo::steer
