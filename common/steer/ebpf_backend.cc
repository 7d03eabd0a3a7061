#include "common/steer/ebpf_backend.h"

#include <net/if.h>

#include "common/steer/bpf_codec.h"

namespace xo::steer {

Result<std::unique_ptr<EbpfSteer>> EbpfSteer::open(const EbpfOptions& options) {
  std::unique_ptr<EbpfSteer> s(new EbpfSteer);
  s->options_ = options;
  if (!options.ifname.empty()) {
    s->ifindex_ = static_cast<int>(if_nametoindex(options.ifname.c_str()));
    if (s->ifindex_ == 0) return sys_error("if_nametoindex(" + options.ifname + ")");
  }
  XO_ASSIGN_OR_RETURN(s->adapter_, BpfAdapter::open(options.pin_dir));
  if (!options.hooks.empty() && s->ifindex_ == 0) return error("ebpf steer: hooks requested without ifname", EINVAL);
  bool all_adopted = !options.hooks.empty();
  for (Hook h : options.hooks) {
    auto r = s->adapter_->attach(h, s->ifindex_);
    if (!r.ok()) return annotate(r.take_error(), std::string("attach ") + hook_name(h) + " on " + options.ifname);
    all_adopted = all_adopted && *r;
  }
  s->adopted_ = all_adopted;
  if (options.hold_blocked) {
    XO_ASSIGN_OR_RETURN(s->held_, HeldPackets::open(s->adapter_->held_map_fd(), s->adapter_->ingress_seq_map_fd()));
  }
  return s;
}

Status EbpfSteer::insert(const SteerEntry& entry) {
  XO_TRY(entry.validate());
  return adapter_->update(to_bpf_key(entry.flow), to_bpf_value(entry));
}

Status EbpfSteer::remove(const FlowKey& flow) { return adapter_->erase(to_bpf_key(flow)); }

std::vector<std::string> EbpfSteer::take_held(uint64_t owner) { return held_ ? held_->take(owner) : std::vector<std::string>{}; }

Result<bool> EbpfSteer::contains(const FlowKey& flow) {
  xo_flow_value v{};
  return adapter_->lookup(to_bpf_key(flow), &v);
}

Result<std::vector<ListedEntry>> EbpfSteer::list() {
  XO_ASSIGN_OR_RETURN(auto raw, adapter_->dump());
  std::vector<ListedEntry> out;
  out.reserve(raw.size());
  for (const auto& [k, v] : raw) out.push_back(from_bpf(k, v));
  return out;
}

Status EbpfSteer::detach() {
  for (Hook h : options_.hooks) XO_TRY(adapter_->detach(h, ifindex_));
  return {};
}

}  // namespace xo::steer
