// Keeps a PrimaryTable current: fetches `osd dump` (monitor) and `pg dump pgs_brief`
// (manager) through librados, and refreshes when the osdmap epoch moves. The manager's
// PG report trails a map change by a few seconds, so after an epoch change refresh()
// keeps reloading for kSettle after each change and while any PG lacks an up primary.
#pragma once

#include <rados/librados.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "common/base/result.h"
#include "rgw-xo/locator/primary_table.h"

namespace xo::rgw {

class ClusterMap {
 public:
  explicit ClusterMap(librados::Rados& rados) : rados_(rados) {}

  // Loads a fresh table (two commands, ~ms).
  Status load();
  // Cheap check (`osd stat`): reloads when the epoch differs from the table's, or when
  // the last table still had PGs without an up primary. Returns whether it reloaded.
  Result<bool> refresh();
  // The current snapshot; never null after a successful load().
  std::shared_ptr<const PrimaryTable> table() const { return table_.load(std::memory_order_acquire); }

  Result<uint32_t> current_epoch();

 private:
  Result<std::string> command(bool mgr, const std::string& json);
  static constexpr std::chrono::seconds kSettle{15};
  librados::Rados& rados_;
  std::chrono::steady_clock::time_point last_change_{};
  std::atomic<std::shared_ptr<const PrimaryTable>> table_;
};

}  // namespace xo::rgw
