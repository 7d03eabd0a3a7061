/* Address rewrites on an __sk_buff with incremental checksum fixes through
 * bpf_l3_csum_replace / bpf_l4_csum_replace. These helpers also handle
 * CHECKSUM_PARTIAL skbs (veth and TSO paths), where the TCP checksum field
 * holds only the pseudo-header sum; a hand-rolled fix would corrupt those.
 * Every helper call invalidates packet pointers: callers pass copies. */
#pragma once

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <stddef.h>
#include <bpf/bpf_helpers.h>

#include "parse.bpf.h"

#define XO_TCP_CSUM_OFF offsetof(struct tcphdr, check)

/* Replace the source (is_src) or destination address of the parsed packet
 * by new_addr, fixing the IPv4 header checksum and the TCP checksum.
 * Returns 0 or a negative helper error. */
static __always_inline int xo_skb_rewrite_addr(struct __sk_buff *skb, const struct xo_parsed *p,
                                               const __be32 *new_addr, int is_src) {
  const __u32 l4_csum = p->l4_off + XO_TCP_CSUM_OFF;
  int err;
  if (p->key.family == AF_INET) {
    __be32 old = is_src ? p->key.src_addr[0] : p->key.dst_addr[0];
    __be32 new = new_addr[0];
    __u32 field = p->l3_off + (is_src ? offsetof(struct iphdr, saddr) : offsetof(struct iphdr, daddr));
    err = bpf_l4_csum_replace(skb, l4_csum, old, new, BPF_F_PSEUDO_HDR | sizeof(new));
    if (err) return err;
    err = bpf_l3_csum_replace(skb, p->l3_off + offsetof(struct iphdr, check), old, new, sizeof(new));
    if (err) return err;
    return bpf_skb_store_bytes(skb, field, &new, sizeof(new), 0);
  }
  /* IPv6: no header checksum; the 16-byte address enters the TCP pseudo
   * header, so fold its difference in once. */
  __be32 old6[4], new6[4];
  __builtin_memcpy(old6, is_src ? p->key.src_addr : p->key.dst_addr, 16);
  __builtin_memcpy(new6, new_addr, 16);
  __s64 diff = bpf_csum_diff(old6, 16, new6, 16, 0);
  if (diff < 0) return (int)diff;
  err = bpf_l4_csum_replace(skb, l4_csum, 0, (__u32)diff, BPF_F_PSEUDO_HDR);
  if (err) return err;
  __u32 field = p->l3_off + (is_src ? offsetof(struct ipv6hdr, saddr) : offsetof(struct ipv6hdr, daddr));
  return bpf_skb_store_bytes(skb, field, new6, 16, 0);
}

static __always_inline int xo_skb_rewrite_macs(struct __sk_buff *skb, const __u8 *dst_mac,
                                               const __u8 *src_mac) {
  __u8 macs[12];
  __builtin_memcpy(macs, dst_mac, 6);
  __builtin_memcpy(macs + 6, src_mac, 6);
  return bpf_skb_store_bytes(skb, 0, macs, sizeof(macs), 0);
}
