// Netlink encoding of the product's TC flower rules, built with libnl-3's core
// message API (nl_msg, nla_put, nests). libnl-route-3.7's flower object has
// no pedit, csum or port matches, so the attributes are built here directly,
// byte for byte as iproute2 builds them for the equivalent command:
//
//   REDIRECT (frontend ingress):
//     tc filter add dev DEV ingress protocol ip|ipv6 pref P handle H flower skip_sw
//        ip_proto tcp src_ip C dst_ip S src_port CP dst_port SP
//        action pedit ex munge eth dst set TMAC munge eth src set OMAC munge ip|ip6 dst set T pipe
//        action csum ip and tcp|tcp pipe  action mirred egress redirect dev OUT
//   SNAT (target egress):
//     tc filter add dev DEV egress protocol ip|ipv6 pref P handle H flower skip_sw
//        ip_proto tcp src_ip T dst_ip C src_port SP dst_port CP
//        action pedit ex munge ip|ip6 src set S pipe  action csum ip and tcp|tcp pass
//   delete: tc filter del dev DEV ingress|egress protocol ip|ipv6 pref P handle H flower
//
// (qa/system/steer/tc_flower_encoder_test.cc runs those commands under strace
// and compares.) BLOCK has no hardware form here: it is short-lived and stays
// in eBPF.
#pragma once

#include <netlink/msg.h>

#include <cstdint>
#include <memory>

#include "common/base/result.h"
#include "common/steer/flow.h"

namespace xo::steer {

struct NlMsgFree {
  void operator()(nl_msg* m) const { nlmsg_free(m); }
};
using NlMsgPtr = std::unique_ptr<nl_msg, NlMsgFree>;

struct TcFlowerRule {
  SteerEntry entry;      // kRedirect or kSnat
  int ifindex = 0;       // device the filter sits on (and, for REDIRECT without
                         // entry.ifindex, the device mirred sends out of)
  uint32_t handle = 0;   // unique per (device, direction, preference)
  bool skip_sw = true;   // the product's choice; false = skip_hw (software-only,
                         // for kernels without offload hardware, e.g. the VM test)
};

// Filter preference per family: IPv4 and IPv6 filters cannot share one
// (a tc filter chain's priority is bound to a single protocol).
uint32_t tc_flower_pref(int family);
bool tc_flower_ingress(const TcFlowerRule& rule);  // REDIRECT: ingress, SNAT: egress
// The filter handle of a flow's rule: a stable 31-bit hash of the flow, never 0
// (0 asks the kernel to pick one, which could not be deleted by flow later).
uint32_t tc_flower_handle(const FlowKey& flow);

Result<NlMsgPtr> encode_tc_flower_add(const TcFlowerRule& rule);
Result<NlMsgPtr> encode_tc_flower_del(const TcFlowerRule& rule);
// `tc qdisc add dev DEV clsact` (NLM_F_CREATE without EXCL: idempotent).
Result<NlMsgPtr> encode_clsact_add(int ifindex);

}  // namespace xo::steer
