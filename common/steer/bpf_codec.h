// Domain types (flow.h) <-> the map ABI shared with the programs (bpf/xo_steer.h).
#pragma once

#include "bpf/xo_steer.h"
#include "common/steer/flow.h"

namespace xo::steer {

xo_flow_key to_bpf_key(const FlowKey& flow);
xo_flow_value to_bpf_value(const SteerEntry& entry);
FlowKey from_bpf_key(const xo_flow_key& key);
ListedEntry from_bpf(const xo_flow_key& key, const xo_flow_value& value);

}  // namespace xo::steer
