// SPDX-License-Identifier: GPL-2.0
/* Flow steering programs, attached once per interface; everything per flow
 * is an entry in xo_flows (see xo_steer.h).
 *   xo_tc_ingress  frontend NIC ingress: BLOCK or REDIRECT to a target;
 *                  target NIC ingress: BLOCK (while a connection is frozen)
 *   xo_tc_egress   NIC egress: BLOCK a frozen flow's own packets; on a target, SNAT the
 *                  source back to the service address
 *   xo_xdp_ingress the frontend program as XDP (generic or native) */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "maps.bpf.h"
#include "parse.bpf.h"
#include "rewrite_skb.bpf.h"
#include "rewrite_xdp.bpf.h"

/* Not our flow: TC_ACT_UNSPEC lets the next filter on the hook classify it
 * (in direct-action mode TC_ACT_OK would end the chain), e.g. the TC flower
 * rule that the hybrid installs when the NIC cannot take it in hardware. */
#define XO_TC_NEXT TC_ACT_UNSPEC

/* Headers we may need in the linear area: Ethernet + IPv6 (or IPv4 with
 * options) + TCP without options. */
#define XO_HEADROOM_NEEDED (14 + 60 + 20)

static __always_inline int xo_skb_parse(struct __sk_buff *skb, struct xo_parsed *p) {
  if (xo_parse((void *)(long)skb->data, (void *)(long)skb->data_end, p) == 0) return 0;
  /* Headers may sit in paged data (GRO'd or fragmented skbs): pull and retry. */
  __u32 want = skb->len < XO_HEADROOM_NEEDED ? skb->len : XO_HEADROOM_NEEDED;
  if (skb->data_end - skb->data >= want) return -1;
  if (bpf_skb_pull_data(skb, want)) return -1;
  return xo_parse((void *)(long)skb->data, (void *)(long)skb->data_end, p);
}

/* A BLOCK drop of a segment that carries data or a FIN: hand a copy to the
 * control plane (xo_held), which replays it once the flow is live again.
 * Bare ACKs are not worth it: the next one supersedes them. */
static __always_inline void xo_hold(struct __sk_buff *skb, const struct xo_parsed *p, __u64 owner) {
  /* Offsets re-derived from the headers (bounded for the verifier); the
   * parser accepted only Ethernet + IPv4/IPv6 + TCP. */
  void *data = (void *)(long)skb->data, *data_end = (void *)(long)skb->data_end;
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > data_end) return;
  __u32 l4_off, ip_end; /* ip_end: the frame may be padded past the IP packet */
  if (p->key.family == AF_INET) {
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end) return;
    l4_off = sizeof(*eth) + ip->ihl * 4;
    ip_end = sizeof(*eth) + bpf_ntohs(ip->tot_len);
  } else {
    struct ipv6hdr *ip6 = (void *)(eth + 1);
    if ((void *)(ip6 + 1) > data_end) return;
    l4_off = sizeof(*eth) + sizeof(*ip6);
    ip_end = l4_off + bpf_ntohs(ip6->payload_len);
  }
  l4_off &= 0xff;
  struct tcphdr *tcp = data + l4_off;
  if ((void *)(tcp + 1) > data_end) return;
  if (ip_end <= l4_off + tcp->doff * 4 && !tcp->fin) return; /* a bare ACK */
  if (ip_end > skb->len) return;
  struct xo_held_meta meta = {.owner = owner, .l3_off = sizeof(*eth), .len = ip_end};
  __u64 flags = BPF_F_CURRENT_CPU | ((__u64)(ip_end & 0xffff) << 32);
  if (bpf_perf_event_output(skb, &xo_held, flags, &meta, sizeof(meta)) == 0) xo_count(XO_CNT_HELD);
}

static __always_inline int xo_tc_ingress_flow(struct __sk_buff *skb) {
  struct xo_parsed p;
  if (xo_skb_parse(skb, &p)) {
    xo_count(XO_CNT_NOT_TCP);
    return XO_TC_NEXT;
  }
  struct xo_flow_value *v = bpf_map_lookup_elem(&xo_flows, &p.key);
  if (!v) {
    xo_count(XO_CNT_MISS);
    return XO_TC_NEXT;
  }
  xo_account(v, skb->len);
  if (v->action == XO_ACTION_BLOCK) {
    xo_count(XO_CNT_BLOCK);
    xo_hold(skb, &p, v->owner);
    return TC_ACT_SHOT;
  }
  if (v->action != XO_ACTION_REDIRECT) return XO_TC_NEXT; /* SNAT is egress-only */
  if (xo_skb_rewrite_addr(skb, &p, v->addr, 0) || xo_skb_rewrite_macs(skb, v->dst_mac, v->src_mac)) {
    xo_count(XO_CNT_ERROR);
    return TC_ACT_SHOT;
  }
  xo_count(XO_CNT_REDIRECT);
  /* flags 0: out of the interface's egress, i.e. back onto the wire. */
  return bpf_redirect(v->ifindex ? v->ifindex : skb->ifindex, 0);
}

SEC("tc")
int xo_tc_ingress(struct __sk_buff *skb) {
  /* Odd from before the lookup until after the held sample is written (see
   * xo_ingress_seq). Atomic adds: on x86 (lock-prefixed) each is a full
   * barrier, so the lookup cannot move outside them. */
  __u32 zero = 0;
  __u64 *seq = bpf_map_lookup_elem(&xo_ingress_seq, &zero);
  if (seq) __sync_fetch_and_add(seq, 1);
  int rc = xo_tc_ingress_flow(skb);
  if (seq) __sync_fetch_and_add(seq, 1);
  return rc;
}

SEC("tc")
int xo_tc_egress(struct __sk_buff *skb) {
  struct xo_parsed p;
  if (xo_skb_parse(skb, &p)) return XO_TC_NEXT;
  struct xo_flow_value *v = bpf_map_lookup_elem(&xo_flows, &p.key);
  if (!v) return XO_TC_NEXT; /* not counted: every local packet passes here */
  if (v->action == XO_ACTION_BLOCK) {
    /* A socket in TCP_REPAIR still transmits from its send queue (pacing and
     * TSQ timers): while a flow is frozen, or restored but not yet committed,
     * nothing of it may leave this host. */
    xo_account(v, skb->len);
    xo_count(XO_CNT_BLOCK);
    return TC_ACT_SHOT;
  }
  if (v->action != XO_ACTION_SNAT) return XO_TC_NEXT;
  xo_account(v, skb->len);
  if (xo_skb_rewrite_addr(skb, &p, v->addr, 1)) {
    xo_count(XO_CNT_ERROR);
    return TC_ACT_SHOT;
  }
  xo_count(XO_CNT_SNAT);
  return XO_TC_NEXT; /* rewritten; later filters may still act on it */
}

SEC("xdp")
int xo_xdp_ingress(struct xdp_md *ctx) {
  void *data = (void *)(long)ctx->data;
  void *data_end = (void *)(long)ctx->data_end;
  struct xo_parsed p;
  if (xo_parse(data, data_end, &p)) {
    xo_count(XO_CNT_NOT_TCP);
    return XDP_PASS;
  }
  struct xo_flow_value *v = bpf_map_lookup_elem(&xo_flows, &p.key);
  if (!v) {
    xo_count(XO_CNT_MISS);
    return XDP_PASS;
  }
  xo_account(v, data_end - data);
  if (v->action == XO_ACTION_BLOCK) {
    xo_count(XO_CNT_BLOCK);
    return XDP_DROP;
  }
  if (v->action != XO_ACTION_REDIRECT) return XDP_PASS;
  if (xo_xdp_rewrite_addr(data, data_end, &p, v->addr, 0)) {
    xo_count(XO_CNT_ERROR);
    return XDP_DROP;
  }
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > data_end) return XDP_DROP;
  __builtin_memcpy(eth->h_dest, v->dst_mac, 6);
  __builtin_memcpy(eth->h_source, v->src_mac, 6);
  xo_count(XO_CNT_REDIRECT);
  if (v->ifindex == 0 || v->ifindex == ctx->ingress_ifindex) return XDP_TX;
  return bpf_redirect(v->ifindex, 0);
}

char LICENSE[] SEC("license") = "GPL";
