/* The maps of the steering programs. Pinned by name under the pin directory
 * the control plane chooses, so a restarted daemon finds the same maps. */
#pragma once

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "xo_steer.h"

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, XO_STEER_MAX_FLOWS);
  __type(key, struct xo_flow_key);
  __type(value, struct xo_flow_value);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} xo_flows SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, XO_CNT_MAX);
  __type(key, __u32);
  __type(value, __u64);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} xo_counters SEC(".maps");

/* Dropped data segments for replay (struct xo_held_meta + packet). One perf
 * ring per CPU, set up by the control plane that replays them. */
struct {
  __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
  __uint(key_size, sizeof(__u32));
  __uint(value_size, sizeof(__u32));
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} xo_held SEC(".maps");

/* One sequence per CPU, odd while xo_tc_ingress runs there: a BLOCK the
 * program looked up may still be dropping (and reporting) a segment after the
 * control plane replaced it. Before it reads xo_held for a flow it just
 * unblocked, the control plane waits until no CPU is still inside a run that
 * began before the switch (common/steer/ingress_fence.h). */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
  __uint(pinning, LIBBPF_PIN_BY_NAME);
} xo_ingress_seq SEC(".maps");

static __always_inline void xo_count(__u32 which) {
  __u64 *c = bpf_map_lookup_elem(&xo_counters, &which);
  if (c) *c += 1; /* per-CPU slot: no atomics needed */
}

static __always_inline void xo_account(struct xo_flow_value *v, __u64 len) {
  __sync_fetch_and_add(&v->packets, 1);
  __sync_fetch_and_add(&v->bytes, len);
}
