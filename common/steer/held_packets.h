// HeldPackets: the data segments the ingress program dropped for BLOCK
// entries (bpf/steer.bpf.c, map xo_held), read from its per-CPU perf rings
// and kept by owner tag until the control plane takes them for replay.
//
// Why: a connection is blocked while it moves (~0.1 ms). A client segment
// with data that arrives then — typically the next request of a keep-alive
// client right after a response — is dropped, and the client resends it
// only at its loss-probe timeout (~200 ms with one segment in flight).
// Replayed into the socket once the flow is live, it costs nothing.
//
// One reader per map: the perf rings belong to whoever opened them last, so
// only the process that moves connections (the Node's host) opens one.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/base/fd.h"
#include "common/base/result.h"
#include "common/steer/ingress_fence.h"

struct perf_buffer;

namespace xo::steer {

class HeldPackets {
 public:
  // `held_map_fd`, `seq_map_fd`: the pinned xo_held and xo_ingress_seq maps
  // (duplicated, not taken).
  static Result<std::unique_ptr<HeldPackets>> open(int held_map_fd, int seq_map_fd);
  ~HeldPackets();
  HeldPackets(const HeldPackets&) = delete;
  HeldPackets& operator=(const HeldPackets&) = delete;

  // Every IP packet (from its IP header on) held for `owner` so far, oldest
  // first; they are forgotten here. Call it after the flow's BLOCK is gone:
  // it first waits for ingress runs that may still be dropping for it
  // (IngressFence), so nothing dropped before the switch is missed.
  std::vector<std::string> take(uint64_t owner);

 private:
  HeldPackets() = default;
  void drain();
  static void on_sample(void* ctx, int cpu, void* data, uint32_t size);

  // Packets nobody took (flows that went another way) are bounded: past
  // kMaxBytes the oldest owners' packets are dropped.
  static constexpr size_t kMaxBytes = 4u << 20;
  perf_buffer* buffer_ = nullptr;
  std::optional<IngressFence> fence_;
  std::mutex mu_;
  // By owner; over kMaxBytes the lowest owner tags go first (within one
  // node's tags, the oldest flows).
  std::map<uint64_t, std::vector<std::string>> by_owner_;
  size_t bytes_ = 0;
};

}  // namespace xo::steer
