// The vocabulary of flow steering: a flow (one direction of a TCP 4-tuple as
// a hook sees it), what to do with it, and who asked. Backend-independent.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/base/result.h"

namespace xo::steer {

struct IpAddr {
  int family = 0;                  // AF_INET or AF_INET6
  std::array<uint8_t, 16> bytes{}; // network order; IPv4 uses the first 4

  static Result<IpAddr> parse(std::string_view text);
  std::string to_string() const;
  size_t size() const { return family == 10 /* AF_INET6 */ ? 16 : 4; }
  bool operator==(const IpAddr&) const = default;
};

using MacAddr = std::array<uint8_t, 6>;
Result<MacAddr> parse_mac(std::string_view text);
std::string mac_to_string(const MacAddr& mac);

// One direction of one TCP flow, exactly as the hook sees it on the wire.
// Ports in host order.
struct FlowKey {
  IpAddr src;
  uint16_t src_port = 0;
  IpAddr dst;
  uint16_t dst_port = 0;

  std::string to_string() const;  // "198.18.0.2:40000 -> 198.18.0.100:80"
  bool operator==(const FlowKey&) const = default;
};

struct FlowKeyHash {
  size_t operator()(const FlowKey& k) const;
};

enum class Action : uint32_t {
  kBlock = 1,     // drop at ingress (connection frozen or handed off)
  kRedirect = 2,  // frontend ingress: rewrite destination IP + MACs, send to the target
  kSnat = 3,      // target egress: rewrite the source back to the service address
};
std::string_view action_name(Action a);

// One steering rule. owner and insert_time_ns are the caller's: this layer
// stores and lists them, the handoff layer decides what they mean.
struct SteerEntry {
  FlowKey flow;
  Action action = Action::kBlock;
  IpAddr new_addr;          // kRedirect: new destination; kSnat: new source
  MacAddr dst_mac{};        // kRedirect: the target's NIC
  MacAddr src_mac{};        // kRedirect: our NIC
  uint32_t ifindex = 0;     // kRedirect: egress interface, 0 = the one it came in on
  uint64_t owner = 0;
  uint64_t insert_time_ns = 0;  // CLOCK_REALTIME

  static SteerEntry block(FlowKey flow, uint64_t owner, uint64_t now_ns);
  static SteerEntry redirect(FlowKey flow, IpAddr to, MacAddr to_mac, MacAddr our_mac,
                             uint64_t owner, uint64_t now_ns, uint32_t ifindex = 0);
  static SteerEntry snat(FlowKey flow, IpAddr service, uint64_t owner, uint64_t now_ns);

  Status validate() const;
  std::string to_string() const;
};

struct FlowStats {
  uint64_t packets = 0;
  uint64_t bytes = 0;
};

struct ListedEntry {
  SteerEntry entry;
  FlowStats stats;
};

uint64_t realtime_ns();

}  // namespace xo::steer
