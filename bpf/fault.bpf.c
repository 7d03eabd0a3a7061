// SPDX-License-Identifier: GPL-2.0
/* Fault injection for tests (the host kernel has no netem): a tc program that
 * drops a fraction, or exactly the nth packet, of one chosen flow. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "parse.bpf.h"

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct xo_fault_config);
} xo_fault_config SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct xo_fault_stats);
} xo_fault_stats SEC(".maps");

static __always_inline int xo_key_matches(const struct xo_flow_key *want, const struct xo_flow_key *got) {
  if (want->family == 0) return 1;
  const __u32 *a = (const __u32 *)want, *b = (const __u32 *)got;
#pragma unroll
  for (int i = 0; i < sizeof(*want) / 4; i++)
    if (a[i] != b[i]) return 0;
  return 1;
}

/* Every verdict but the drop is TC_ACT_UNSPEC, not TC_ACT_OK: in direct-action
 * mode OK ends the filter chain, and the steering filter behind us must still run. */
SEC("tc")
int xo_fault(struct __sk_buff *skb) {
  __u32 zero = 0;
  struct xo_fault_config *cfg = bpf_map_lookup_elem(&xo_fault_config, &zero);
  struct xo_fault_stats *st = bpf_map_lookup_elem(&xo_fault_stats, &zero);
  if (!cfg || !st || cfg->mode == XO_FAULT_OFF) return TC_ACT_UNSPEC;
  struct xo_parsed p;
  if (xo_parse((void *)(long)skb->data, (void *)(long)skb->data_end, &p)) return TC_ACT_UNSPEC;
  if (!xo_key_matches(&cfg->key, &p.key)) return TC_ACT_UNSPEC;
  __u64 n = __sync_fetch_and_add(&st->matched, 1) + 1;
  int drop = cfg->mode == XO_FAULT_FRACTION ? bpf_get_prandom_u32() < cfg->threshold
                                            : n == cfg->nth;
  if (!drop) return TC_ACT_UNSPEC;
  __sync_fetch_and_add(&st->dropped, 1);
  return TC_ACT_SHOT;
}

char LICENSE[] SEC("license") = "GPL";
