#include "common/handoff/protocol/reconcile.h"

#include <mutex>
#include <set>

#include "common/handoff/wire/limits.h"
#include "common/handoff/wire/messages.h"

namespace xo::handoff::protocol {
namespace {

// Shared by the answers of every target (they arrive on different strands).
struct Round {
  std::mutex mu;
  ReconcileResult result;
  size_t outstanding = 0;
  std::function<void(ReconcileResult)> done;

  void add(std::vector<uint64_t> held, std::vector<uint64_t> stale, std::vector<uint64_t> unknown) {
    std::function<void(ReconcileResult)> finish;
    ReconcileResult out;
    {
      std::lock_guard lock(mu);
      auto append = [](std::vector<uint64_t>& to, const std::vector<uint64_t>& from) {
        to.insert(to.end(), from.begin(), from.end());
      };
      append(result.held, held);
      append(result.stale, stale);
      append(result.unknown, unknown);
      if (--outstanding != 0) return;
      finish = std::move(done);
      out = std::move(result);
    }
    if (finish) finish(std::move(out));
  }
};

}  // namespace

void reconcile(const std::map<std::string, std::vector<uint64_t>>& redirects, const LinkFor& link_for,
               std::chrono::milliseconds timeout, std::function<void(ReconcileResult)> done) {
  auto round = std::make_shared<Round>();
  round->done = std::move(done);
  // One request per target and chunk (a Reconcile carries at most kMaxReconcileFlows).
  std::vector<std::pair<std::string, std::vector<uint64_t>>> asks;
  for (const auto& [host, ids] : redirects)
    for (size_t at = 0; at < ids.size(); at += wire::kMaxReconcileFlows)
      asks.emplace_back(host, std::vector<uint64_t>(ids.begin() + at,
                                                    ids.begin() + std::min(ids.size(), at + wire::kMaxReconcileFlows)));
  round->outstanding = asks.size() + 1;  // +1: released below, so `done` cannot run mid-loop
  for (auto& ask : asks) {
    // Not a structured binding: clang 14 (the fuzz tree) cannot capture those.
    const std::string& host = ask.first;
    const std::vector<uint64_t> ids = ask.second;
    auto link = link_for(host);
    if (!link) {
      round->add({}, {}, ids);
      continue;
    }
    pb::Reconcile r;
    for (uint64_t id : ids) r.add_flow_ids(id);
    link->request(wire::wrap(std::move(r)), timeout, [round, ids](Result<pb::Envelope> answer) {
      if (!answer.ok()) return round->add({}, {}, ids);
      std::set<uint64_t> held_set(answer->reconcile_answer().held_flow_ids().begin(),
                                  answer->reconcile_answer().held_flow_ids().end());
      std::vector<uint64_t> held, stale;
      for (uint64_t id : ids) (held_set.count(id) ? held : stale).push_back(id);  // ignore ids we did not ask
      round->add(std::move(held), std::move(stale), {});
    });
  }
  round->add({}, {}, {});
}

}  // namespace xo::handoff::protocol
