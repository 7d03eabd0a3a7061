#include "common/handoff/node/host_env.h"

#include <sys/socket.h>

#include <cstdio>

#include "common/handoff/node/flow_keys.h"
#include "common/tcp/inject.h"
#include "common/tcp/snapshot.h"

namespace xo::handoff::node {

Result<steer::IpAddr> HostEnv::data_ip(int family) const {
  const auto& ip = family == AF_INET6 ? config_.data_ip6 : config_.data_ip4;
  if (!ip) return error(std::string("this host has no ") + (family == AF_INET6 ? "IPv6" : "IPv4") + " data address",
                        EAFNOSUPPORT);
  return *ip;
}

Result<const Peer*> HostEnv::peer(const std::string& host_id) const {
  auto it = config_.peers.find(host_id);
  if (it == config_.peers.end()) return error("unknown peer host " + host_id, ENOENT);
  return &it->second;
}

Result<steer::IpAddr> HostEnv::peer_ip(const Peer& peer, int family) const {
  const auto& ip = family == AF_INET6 ? peer.data_ip6 : peer.data_ip4;
  if (!ip) return error("peer has no data address of this family", EAFNOSUPPORT);
  return *ip;
}

std::optional<std::string> HostEnv::peer_by_ip(const steer::IpAddr& ip) const {
  for (const auto& [id, p] : config_.peers)
    if ((p.data_ip4 && *p.data_ip4 == ip) || (p.data_ip6 && *p.data_ip6 == ip)) return id;
  return std::nullopt;
}

Status HostEnv::insert(const steer::SteerEntry& entry) {
  XO_TRY(config_.steer->insert(entry));
  std::lock_guard lock(mu_);
  owners_[entry.flow] = entry.owner;
  return {};
}

void HostEnv::remove(const steer::FlowKey& key, uint64_t owner) {
  {
    std::lock_guard lock(mu_);
    auto it = owners_.find(key);
    // Unknown key: inserted before a restart (reconcile), remove it.
    if (it != owners_.end()) {
      if (it->second != owner) return;
      owners_.erase(it);
    }
  }
  auto st = config_.steer->remove(key);
  if (st.ok() || st.error().code == ENOENT) return;
  ++steer_errors_;
  std::fprintf(stderr, "xo-handoff[%s]: cannot remove steering entry %s: %s\n", config_.host_id.c_str(),
               key.to_string().c_str(), st.error().to_string().c_str());
}

UniqueFd HostEnv::spare_repair_socket(int family) {
  if (family != AF_INET && family != AF_INET6) return {};
  UniqueFd spare;
  {
    std::lock_guard lock(mu_);
    spare = std::move(family == AF_INET ? spare_v4_ : spare_v6_);
  }
  if (defer_)
    defer_(std::chrono::milliseconds(0), [this, family] {
      auto fresh = tcp::make_repair_socket(family);
      if (!fresh.ok()) return;  // restore() makes its own next time
      std::lock_guard lock(mu_);
      UniqueFd& slot = family == AF_INET ? spare_v4_ : spare_v6_;
      if (!slot) slot = std::move(*fresh);
    });
  return spare;
}

void HostEnv::remove_later(const steer::FlowKey& key, uint64_t owner) {
  if (!defer_) return remove(key, owner);
  defer_(config_.close_linger, [this, key, owner] { remove(key, owner); });
}

size_t HostEnv::replay_held(const std::vector<std::string>& packets, const FlowInfo& flow, const steer::IpAddr& to) {
  size_t n = 0;
  const tcp::Endpoint client = to_endpoint(flow.client_ip, flow.client_port, flow.client_ip.family);
  const tcp::Endpoint local = to_endpoint(to, flow.service_port, to.family);
  for (const auto& packet : packets) {
    if (auto st = tcp::replay_packet(packet, client, local); !st.ok()) {
      std::fprintf(stderr, "xo-handoff[%s]: %s: replay of a held segment failed: %s\n", config_.host_id.c_str(),
                   flow.to_string().c_str(), st.error().to_string().c_str());
      continue;
    }
    ++n;
  }
  replayed_ += n;
  return n;
}

}  // namespace xo::handoff::node
