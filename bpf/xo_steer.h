/* Structs shared between the steering eBPF programs (steer.bpf.c, fault.bpf.c) and the
 * user-space control plane (common/steer). Plain C, fixed-size, no pointers:
 * both sides compile this header, so its layout is the map ABI. Bump
 * XO_STEER_ABI when a layout changes; a daemon refuses to adopt pinned maps
 * whose value size differs. */
#ifndef XO_BPF_XO_STEER_H
#define XO_BPF_XO_STEER_H

#include <linux/types.h>

#define XO_STEER_ABI 1
#define XO_STEER_MAX_FLOWS 65536

/* One direction of one TCP flow exactly as the hook sees it on the wire.
 * IPv4 addresses live in addr[0], the other words are zero. */
struct xo_flow_key {
  __u8 family;   /* AF_INET (2) or AF_INET6 (10) */
  __u8 proto;    /* IPPROTO_TCP */
  __u16 pad;     /* always zero: the key is hashed as raw bytes */
  __be16 src_port;
  __be16 dst_port;
  __be32 src_addr[4];
  __be32 dst_addr[4];
};

enum xo_action {
  XO_ACTION_BLOCK = 1,    /* drop (ingress) */
  XO_ACTION_REDIRECT = 2, /* rewrite dst IP + MACs, send out of ifindex (ingress) */
  XO_ACTION_SNAT = 3,     /* rewrite src IP back to the service address (egress) */
};

struct xo_flow_value {
  __u32 action;         /* enum xo_action */
  __u32 ifindex;        /* REDIRECT: egress interface; 0 = the one it arrived on */
  __be32 addr[4];       /* REDIRECT: new destination; SNAT: new source */
  __u8 dst_mac[6];      /* REDIRECT: next hop (the target's NIC) */
  __u8 src_mac[6];      /* REDIRECT: our NIC's address */
  __u64 owner;          /* opaque tag of whoever inserted it (handoff layer) */
  __u64 insert_time_ns; /* filled by the caller, CLOCK_REALTIME */
  __u64 packets;        /* updated by the programs (atomic adds) */
  __u64 bytes;
};

/* What the ingress program reports for each data segment (payload or FIN)
 * it drops because of a BLOCK entry, ahead of the packet from its IP header
 * on (perf event output, map xo_held): the control plane replays it into the
 * socket once the flow is live again, so the client need not retransmit. */
struct xo_held_meta {
  __u64 owner;   /* the BLOCK entry's owner tag (the flow id) */
  __u32 l3_off;  /* offset of the IP header in the sample's packet bytes */
  __u32 len;     /* packet bytes that follow (L2 header included) */
};

/* Per-CPU counters, one array slot each. */
enum xo_counter {
  XO_CNT_MISS = 0,     /* parsed TCP packet without an entry: passed on */
  XO_CNT_BLOCK,        /* dropped by BLOCK */
  XO_CNT_REDIRECT,     /* rewritten and redirected */
  XO_CNT_SNAT,         /* source rewritten */
  XO_CNT_ERROR,        /* a rewrite/redirect helper failed: packet dropped */
  XO_CNT_NOT_TCP,      /* not IPv4/IPv6 TCP (or fragment, IPv6 ext header): passed */
  XO_CNT_HELD,         /* a BLOCK-dropped data segment reported for replay */
  XO_CNT_MAX,
};

/* Fault injection (bpf/fault.bpf.c): drop part of one flow, for tests. */
enum xo_fault_mode {
  XO_FAULT_OFF = 0,
  XO_FAULT_FRACTION = 1, /* drop when prandom < threshold (of 2^32) */
  XO_FAULT_NTH = 2,      /* drop exactly the nth matching packet (1-based) */
};

struct xo_fault_config {
  struct xo_flow_key key; /* family 0 = every TCP packet */
  __u32 mode;             /* enum xo_fault_mode */
  __u32 threshold;        /* XO_FAULT_FRACTION */
  __u64 nth;              /* XO_FAULT_NTH */
};

struct xo_fault_stats {
  __u64 matched;
  __u64 dropped;
};

#endif
