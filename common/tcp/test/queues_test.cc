// Data in flight: the receive queue, unsent (corked) and unacknowledged bytes.
#include <linux/sockios.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>

#include "common/tcp/test/fixture.h"

namespace xo::tcp::testing {
namespace {

class TcpQueuesTest : public TcpRepairTest, public ::testing::WithParamInterface<int> {};

TEST_P(TcpQueuesTest, ReceiveQueueTravels) {
  auto p = loopback_pair(GetParam());
  ASSERT_TRUE(p.ok()) << p.error().to_string();
  auto data = pattern(1000, 42);
  ASSERT_TRUE(write_all(p->client.get(), data).ok());
  ASSERT_EQ(await_ioctl(p->server.get(), SIOCINQ, 1000), 1000);
  Snapshot snap;
  UniqueFd moved = move(p->server, {}, &snap);
  ASSERT_TRUE(moved);
  EXPECT_EQ(snap.recv_queue, data);
  auto got = read_exactly(moved.get(), 1000);
  ASSERT_TRUE(got.ok()) << got.error().to_string();
  EXPECT_EQ(*got, data);
  exchange(p->client.get(), moved.get(), 20000, 43);
}

TEST_P(TcpQueuesTest, LargeReceiveQueueTravels) {
  auto p = loopback_pair(GetParam());
  ASSERT_TRUE(p.ok()) << p.error().to_string();
  // More than fits a fresh socket's receive buffer: restore must make room.
  const size_t n = 400 << 10;
  auto data = pattern(n, 44);
  int big = 4 << 20;
  ASSERT_EQ(::setsockopt(p->server.get(), SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)), 0);
  ASSERT_TRUE(write_all(p->client.get(), data).ok());
  ASSERT_EQ(await_ioctl(p->server.get(), SIOCINQ, static_cast<int>(n)), static_cast<int>(n));
  Snapshot snap;
  UniqueFd moved = move(p->server, {}, &snap);
  ASSERT_TRUE(moved);
  EXPECT_EQ(snap.recv_queue.size(), n);
  auto got = read_exactly(moved.get(), n);
  ASSERT_TRUE(got.ok()) << got.error().to_string();
  EXPECT_EQ(*got, data);
  exchange(p->client.get(), moved.get(), 1000, 45);
}

TEST_P(TcpQueuesTest, UnsentDataTravels) {
  auto p = loopback_pair(GetParam());
  ASSERT_TRUE(p.ok()) << p.error().to_string();
  int one = 1;
  ASSERT_EQ(::setsockopt(p->server.get(), IPPROTO_TCP, TCP_CORK, &one, sizeof(one)), 0);
  auto data = pattern(100, 46);
  ASSERT_TRUE(write_all(p->server.get(), data).ok());
  int unsent = -1;
  ASSERT_EQ(::ioctl(p->server.get(), SIOCOUTQNSD, &unsent), 0);
  ASSERT_EQ(unsent, 100) << "TCP_CORK should have held the bytes back";
  Snapshot snap;
  UniqueFd moved = move(p->server, {}, &snap);
  ASSERT_TRUE(moved);
  EXPECT_EQ(snap.unsent, 100u);
  EXPECT_EQ(snap.send_queue, data);
  auto got = read_exactly(p->client.get(), 100);
  ASSERT_TRUE(got.ok()) << got.error().to_string();
  EXPECT_EQ(*got, data);
  exchange(p->client.get(), moved.get(), 5000, 47);
}

// Sent but never acknowledged: the client's ACKs are dropped, so the bytes
// reached the client and still sit in the server's retransmit queue.
TEST_P(TcpQueuesTest, UnacknowledgedDataTravels) {
  auto p = loopback_pair(GetParam());
  ASSERT_TRUE(p.ok()) << p.error().to_string();
  auto inbound = pattern(1024, 48);
  ASSERT_TRUE(write_all(p->client.get(), inbound).ok());
  ASSERT_EQ(await_ioctl(p->server.get(), SIOCINQ, 1024), 1024);
  ASSERT_TRUE(drop_flow("xo_hold", p->client_port, p->server_port).ok());
  auto outbound = pattern(64 << 10, 49);
  ASSERT_TRUE(write_all(p->server.get(), outbound).ok());
  auto got = read_exactly(p->client.get(), outbound.size());
  ASSERT_TRUE(got.ok()) << got.error().to_string();
  ASSERT_EQ(*got, outbound);
  ASSERT_EQ(await_ioctl(p->server.get(), SIOCOUTQNSD, 0), 0);

  Snapshot snap;
  UniqueFd moved = move(p->server, {}, &snap);
  ASSERT_TRUE(moved);
  EXPECT_EQ(snap.send_queue, outbound);
  EXPECT_EQ(snap.unsent, 0u);
  EXPECT_EQ(snap.recv_queue, inbound);
  ASSERT_TRUE(delete_table("xo_hold").ok());
  // The client's next ACK (to the window probe or a retransmission) empties
  // the restored send queue; the stream goes on without a duplicate byte.
  EXPECT_EQ(await_ioctl(moved.get(), SIOCOUTQ, 0, 5000), 0);
  auto in = read_exactly(moved.get(), 1024);
  ASSERT_TRUE(in.ok()) << in.error().to_string();
  EXPECT_EQ(*in, inbound);
  exchange(p->client.get(), moved.get(), 30000, 50);
}

INSTANTIATE_TEST_SUITE_P(Families, TcpQueuesTest, ::testing::Values(AF_INET, AF_INET6),
                         [](const auto& info) { return info.param == AF_INET ? "IPv4" : "IPv6"; });

}  // namespace
}  // namespace xo::tcp::testing
