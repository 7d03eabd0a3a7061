// EbpfSteer: the eBPF backend. Programs are attached once per interface and
// the maps pinned in a bpffs directory; a process that finds them pinned and
// attached adopts them (no re-attach), so a daemon restart or crash loses no
// steered flow. Every per-flow operation is one map write (~1 µs).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/steer/backend.h"
#include "common/steer/bpf_adapter.h"
#include "common/steer/held_packets.h"

namespace xo::steer {

struct EbpfOptions {
  std::string pin_dir;  // bpffs directory for this host (one per host/namespace)
  std::string ifname;   // the NIC, looked up in the calling thread's netns
  // Hooks to attach on ifname. A frontend wants tc ingress (or XDP); a target
  // wants tc ingress (BLOCK) and tc egress (SNAT). Empty: attach nothing
  // (map access only, e.g. the operator CLI listing flows).
  std::vector<Hook> hooks;
  // Keep the data segments the ingress program drops for BLOCK entries, for
  // take_held(). Only the process that moves connections on this host: the
  // last reader to open the map gets them.
  bool hold_blocked = false;
};

class EbpfSteer final : public SteerBackend {
 public:
  static Result<std::unique_ptr<EbpfSteer>> open(const EbpfOptions& options);

  Status insert(const SteerEntry& entry) override;
  Status remove(const FlowKey& flow) override;
  Result<std::vector<ListedEntry>> list() override;
  std::string name() const override { return "ebpf"; }
  std::vector<std::string> take_held(uint64_t owner) override;

  Result<bool> contains(const FlowKey& flow);
  Result<BpfCounters> counters() { return adapter_->counters(); }
  // True when every requested hook was found attached with our pinned program.
  bool adopted() const { return adopted_; }
  int ifindex() const { return ifindex_; }
  // Detach our programs from the interface (flows stop being steered).
  Status detach();

 private:
  EbpfSteer() = default;
  EbpfOptions options_;
  int ifindex_ = 0;
  bool adopted_ = false;
  std::unique_ptr<BpfAdapter> adapter_;
  std::unique_ptr<HeldPackets> held_;
};

}  // namespace xo::steer
