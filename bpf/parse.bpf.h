/* Packet parsing shared by the tc and XDP programs: Ethernet → IPv4/IPv6 → TCP
 * into a struct xo_flow_key plus the header offsets the rewrites need.
 * Works on [data, data_end) so both __sk_buff and xdp_md callers can use it. */
#pragma once

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "xo_steer.h"

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

struct xo_parsed {
  struct xo_flow_key key;
  __u32 l3_off; /* offset of the IP header */
  __u32 l4_off; /* offset of the TCP header */
};

/* 0 on an IPv4/IPv6 TCP packet whose headers are all in [data, data_end).
 * IPv4 fragments and IPv6 extension headers are not steered (never produced
 * by the flows we move, and following them is not worth the verifier cost). */
static __always_inline int xo_parse(void *data, void *data_end, struct xo_parsed *p) {
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > data_end) return -1;
  __builtin_memset(p, 0, sizeof(*p));
  p->l3_off = sizeof(*eth);

  if (eth->h_proto == bpf_htons(ETH_P_IP)) {
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > data_end) return -1;
    if (ip->ihl < 5 || ip->protocol != IPPROTO_TCP) return -1;
    if (ip->frag_off & bpf_htons(0x3fff)) return -1; /* MF or offset */
    p->l4_off = p->l3_off + ip->ihl * 4;
    p->key.family = AF_INET;
    p->key.src_addr[0] = ip->saddr;
    p->key.dst_addr[0] = ip->daddr;
  } else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
    struct ipv6hdr *ip6 = (void *)(eth + 1);
    if ((void *)(ip6 + 1) > data_end) return -1;
    if (ip6->nexthdr != IPPROTO_TCP) return -1;
    p->l4_off = p->l3_off + sizeof(*ip6);
    p->key.family = AF_INET6;
    __builtin_memcpy(p->key.src_addr, &ip6->saddr, 16);
    __builtin_memcpy(p->key.dst_addr, &ip6->daddr, 16);
  } else {
    return -1;
  }
  struct tcphdr *tcp = data + p->l4_off;
  if ((void *)(tcp + 1) > data_end) return -1;
  p->key.proto = IPPROTO_TCP;
  p->key.src_port = tcp->source;
  p->key.dst_port = tcp->dest;
  return 0;
}
