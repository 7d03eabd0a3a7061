// Unit tests of the node's own pieces (no network): flow keys in NAT mode,
// v4-mapped endpoints, flow ids, and the snapshot size limit shared by
// common/tcp and the wire format.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include "common/handoff/node/flow_keys.h"
#include "common/handoff/wire/limits.h"
#include "common/handoff/wire/messages.h"
#include "common/tcp/snapshot.h"

namespace xo::handoff::node {
namespace {

steer::IpAddr ip(const char* text) { return steer::IpAddr::parse(text).value(); }

FlowInfo sample_flow() {
  FlowInfo f;
  f.flow_id = 7;
  f.client_ip = ip("198.18.0.2");
  f.client_port = 40000;
  f.service_ip = ip("198.18.0.100");
  f.service_port = 443;
  return f;
}

TEST(NodeFlowKeys, NatModeKeysAsEachHookSeesThem) {
  const FlowInfo f = sample_flow();
  const auto target = ip("198.18.0.20");
  EXPECT_EQ(frontend_ingress_key(f).to_string(), "198.18.0.2:40000 -> 198.18.0.100:443");
  EXPECT_EQ(frontend_egress_key(f).to_string(), "198.18.0.100:443 -> 198.18.0.2:40000");
  EXPECT_EQ(target_ingress_key(f, target).to_string(), "198.18.0.2:40000 -> 198.18.0.20:443");
  EXPECT_EQ(target_egress_key(f, target).to_string(), "198.18.0.20:443 -> 198.18.0.2:40000");
}

TEST(NodeFlowKeys, WireRoundTrip) {
  const FlowInfo f = sample_flow();
  auto wire = flow_to_wire(f);
  ASSERT_TRUE(wire.ok());
  EXPECT_TRUE(wire::validate(*wire, "flow").ok());
  auto back = flow_from_wire(*wire, 9);
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  EXPECT_EQ(back->flow_id, 9u);
  EXPECT_EQ(back->client_ip, f.client_ip);
  EXPECT_EQ(back->service_ip, f.service_ip);
  EXPECT_EQ(back->client_port, f.client_port);
  EXPECT_EQ(back->service_port, f.service_port);
}

TEST(NodeFlowKeys, Ipv4AddressForADualStackSocketIsMapped) {
  auto e = to_endpoint(ip("198.18.0.20"), 80, AF_INET6);
  ASSERT_EQ(e.family(), AF_INET6);
  EXPECT_EQ(e.to_string(), "[::ffff:198.18.0.20]:80");
  EXPECT_EQ(to_endpoint(ip("198.18.0.20"), 80, AF_INET).to_string(), "198.18.0.20:80");
  EXPECT_EQ(to_endpoint(ip("2001:2::20"), 80, AF_INET6).to_string(), "[2001:2::20]:80");
}

TEST(NodeFlowIds, TagIsStableNonZeroAndInTheHighBits) {
  EXPECT_EQ(tag_of_host("frontend"), tag_of_host("frontend"));
  EXPECT_NE(tag_of_host("frontend"), tag_of_host("backend0"));
  EXPECT_NE(tag_of_host(""), 0);
  const uint64_t id = (uint64_t{tag_of_host("rgw-1")} << 48) | 12345;
  EXPECT_EQ(tag_of_flow(id), tag_of_host("rgw-1"));
}

// The snapshot limit is one constant: the largest snapshot xo_tcp accepts
// encodes within the wire's field limit, and one byte more is refused by both.
TEST(NodeLimits, TcpSnapshotCapAgreesWithTheWireFormat) {
  static_assert(wire::kMaxTcpSnapshotBytes >= tcp::Snapshot::kMaxQueueBytes);
  tcp::Snapshot s;
  s.local = tcp::Endpoint::parse("2001:2::100", 443).value();
  s.remote = tcp::Endpoint::parse("2001:2::2", 40000).value();
  s.state = 1;  // TCP_ESTABLISHED
  s.options.congestion = "cubic";
  s.mss = 1448;
  s.send_queue.assign(tcp::Snapshot::kMaxQueueBytes / 2, 'x');
  s.recv_queue.assign(tcp::Snapshot::kMaxQueueBytes - s.send_queue.size(), 'y');
  auto valid = tcp::validate(s);
  ASSERT_TRUE(valid.ok()) << valid.error().to_string();
  const auto bytes = tcp::encode(s);
  EXPECT_LE(bytes.size(), wire::kMaxTcpSnapshotBytes);
  EXPECT_TRUE(tcp::decode(bytes).ok());
  s.recv_queue.push_back('z');
  EXPECT_FALSE(tcp::validate(s).ok());
}

}  // namespace
}  // namespace xo::handoff::node
