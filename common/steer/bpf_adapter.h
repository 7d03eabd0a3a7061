// BpfAdapter: the ONLY place in XO that touches libbpf (like Katran's
// BpfAdapter). It loads bpf/steer.bpf.c (or adopts the copy pinned in a bpffs
// directory), attaches its programs to interfaces, and reads and writes the
// flow map in the ABI of bpf/xo_steer.h. Everything above it speaks flows.
//
// Pinned layout in pin_dir (a directory on a bpffs mount):
//   xo_flows, xo_counters, xo_held, xo_ingress_seq   maps (libbpf pin-by-name)
//   xo_tc_ingress, xo_tc_egress, xo_xdp_ingress   programs
// Programs are attached once; a later process opens the pins and finds its own
// programs already attached (tc filters and XDP outlive the process).
//
// Attach/detach use netlink in the calling thread's network namespace: enter
// the host's namespace (setns) first. `ip netns exec` remounts /sys, so pins
// under /sys/fs/bpf are invisible there — keep pin_dir on a bpffs of its own.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "bpf/xo_steer.h"
#include "common/base/fd.h"
#include "common/base/result.h"

namespace xo::steer {

enum class Hook { kTcIngress = 0, kTcEgress = 1, kXdpGeneric = 2, kXdpNative = 3 };
const char* hook_name(Hook h);

using BpfCounters = std::array<uint64_t, XO_CNT_MAX>;

class BpfAdapter {
 public:
  // Opens the objects pinned in pin_dir, or loads the programs and pins them
  // there (creating pin_dir, which must be on a bpffs).
  static Result<std::unique_ptr<BpfAdapter>> open(const std::string& pin_dir);
  // Removes the pins (the kernel frees programs and maps once nothing is
  // attached and no process holds them).
  static Status unpin(const std::string& pin_dir);

  bool loaded_fresh() const { return loaded_fresh_; }
  const std::string& pin_dir() const { return pin_dir_; }

  // Attaches our program at hook unless it is attached there already.
  // Returns true when it already was (adoption), false when attached now.
  Result<bool> attach(Hook hook, int ifindex);
  Status detach(Hook hook, int ifindex);
  // True when our pinned program is the one attached at hook.
  Result<bool> attached(Hook hook, int ifindex);

  Status update(const xo_flow_key& key, const xo_flow_value& value);
  Status erase(const xo_flow_key& key);  // ENOENT when absent
  Result<bool> lookup(const xo_flow_key& key, xo_flow_value* value);
  Result<std::vector<std::pair<xo_flow_key, xo_flow_value>>> dump();
  Result<BpfCounters> counters();  // summed over CPUs
  int held_map_fd() const { return held_.get(); }  // xo_held (held_packets.h)
  int ingress_seq_map_fd() const { return ingress_seq_.get(); }  // xo_ingress_seq (ingress_fence.h)

 private:
  BpfAdapter() = default;
  int prog_fd(Hook h) const;

  std::string pin_dir_;
  bool loaded_fresh_ = false;
  UniqueFd flows_, counters_, held_, ingress_seq_;
  UniqueFd tc_ingress_, tc_egress_, xdp_ingress_;
};

// The fault-injection program (bpf/fault.bpf.c) on one tc hook; detached
// and freed on destruction. Tests only.
class BpfFaultInjector {
 public:
  static Result<std::unique_ptr<BpfFaultInjector>> attach(int ifindex, bool ingress);
  ~BpfFaultInjector();
  Status configure(const xo_fault_config& config);
  Result<xo_fault_stats> stats();

 private:
  BpfFaultInjector() = default;
  int ifindex_ = 0;
  bool ingress_ = true;
  UniqueFd prog_, config_, stats_;
};

}  // namespace xo::steer
