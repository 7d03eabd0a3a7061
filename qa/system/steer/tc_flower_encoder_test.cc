// The TC flower encoder builds exactly the netlink request iproute2 builds for
// the product's rules. Each case runs the equivalent `tc filter add/del`
// under strace inside a lab host (this kernel has no cls_flower, so tc fails
// with ENOENT, but its request is on the wire and in strace's dump), parses
// the captured bytes and compares them attribute by attribute with the
// encoder's message; sequence number and port id aside.
// The same request sent by TcHwSteer must come back as "unsupported".
#include <gtest/gtest.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <cstdio>
#include <sstream>
#include <stdexcept>

#include "common/steer/tc_flower_encoder.h"
#include "common/steer/tc_hw_backend.h"
#include "qa/lab/lab.h"
#include "qa/lab/netns.h"
#include "qa/lab/run.h"
#include "qa/system/steer/steer_lab.h"

namespace xo::steer::test {
namespace {

template <class T>
T take(Result<T> r) {
  if (!r.ok()) throw std::runtime_error(r.error().to_string());
  return std::move(r).value();
}

using Bytes = std::vector<uint8_t>;

// Request buffers from `strace -e write=all -xx` output:
//  * 500 bytes in buffer 0
//  | 00000  f4 01 00 00 2c 00 05 06  10 63 08 6b 00 00 00 00  ....,....c.k.... |
std::vector<Bytes> parse_strace_dumps(const std::string& text) {
  std::vector<Bytes> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(" * ", 0) == 0 && line.find("bytes in buffer") != std::string::npos) {
      out.emplace_back();
      continue;
    }
    if (line.rfind(" | ", 0) != 0 || out.empty() || line.size() < 12) continue;
    // Fixed columns: the hex part is [10, 58); the ASCII column may contain
    // anything, so never tokenize the whole line.
    std::string hex = line.substr(10, std::min<size_t>(48, line.size() - 10));
    std::istringstream hs(hex);
    std::string byte;
    while (hs >> byte) out.back().push_back(static_cast<uint8_t>(std::stoul(byte, nullptr, 16)));
  }
  return out;
}

// One attribute per line: path/type(with flags)=payload hex. Nesting follows
// the schema of a flower filter request.
enum class Level { kTop, kFlower, kActs, kAction, kActOpts, kKeysEx, kKeyEx, kLeaf };

Level child_level(Level parent, uint16_t type) {
  switch (parent) {
    case Level::kTop: return type == TCA_OPTIONS ? Level::kFlower : Level::kLeaf;
    case Level::kFlower: return type == 3 /* TCA_FLOWER_ACT */ ? Level::kActs : Level::kLeaf;
    case Level::kActs: return Level::kAction;
    case Level::kAction: return type == 2 /* TCA_ACT_OPTIONS */ ? Level::kActOpts : Level::kLeaf;
    case Level::kActOpts: return type == 5 /* TCA_PEDIT_KEYS_EX */ ? Level::kKeysEx : Level::kLeaf;
    case Level::kKeysEx: return type == 6 /* TCA_PEDIT_KEY_EX */ ? Level::kKeyEx : Level::kLeaf;
    default: return Level::kLeaf;
  }
}

void flatten(const uint8_t* p, size_t len, Level level, const std::string& path, std::vector<std::string>& out) {
  size_t off = 0;
  while (off + 4 <= len) {
    uint16_t alen, type;
    std::memcpy(&alen, p + off, 2);
    std::memcpy(&type, p + off + 2, 2);
    if (alen < 4 || off + alen > len) {
      out.push_back(path + "/MALFORMED");
      return;
    }
    uint16_t bare = type & NLA_TYPE_MASK;
    char name[32];
    std::snprintf(name, sizeof(name), "/%u%s", bare, (type & NLA_F_NESTED) ? "(N)" : "");
    Level child = child_level(level, bare);
    if (child != Level::kLeaf) {
      out.push_back(path + name + " nest len " + std::to_string(alen));
      flatten(p + off + 4, alen - 4u, child, path + name, out);
    } else {
      std::string hex;
      for (size_t i = 4; i < alen; i++) {
        char h[4];
        std::snprintf(h, sizeof(h), "%02x", p[off + i]);
        hex += h;
      }
      out.push_back(path + name + "=" + hex);
    }
    off += NLMSG_ALIGN(alen);
  }
  if (off != len) out.push_back(path + "/TRAILING " + std::to_string(len - off));
}

struct Parsed {
  uint16_t type = 0, flags = 0;
  Bytes tcm;                    // struct tcmsg
  std::vector<std::string> attrs;
  Bytes body;                   // everything after the nlmsghdr
};

Parsed parse_request(const uint8_t* p, size_t len) {
  Parsed r;
  nlmsghdr h;
  if (len < sizeof(h) + sizeof(tcmsg)) throw std::runtime_error("short netlink request");
  std::memcpy(&h, p, sizeof(h));
  if (h.nlmsg_len != len) throw std::runtime_error("nlmsg_len " + std::to_string(h.nlmsg_len) + " != " + std::to_string(len));
  r.type = h.nlmsg_type;
  r.flags = h.nlmsg_flags;
  r.body.assign(p + sizeof(h), p + len);
  r.tcm.assign(p + sizeof(h), p + sizeof(h) + sizeof(tcmsg));
  size_t attrs = sizeof(h) + NLMSG_ALIGN(sizeof(tcmsg));
  flatten(p + attrs, len - attrs, Level::kTop, "", r.attrs);
  return r;
}

struct Case {
  const char* name;
  bool v6, snat, del;
};

class TcFlowerEncoderTest : public ::testing::TestWithParam<Case> {
 protected:
  static void SetUpTestSuite() { lab_ = new lab::Lab(take(lab::Lab::up({.backends = 0}))); }
  static void TearDownTestSuite() {
    delete lab_;
    lab_ = nullptr;
  }
  static lab::Lab* lab_;
};
lab::Lab* TcFlowerEncoderTest::lab_ = nullptr;

// The product's rules with fixed lab-like addresses (only the bytes matter).
TcFlowerRule product_rule(const Case& c, int ifindex) {
  const char* client = c.v6 ? "2001:2::2" : "198.18.0.2";
  const char* service = c.v6 ? "2001:2::100" : "198.18.0.100";
  const char* target = c.v6 ? "2001:2::20" : "198.18.0.20";
  SteerEntry e;
  if (c.snat) {
    e = SteerEntry::snat({*IpAddr::parse(target), 8080, *IpAddr::parse(client), 40000}, *IpAddr::parse(service), 1, 1);
  } else {
    e = SteerEntry::redirect({*IpAddr::parse(client), 40000, *IpAddr::parse(service), 8080}, *IpAddr::parse(target),
                             *parse_mac("02:00:c6:12:00:14"), *parse_mac("02:00:c6:12:00:0a"), 1, 1);
  }
  return TcFlowerRule{e, ifindex, c.v6 ? 6u : 5u, /*skip_sw=*/true};
}

std::vector<std::string> tc_argv(const Case& c) {
  std::vector<std::string> a = {"tc", "filter", c.del ? "del" : "add", "dev", "eth0", c.snat ? "egress" : "ingress",
                                "protocol", c.v6 ? "ipv6" : "ip", "pref", c.v6 ? "101" : "100",
                                "handle", c.v6 ? "0x6" : "0x5", "flower"};
  if (c.del) return a;
  const std::string ip = c.v6 ? "ip6" : "ip";
  const char* client = c.v6 ? "2001:2::2" : "198.18.0.2";
  const char* service = c.v6 ? "2001:2::100" : "198.18.0.100";
  const char* target = c.v6 ? "2001:2::20" : "198.18.0.20";
  std::vector<std::string> csum = c.v6 ? std::vector<std::string>{"csum", "tcp"}
                                       : std::vector<std::string>{"csum", "ip", "and", "tcp"};
  if (c.snat) {
    a.insert(a.end(), {"skip_sw", "ip_proto", "tcp", "src_ip", target, "dst_ip", client, "src_port", "8080",
                       "dst_port", "40000", "action", "pedit", "ex", "munge", ip, "src", "set", service, "pipe",
                       "action"});
    a.insert(a.end(), csum.begin(), csum.end());
    a.push_back("pass");
  } else {
    a.insert(a.end(), {"skip_sw", "ip_proto", "tcp", "src_ip", client, "dst_ip", service, "src_port", "40000",
                       "dst_port", "8080", "action", "pedit", "ex", "munge", "eth", "dst", "set",
                       "02:00:c6:12:00:14", "munge", "eth", "src", "set", "02:00:c6:12:00:0a", "munge", ip, "dst",
                       "set", target, "pipe", "action"});
    a.insert(a.end(), csum.begin(), csum.end());
    a.insert(a.end(), {"pipe", "action", "mirred", "egress", "redirect", "dev", "eth0"});
  }
  return a;
}

TEST_P(TcFlowerEncoderTest, MatchesIproute2Bytes) {
  const Case c = GetParam();
  const std::string ns = lab_->frontend().ns;
  std::vector<std::string> argv = {"strace", "-f", "-e", "trace=sendmsg", "-e", "write=all", "-xx", "-s", "65535"};
  auto tc = tc_argv(c);
  argv.insert(argv.end(), tc.begin(), tc.end());
  lab::RunResult run = take(lab::run_in(ns, argv, std::chrono::seconds(30)));
  // tc fails here (no cls_flower: "classifier not found" / no clsact qdisc);
  // what matters is the request it sent.
  std::vector<Bytes> dumps = parse_strace_dumps(run.err);
  const Bytes* captured = nullptr;
  const uint16_t want_type = c.del ? RTM_DELTFILTER : RTM_NEWTFILTER;
  for (const Bytes& d : dumps) {
    uint16_t type = d.size() >= 6 ? static_cast<uint16_t>(d[4] | d[5] << 8) : 0;
    if (type == want_type) captured = &d;
  }
  ASSERT_NE(captured, nullptr) << "no tc filter request in strace output:\n" << run.err;
  Parsed theirs = parse_request(captured->data(), captured->size());

  TcFlowerRule rule = product_rule(c, ifindex_in(ns, "eth0"));
  ASSERT_GT(rule.ifindex, 0);
  NlMsgPtr msg = take(c.del ? encode_tc_flower_del(rule) : encode_tc_flower_add(rule));
  nlmsghdr* h = nlmsg_hdr(msg.get());
  Parsed ours = parse_request(reinterpret_cast<const uint8_t*>(h), h->nlmsg_len);

  EXPECT_EQ(ours.type, theirs.type);
  EXPECT_EQ(ours.flags, theirs.flags);
  EXPECT_EQ(ours.tcm, theirs.tcm) << "struct tcmsg (ifindex, handle, parent, pref/protocol) differs";
  EXPECT_EQ(ours.attrs, theirs.attrs);
  EXPECT_EQ(ours.body, theirs.body) << "byte-level difference after the netlink header";
  EXPECT_GT(ours.attrs.size(), c.del ? 2u : 20u);  // the comparison covered a real rule
}

const Case kCases[] = {
    {"RedirectIpv4Add", false, false, false}, {"RedirectIpv6Add", true, false, false},
    {"SnatIpv4Add", false, true, false},      {"SnatIpv6Add", true, true, false},
    {"RedirectIpv4Del", false, false, true},  {"RedirectIpv6Del", true, false, true},
    {"SnatIpv4Del", false, true, true},
};
INSTANTIATE_TEST_SUITE_P(ProductRules, TcFlowerEncoderTest, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<Case>& i) { return std::string(i.param.name); });

// This kernel has no cls_flower: the backend reports "unsupported" and does
// not crash; the hybrid over it would stay eBPF-only.
TEST_F(TcFlowerEncoderTest, KernelWithoutFlowerIsUnsupported) {
  auto scope = take(lab::NetnsScope::enter(lab_->frontend().ns));
  auto hw = TcHwSteer::open("eth0", true);
  ASSERT_TRUE(hw.ok()) << hw.error().to_string();
  TcFlowerRule rule = product_rule({"", false, false, false}, 0);
  Status st = (*hw)->add(rule.entry);
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(is_unsupported(st.error())) << st.error().to_string();
  EXPECT_NE(st.error().message.find("unsupported"), std::string::npos) << st.error().to_string();
}

}  // namespace
}  // namespace xo::steer::test
