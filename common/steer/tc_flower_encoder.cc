#include "common/steer/tc_flower_encoder.h"

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <linux/tc_act/tc_csum.h>
#include <linux/tc_act/tc_mirred.h>
#include <linux/tc_act/tc_pedit.h>
#include <netlink/attr.h>
#include <netinet/in.h>

#include <cstring>
#include <vector>

namespace xo::steer {
namespace {

// tc_pedit_sel ends in a flexible array of keys; iproute2 sends the selector
// and its keys as one TCA_PEDIT_PARMS_EX blob.
struct PeditKey {
  tc_pedit_key key;
  uint16_t htype;  // TCA_PEDIT_KEY_EX_HTYPE
};

// libnl's nla_nest_start always sets NLA_F_NESTED; iproute2 sets it on some
// nests (action options, pedit keys) and not on others (TCA_OPTIONS, the
// action list and its entries). The kernel accepts both; we match iproute2.
nlattr* nest_plain(nl_msg* msg, int type) {
  nlattr* start = static_cast<nlattr*>(nlmsg_tail(nlmsg_hdr(msg)));
  if (nla_put(msg, type, 0, nullptr) < 0) return nullptr;
  return start;
}

struct Builder {
  nl_msg* msg;
  bool ok = true;
  nlattr* nest(int type, bool flagged) {
    nlattr* a = flagged ? nla_nest_start(msg, type) : nest_plain(msg, type);
    ok = ok && a;
    return a;
  }
  void end(nlattr* a) {
    if (a) ok = ok && nla_nest_end(msg, a) == 0;
  }
  void put(int type, const void* data, size_t len) { ok = ok && nla_put(msg, type, static_cast<int>(len), data) == 0; }
  void u8(int type, uint8_t v) { put(type, &v, 1); }
  void u16(int type, uint16_t v) { put(type, &v, 2); }
  void u32(int type, uint32_t v) { put(type, &v, 4); }
  void str(int type, const char* s) { put(type, s, std::strlen(s) + 1); }
};

uint32_t word(const uint8_t* p) {
  uint32_t w;
  std::memcpy(&w, p, 4);
  return w;
}
uint32_t bytes4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  const uint8_t p[4] = {a, b, c, d};
  return word(p);
}

PeditKey pedit(uint16_t htype, uint32_t off, uint32_t mask, uint32_t val) {
  PeditKey k{};
  k.key.off = off;
  k.key.mask = mask;  // bits kept from the packet: (pkt & mask) ^ val
  k.key.val = val;
  k.htype = htype;
  return k;
}

// `munge eth dst set M` / `munge eth src set M`, split into 32-bit words at
// offsets 0, 4 and 8 exactly as iproute2's p_eth does.
void eth_keys(std::vector<PeditKey>& keys, const MacAddr& dst, const MacAddr& src) {
  const uint16_t eth = TCA_PEDIT_KEY_EX_HDR_TYPE_ETH;
  keys.push_back(pedit(eth, 0, 0, bytes4(dst[0], dst[1], dst[2], dst[3])));
  keys.push_back(pedit(eth, 4, bytes4(0, 0, 0xff, 0xff), bytes4(dst[4], dst[5], 0, 0)));
  keys.push_back(pedit(eth, 4, bytes4(0xff, 0xff, 0, 0), bytes4(0, 0, src[0], src[1])));
  keys.push_back(pedit(eth, 8, 0, bytes4(src[2], src[3], src[4], src[5])));
}

// `munge ip src|dst set A` / `munge ip6 src|dst set A`.
void ip_keys(std::vector<PeditKey>& keys, const IpAddr& a, bool src) {
  if (a.family == AF_INET) {
    keys.push_back(pedit(TCA_PEDIT_KEY_EX_HDR_TYPE_IP4, src ? 12 : 16, 0, word(a.bytes.data())));
    return;
  }
  for (uint32_t i = 0; i < 4; i++)
    keys.push_back(pedit(TCA_PEDIT_KEY_EX_HDR_TYPE_IP6, (src ? 8 : 24) + 4 * i, 0, word(a.bytes.data() + 4 * i)));
}


void put_pedit(Builder& b, const std::vector<PeditKey>& keys) {
  std::vector<uint8_t> sel(sizeof(tc_pedit_sel) + keys.size() * sizeof(tc_pedit_key), 0);
  auto* s = reinterpret_cast<tc_pedit_sel*>(sel.data());
  s->action = TC_ACT_PIPE;
  s->nkeys = static_cast<unsigned char>(keys.size());
  for (size_t i = 0; i < keys.size(); i++)
    std::memcpy(sel.data() + sizeof(tc_pedit_sel) + i * sizeof(tc_pedit_key), &keys[i].key, sizeof(tc_pedit_key));
  b.str(TCA_ACT_KIND, "pedit");
  nlattr* opts = b.nest(TCA_ACT_OPTIONS, true);
  b.put(TCA_PEDIT_PARMS_EX, sel.data(), sel.size());
  nlattr* keys_ex = b.nest(TCA_PEDIT_KEYS_EX, true);
  for (const PeditKey& k : keys) {
    nlattr* kx = b.nest(TCA_PEDIT_KEY_EX, true);
    b.u16(TCA_PEDIT_KEY_EX_HTYPE, k.htype);
    b.u16(TCA_PEDIT_KEY_EX_CMD, TCA_PEDIT_KEY_EX_CMD_SET);
    b.end(kx);
  }
  b.end(keys_ex);
  b.end(opts);
}

void put_csum(Builder& b, int family, int control) {
  tc_csum parms{};
  parms.action = control;
  // IPv6 has no header checksum: `csum tcp`; IPv4: `csum ip and tcp`.
  parms.update_flags = TCA_CSUM_UPDATE_FLAG_TCP | (family == AF_INET ? TCA_CSUM_UPDATE_FLAG_IPV4HDR : 0);
  b.str(TCA_ACT_KIND, "csum");
  nlattr* opts = b.nest(TCA_ACT_OPTIONS, true);
  b.put(TCA_CSUM_PARMS, &parms, sizeof(parms));
  b.end(opts);
}

void put_mirred_redirect(Builder& b, uint32_t out_ifindex) {
  tc_mirred parms{};
  parms.action = TC_ACT_STOLEN;
  parms.eaction = TCA_EGRESS_REDIR;
  parms.ifindex = out_ifindex;
  b.str(TCA_ACT_KIND, "mirred");
  nlattr* opts = b.nest(TCA_ACT_OPTIONS, true);
  b.put(TCA_MIRRED_PARMS, &parms, sizeof(parms));
  b.end(opts);
}

uint16_t eth_proto(int family) { return htons(family == AF_INET6 ? ETH_P_IPV6 : ETH_P_IP); }

Result<NlMsgPtr> start_filter(int type, int flags, const TcFlowerRule& rule) {
  NlMsgPtr msg(nlmsg_alloc_simple(type, flags));
  if (!msg) return error("nlmsg_alloc_simple", ENOMEM);
  tcmsg tcm{};
  tcm.tcm_family = AF_UNSPEC;
  tcm.tcm_ifindex = rule.ifindex;
  tcm.tcm_handle = rule.handle;
  tcm.tcm_parent = TC_H_MAKE(TC_H_CLSACT, tc_flower_ingress(rule) ? TC_H_MIN_INGRESS : TC_H_MIN_EGRESS);
  tcm.tcm_info = TC_H_MAKE(tc_flower_pref(rule.entry.flow.src.family) << 16, eth_proto(rule.entry.flow.src.family));
  if (nlmsg_append(msg.get(), &tcm, sizeof(tcm), NLMSG_ALIGNTO) < 0) return error("nlmsg_append(tcmsg)", ENOMEM);
  if (nla_put_string(msg.get(), TCA_KIND, "flower") < 0) return error("nla_put(TCA_KIND)", ENOMEM);
  return msg;
}

}  // namespace

uint32_t tc_flower_pref(int family) { return family == AF_INET6 ? 101 : 100; }

bool tc_flower_ingress(const TcFlowerRule& rule) { return rule.entry.action != Action::kSnat; }

uint32_t tc_flower_handle(const FlowKey& flow) {
  // FNV-1a over the wire form of the flow: stable across processes and builds
  // (std::hash is not).
  uint32_t h = 2166136261u;
  auto mix = [&h](const uint8_t* p, size_t n) {
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
  };
  const uint8_t fam = static_cast<uint8_t>(flow.src.family);
  const uint8_t ports[4] = {static_cast<uint8_t>(flow.src_port >> 8), static_cast<uint8_t>(flow.src_port),
                            static_cast<uint8_t>(flow.dst_port >> 8), static_cast<uint8_t>(flow.dst_port)};
  mix(&fam, 1);
  mix(flow.src.bytes.data(), flow.src.size());
  mix(flow.dst.bytes.data(), flow.dst.size());
  mix(ports, 4);
  h &= 0x7fffffffu;
  return h ? h : 1;
}

Result<NlMsgPtr> encode_tc_flower_add(const TcFlowerRule& rule) {
  const SteerEntry& e = rule.entry;
  XO_TRY(e.validate());
  if (e.action == Action::kBlock) return error("tc flower: BLOCK has no hardware rule (kept in eBPF)", EOPNOTSUPP);
  if (rule.ifindex <= 0) return error("tc flower: no device", EINVAL);
  const int family = e.flow.src.family;
  XO_ASSIGN_OR_RETURN(NlMsgPtr msg, start_filter(RTM_NEWTFILTER, NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE, rule));
  Builder b{msg.get()};

  nlattr* opts = b.nest(TCA_OPTIONS, false);
  b.u8(TCA_FLOWER_KEY_IP_PROTO, IPPROTO_TCP);
  const uint8_t ones[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  const size_t alen = e.flow.src.size();
  const bool v6 = family == AF_INET6;
  b.put(v6 ? TCA_FLOWER_KEY_IPV6_SRC : TCA_FLOWER_KEY_IPV4_SRC, e.flow.src.bytes.data(), alen);
  b.put(v6 ? TCA_FLOWER_KEY_IPV6_SRC_MASK : TCA_FLOWER_KEY_IPV4_SRC_MASK, ones, alen);
  b.put(v6 ? TCA_FLOWER_KEY_IPV6_DST : TCA_FLOWER_KEY_IPV4_DST, e.flow.dst.bytes.data(), alen);
  b.put(v6 ? TCA_FLOWER_KEY_IPV6_DST_MASK : TCA_FLOWER_KEY_IPV4_DST_MASK, ones, alen);
  b.u16(TCA_FLOWER_KEY_TCP_SRC, htons(e.flow.src_port));
  b.u16(TCA_FLOWER_KEY_TCP_DST, htons(e.flow.dst_port));

  nlattr* acts = b.nest(TCA_FLOWER_ACT, false);
  int prio = 1;  // action order within the filter
  std::vector<PeditKey> keys;
  if (e.action == Action::kRedirect) {
    eth_keys(keys, e.dst_mac, e.src_mac);
    ip_keys(keys, e.new_addr, false);
  } else {
    ip_keys(keys, e.new_addr, true);
  }
  nlattr* a = b.nest(prio++, false);
  put_pedit(b, keys);
  b.end(a);
  a = b.nest(prio++, false);
  // REDIRECT goes on to mirred; SNAT ends here and the packet continues (pass).
  put_csum(b, family, e.action == Action::kRedirect ? TC_ACT_PIPE : TC_ACT_OK);
  b.end(a);
  if (e.action == Action::kRedirect) {
    a = b.nest(prio++, false);
    put_mirred_redirect(b, e.ifindex ? e.ifindex : static_cast<uint32_t>(rule.ifindex));
    b.end(a);
  }
  b.end(acts);
  b.u32(TCA_FLOWER_FLAGS, rule.skip_sw ? TCA_CLS_FLAGS_SKIP_SW : TCA_CLS_FLAGS_SKIP_HW);
  b.u16(TCA_FLOWER_KEY_ETH_TYPE, eth_proto(family));
  b.end(opts);
  if (!b.ok) return error("tc flower: message too large", EMSGSIZE);
  return msg;
}

Result<NlMsgPtr> encode_tc_flower_del(const TcFlowerRule& rule) {
  if (rule.ifindex <= 0) return error("tc flower: no device", EINVAL);
  XO_ASSIGN_OR_RETURN(NlMsgPtr msg, start_filter(RTM_DELTFILTER, NLM_F_REQUEST | NLM_F_ACK, rule));
  Builder b{msg.get()};
  // iproute2 sends the (empty) flower options on delete too; the kernel
  // identifies the filter by parent, preference, protocol and handle.
  nlattr* opts = b.nest(TCA_OPTIONS, false);
  b.u32(TCA_FLOWER_FLAGS, 0);
  b.u16(TCA_FLOWER_KEY_ETH_TYPE, eth_proto(rule.entry.flow.src.family));
  b.end(opts);
  if (!b.ok) return error("tc flower: message too large", EMSGSIZE);
  return msg;
}

Result<NlMsgPtr> encode_clsact_add(int ifindex) {
  NlMsgPtr msg(nlmsg_alloc_simple(RTM_NEWQDISC, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE));
  if (!msg) return error("nlmsg_alloc_simple", ENOMEM);
  tcmsg tcm{};
  tcm.tcm_family = AF_UNSPEC;
  tcm.tcm_ifindex = ifindex;
  tcm.tcm_handle = TC_H_MAKE(TC_H_CLSACT, 0);
  tcm.tcm_parent = TC_H_CLSACT;
  if (nlmsg_append(msg.get(), &tcm, sizeof(tcm), NLMSG_ALIGNTO) < 0 ||
      nla_put_string(msg.get(), TCA_KIND, "clsact") < 0)
    return error("encode clsact qdisc", ENOMEM);
  return msg;
}

}  // namespace xo::steer
