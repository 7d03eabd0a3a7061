// IngressFence: waits until every run of the tc ingress program that may have
// looked up an entry before the control plane replaced it has finished.
//
// Why: a run that found a BLOCK just before the switch still drops its
// segment and writes the sample for replay (xo_held) a moment later, on
// another CPU — or much later, when the hypervisor deschedules that vCPU in
// between. Reading the rings right after the switch would miss it and the
// client would resend it only at its retransmission timeout (~200 ms). The
// program keeps a per-CPU sequence, odd while it runs (bpf/maps.bpf.h,
// xo_ingress_seq); the fence reads it and, for a CPU caught inside a run,
// waits until that run is over. A userspace synchronize_rcu for one program.
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include "common/base/fd.h"
#include "common/base/result.h"

namespace xo::steer {

class IngressFence {
 public:
  // `seq_map_fd`: the pinned xo_ingress_seq map (duplicated, not taken).
  static Result<IngressFence> open(int seq_map_fd);

  // Returns once no run that started before this call is still going, or
  // ETIMEDOUT after `bound` (a vCPU descheduled for that long: its segment
  // may then be missed, and the client resends it).
  Status wait(std::chrono::microseconds bound = std::chrono::microseconds(200)) const;

 private:
  explicit IngressFence(UniqueFd fd, size_t cpus) : fd_(std::move(fd)), cpus_(cpus) {}
  Status read(std::vector<uint64_t>& out) const;

  UniqueFd fd_;
  size_t cpus_ = 0;  // possible CPUs: the length of a per-CPU value
};

}  // namespace xo::steer
