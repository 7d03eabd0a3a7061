// replay_packet's refusals (checked before anything is sent): only a whole
// TCP segment from the given peer to the given local port is replayed.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>

#include <cstring>
#include <string>

#include "common/tcp/inject.h"

namespace xo::tcp {
namespace {

Endpoint ep(const char* host, uint16_t port) { return Endpoint::parse(host, port).value(); }

// An IPv4 TCP segment src:sport -> dst:dport with `payload` bytes.
std::string segment(const char* src, uint16_t sport, const char* dst, uint16_t dport, size_t payload) {
  std::string pkt(sizeof(iphdr) + sizeof(tcphdr) + payload, 'x');
  auto* ip = reinterpret_cast<iphdr*>(pkt.data());
  std::memset(ip, 0, sizeof(iphdr));
  ip->version = 4;
  ip->ihl = 5;
  ip->tot_len = htons(static_cast<uint16_t>(pkt.size()));
  ip->protocol = IPPROTO_TCP;
  inet_pton(AF_INET, src, &ip->saddr);
  inet_pton(AF_INET, dst, &ip->daddr);
  auto* th = reinterpret_cast<tcphdr*>(pkt.data() + sizeof(iphdr));
  std::memset(th, 0, sizeof(tcphdr));
  th->source = htons(sport);
  th->dest = htons(dport);
  th->doff = 5;
  th->ack = 1;
  return pkt;
}

TEST(TcpReplay, RefusesSegmentsOfOtherConnections) {
  const Endpoint client = ep("198.18.0.2", 40000), local = ep("198.18.0.20", 80);
  auto other_host = replay_packet(segment("198.18.0.3", 40000, "198.18.0.100", 80, 10), client, local);
  ASSERT_FALSE(other_host.ok());
  EXPECT_EQ(other_host.error().code, EPERM);
  auto other_port = replay_packet(segment("198.18.0.2", 40001, "198.18.0.100", 80, 10), client, local);
  ASSERT_FALSE(other_port.ok());
  EXPECT_EQ(other_port.error().code, EPERM);
  auto other_service = replay_packet(segment("198.18.0.2", 40000, "198.18.0.100", 443, 10), client, local);
  ASSERT_FALSE(other_service.ok());
  EXPECT_EQ(other_service.error().code, EPERM);
}

TEST(TcpReplay, RefusesMalformedPackets) {
  const Endpoint client = ep("198.18.0.2", 40000), local = ep("198.18.0.20", 80);
  std::string truncated = segment("198.18.0.2", 40000, "198.18.0.100", 80, 10);
  truncated.resize(truncated.size() - 3);  // tot_len no longer matches
  EXPECT_EQ(replay_packet(truncated, client, local).error().code, EINVAL);
  EXPECT_EQ(replay_packet("", client, local).error().code, EINVAL);
  // An IPv4 packet for an IPv6 socket.
  EXPECT_EQ(replay_packet(segment("198.18.0.2", 40000, "198.18.0.100", 80, 10), ep("2001:2::2", 40000),
                          ep("2001:2::20", 80))
                .error()
                .code,
            EINVAL);
}

}  // namespace
}  // namespace xo::tcp
