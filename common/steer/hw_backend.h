// The hardware side of the hybrid: install and remove one rule, slowly
// (milliseconds to tens of milliseconds; a sent request cannot be taken back).
// An Error with code EOPNOTSUPP means "this kernel/NIC cannot do it": the
// hybrid then stays eBPF-only for good and says so.
#pragma once

#include <string>

#include "common/base/result.h"
#include "common/steer/flow.h"

namespace xo::steer {

inline bool is_unsupported(const Error& e) { return e.code == EOPNOTSUPP; }

class HwSteer {
 public:
  virtual ~HwSteer() = default;
  virtual Status add(const SteerEntry& entry) = 0;
  virtual Status remove(const SteerEntry& entry) = 0;
  virtual std::string name() const = 0;
};

}  // namespace xo::steer
