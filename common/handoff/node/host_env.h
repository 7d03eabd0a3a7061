// What every port of this host shares: its configuration and its steering
// backend, with the few lookups the ports need.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/handoff/node/node.h"

namespace xo::handoff::node {

class HostEnv {
 public:
  explicit HostEnv(const NodeConfig& config) : config_(config) {}
  const NodeConfig& config() const { return config_; }

  // This host's data address for `family` (NAT mode binds restored sockets here).
  Result<steer::IpAddr> data_ip(int family) const;
  Result<const Peer*> peer(const std::string& host_id) const;
  Result<steer::IpAddr> peer_ip(const Peer& peer, int family) const;
  // The peer whose data address is `ip` (reconcile: REDIRECT entry → target).
  std::optional<std::string> peer_by_ip(const steer::IpAddr& ip) const;

  // Insert (or replace) an entry; remembers its owner tag (the flow id).
  Status insert(const steer::SteerEntry& entry);
  // Remove the entry for `key` if it is still `owner`'s: an entry a newer
  // flow put on the same key (the connection offered again) is left alone.
  // Absent is fine (already gone); any other failure is counted: the entry is
  // left for reconcile / an operator.
  void remove(const steer::FlowKey& key, uint64_t owner);
  // The same after close_linger: stray segments of a flow that left this
  // host are dropped quietly meanwhile instead of meeting a listener's RST.
  void remove_later(const steer::FlowKey& key, uint64_t owner);
  uint64_t steer_errors() const { return steer_errors_.load(); }

  // Client segments this host's BLOCK entries of `owner` dropped (IP packets).
  std::vector<std::string> take_held(uint64_t owner) { return config_.steer->take_held(owner); }
  // Replays held segments of `flow` into the socket now bound to `to` (this
  // host's address for it). tcp::replay_packet refuses (and this logs) any
  // packet that is not the flow's client's segment to its service port: a
  // peer cannot inject into another connection. Returns how many were replayed.
  size_t replay_held(const std::vector<std::string>& packets, const FlowInfo& flow, const steer::IpAddr& to);
  uint64_t replayed() const { return replayed_.load(); }

  // A repair-mode socket of `family` made ahead of time, for tcp::restore()
  // (empty when there is none yet: restore() makes its own). The next one is
  // made after the current handler, so off the handoff's path (the READY or
  // DONE goes out first).
  UniqueFd spare_repair_socket(int family);

  // Runs `fn` on the Node's thread after `delay` (set by the Node).
  using Defer = std::function<void(std::chrono::milliseconds delay, std::function<void()> fn)>;
  void set_defer(Defer defer) { defer_ = std::move(defer); }

 private:
  const NodeConfig& config_;
  std::atomic<uint64_t> steer_errors_{0}, replayed_{0};
  Defer defer_;
  std::mutex mu_;
  std::unordered_map<steer::FlowKey, uint64_t, steer::FlowKeyHash> owners_;  // entries inserted by this process
  UniqueFd spare_v4_, spare_v6_;  // under mu_
};

}  // namespace xo::handoff::node
