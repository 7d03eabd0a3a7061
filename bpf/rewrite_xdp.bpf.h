/* Address rewrites for XDP, where no checksum helpers exist: RFC 1624
 * incremental updates by hand. Assumes a complete checksum in the packet
 * (true for frames from a NIC; a veth peer with TX checksum offload may hand
 * generic XDP a CHECKSUM_PARTIAL skb, whose TCP field is then fixed wrongly
 * but never verified by the receiving stack — the tc program is exact there). */
#pragma once

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>

#include "parse.bpf.h"

static __always_inline __u16 xo_csum_fold(__u64 sum) {
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return (__u16)sum;
}

/* HC' = ~(~HC + ~m + m') over the 16-bit words of old → new (RFC 1624 eq. 3). */
static __always_inline void xo_csum_replace(__u16 *check, const __be32 *old, const __be32 *new,
                                            int words) {
  __u64 sum = (__u16)~*check;
#pragma unroll
  for (int i = 0; i < 4; i++) {
    if (i >= words) break;
    sum += (~old[i] & 0xffff) + (~old[i] >> 16);
    sum += (new[i] & 0xffff) + (new[i] >> 16);
  }
  *check = ~xo_csum_fold(sum);
}

/* Rewrite the source (is_src) or destination address in place. */
static __always_inline int xo_xdp_rewrite_addr(void *data, void *data_end, const struct xo_parsed *p,
                                               const __be32 *new_addr, int is_src) {
  /* The verifier needs packet offsets with known bounds: the IP header follows
   * Ethernet directly and the TCP header starts at most 60 bytes later. */
  __u32 l4_off = p->l4_off;
  if (l4_off > sizeof(struct ethhdr) + 60) return -1;
  struct tcphdr *tcp = data + l4_off;
  if ((void *)(tcp + 1) > data_end) return -1;
  if (p->key.family == AF_INET) {
    struct iphdr *ip = data + sizeof(struct ethhdr);
    if ((void *)(ip + 1) > data_end) return -1;
    __be32 *field = is_src ? &ip->saddr : &ip->daddr;
    __be32 old = *field;
    xo_csum_replace(&ip->check, &old, new_addr, 1);
    xo_csum_replace(&tcp->check, &old, new_addr, 1);
    *field = new_addr[0];
    return 0;
  }
  struct ipv6hdr *ip6 = data + sizeof(struct ethhdr);
  if ((void *)(ip6 + 1) > data_end) return -1;
  __be32 old6[4];
  void *field = is_src ? (void *)&ip6->saddr : (void *)&ip6->daddr;
  __builtin_memcpy(old6, field, 16);
  xo_csum_replace(&tcp->check, old6, new_addr, 4);
  __builtin_memcpy(field, new_addr, 16);
  return 0;
}
