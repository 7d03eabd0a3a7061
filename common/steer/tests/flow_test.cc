// Domain types and their translation to the map ABI shared with the programs.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <cstring>

#include "common/steer/bpf_codec.h"

namespace xo::steer {
namespace {

FlowKey flow(const char* s, uint16_t sp, const char* d, uint16_t dp) {
  return FlowKey{*IpAddr::parse(s), sp, *IpAddr::parse(d), dp};
}

TEST(SteerFlow, ParsesAndPrintsAddresses) {
  EXPECT_EQ(IpAddr::parse("198.18.0.2")->to_string(), "198.18.0.2");
  EXPECT_EQ(IpAddr::parse("2001:2::100")->to_string(), "2001:2::100");
  EXPECT_FALSE(IpAddr::parse("198.18.0.256").ok());
  EXPECT_EQ(mac_to_string(*parse_mac("02:00:c6:12:00:0A")), "02:00:c6:12:00:0a");
  EXPECT_FALSE(parse_mac("02:00:c6:12:00").ok());
  EXPECT_EQ(flow("2001:2::2", 4000, "2001:2::100", 80).to_string(), "[2001:2::2]:4000 -> [2001:2::100]:80");
}

TEST(SteerFlow, KeyIsNetworkOrderAndZeroPadded) {
  xo_flow_key k = to_bpf_key(flow("198.18.0.2", 40000, "198.18.0.100", 80));
  EXPECT_EQ(k.family, AF_INET);
  EXPECT_EQ(k.proto, 6);
  EXPECT_EQ(k.pad, 0);
  EXPECT_EQ(k.src_port, htons(40000));
  EXPECT_EQ(k.dst_port, htons(80));
  uint8_t want_src[16] = {198, 18, 0, 2};
  EXPECT_EQ(std::memcmp(k.src_addr, want_src, 16), 0);  // words 1..3 zero: hashed as bytes
}

TEST(SteerFlow, EntryRoundTripsThroughTheMapAbi) {
  SteerEntry e = SteerEntry::redirect(flow("2001:2::2", 1, "2001:2::100", 443), *IpAddr::parse("2001:2::20"),
                                      *parse_mac("02:00:c6:12:00:14"), *parse_mac("02:00:c6:12:00:0a"), 77, 123, 5);
  ASSERT_TRUE(e.validate().ok());
  xo_flow_value v = to_bpf_value(e);
  v.packets = 3;
  v.bytes = 300;
  ListedEntry l = from_bpf(to_bpf_key(e.flow), v);
  EXPECT_EQ(l.entry.flow, e.flow);
  EXPECT_EQ(l.entry.action, Action::kRedirect);
  EXPECT_EQ(l.entry.new_addr, e.new_addr);
  EXPECT_EQ(l.entry.dst_mac, e.dst_mac);
  EXPECT_EQ(l.entry.src_mac, e.src_mac);
  EXPECT_EQ(l.entry.ifindex, 5u);
  EXPECT_EQ(l.entry.owner, 77u);
  EXPECT_EQ(l.entry.insert_time_ns, 123u);
  EXPECT_EQ(l.stats.packets, 3u);
  EXPECT_EQ(l.stats.bytes, 300u);
}

TEST(SteerFlow, ValidateRejectsMixedFamilies) {
  SteerEntry e = SteerEntry::snat(flow("198.18.0.20", 80, "198.18.0.2", 4000), *IpAddr::parse("2001:2::100"), 1, 1);
  EXPECT_FALSE(e.validate().ok());
  FlowKey mixed = flow("198.18.0.2", 1, "2001:2::1", 2);
  EXPECT_FALSE(SteerEntry::block(mixed, 1, 1).validate().ok());
  EXPECT_TRUE(SteerEntry::block(flow("198.18.0.2", 1, "198.18.0.1", 2), 1, 1).validate().ok());
}

}  // namespace
}  // namespace xo::steer

#include "common/steer/tc_flower_encoder.h"

namespace xo::steer {
namespace {

// A restarted process deletes its predecessor's TC rules by recomputing their
// handles: the value must not depend on the process or the build.
TEST(SteerFlow, TcHandleIsStableNonZeroAndPerFlow) {
  FlowKey a{*IpAddr::parse("198.18.0.2"), 40000, *IpAddr::parse("198.18.0.100"), 8080};
  FlowKey b = a;
  b.src_port = 40001;
  EXPECT_EQ(tc_flower_handle(a), tc_flower_handle(a));
  EXPECT_NE(tc_flower_handle(a), tc_flower_handle(b));
  EXPECT_NE(tc_flower_handle(a), 0u);
  EXPECT_LT(tc_flower_handle(a), 0x80000000u);
  EXPECT_EQ(tc_flower_handle(a), 0x4982f748u) << "handle function changed: old rules could no longer be deleted";
}

}  // namespace
}  // namespace xo::steer
