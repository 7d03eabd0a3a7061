// One interface for "steer this flow", implemented by the eBPF backend, the
// TC-hardware backend and the hybrid of both.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/base/result.h"
#include "common/steer/flow.h"

namespace xo::steer {

class SteerBackend {
 public:
  virtual ~SteerBackend() = default;
  // Insert or replace the entry for entry.flow.
  virtual Status insert(const SteerEntry& entry) = 0;
  // Remove the entry for flow; ENOENT when there is none.
  virtual Status remove(const FlowKey& flow) = 0;
  virtual Result<std::vector<ListedEntry>> list() = 0;
  virtual std::string name() const = 0;
  // The data segments dropped so far for BLOCK entries of `owner` (IP
  // packets, oldest first), for replay once the flow is live; forgotten
  // here. Empty when the backend does not hold them (held_packets.h).
  virtual std::vector<std::string> take_held(uint64_t owner) {
    (void)owner;
    return {};
  }
};

}  // namespace xo::steer
