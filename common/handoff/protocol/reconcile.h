// Reconciliation after a frontend restart: its pinned REDIRECT entries
// survived, its memory did not. Ask every target which of the flows
// redirected to it it still holds; the rest are stale and their entries go.
// A target that cannot be asked leaves its flows "unknown" (keep, ask again):
// removing a live redirect would cut a response mid-stream.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/handoff/protocol/ports.h"

namespace xo::handoff::protocol {

struct ReconcileResult {
  std::vector<uint64_t> held;     // the target still serves them: keep
  std::vector<uint64_t> stale;    // the target does not hold them: remove the entry
  std::vector<uint64_t> unknown;  // the target could not be asked: keep, retry later
};

using LinkFor = std::function<std::shared_ptr<ControlLink>(const std::string& target_host)>;

// `redirects`: flow ids by target host, from this host's steering entries.
// `done` runs once, after every target answered or timed out.
void reconcile(const std::map<std::string, std::vector<uint64_t>>& redirects, const LinkFor& link_for,
               std::chrono::milliseconds timeout, std::function<void(ReconcileResult)> done);

}  // namespace xo::handoff::protocol
