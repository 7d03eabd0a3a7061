// Half-closed connections: the FIN accounting of libsoccr, state by state.
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>

#include "common/tcp/test/fixture.h"

namespace xo::tcp::testing {
namespace {

class TcpHalfCloseTest : public TcpRepairTest, public ::testing::WithParamInterface<int> {};

// The client shut its write side: the server is in CLOSE_WAIT with data
// still unread in front of the FIN.
TEST_P(TcpHalfCloseTest, CloseWait) {
  auto p = loopback_pair(GetParam());
  ASSERT_TRUE(p.ok()) << p.error().to_string();
  auto request = pattern(500, 60);
  ASSERT_TRUE(write_all(p->client.get(), request).ok());
  ASSERT_EQ(::shutdown(p->client.get(), SHUT_WR), 0);
  ASSERT_EQ(await_state(p->server.get(), TCP_CLOSE_WAIT), TCP_CLOSE_WAIT);
  Snapshot snap;
  UniqueFd moved = move(p->server, {}, &snap);
  ASSERT_TRUE(moved);
  EXPECT_EQ(snap.state, TCP_CLOSE_WAIT);
  EXPECT_EQ(tcp_state(moved.get()), TCP_CLOSE_WAIT);
  auto got = read_exactly(moved.get(), 500);
  ASSERT_TRUE(got.ok()) << got.error().to_string();
  EXPECT_EQ(*got, request);
  char c;
  EXPECT_EQ(::recv(moved.get(), &c, 1, MSG_DONTWAIT), 0) << "the client's FIN must read as EOF";
  // The response still flows to the half-closed client.
  auto response = pattern(100000, 61);
  ASSERT_TRUE(write_all(moved.get(), response).ok());
  got = read_exactly(p->client.get(), response.size());
  ASSERT_TRUE(got.ok()) << got.error().to_string();
  EXPECT_EQ(*got, response);
  moved.reset();  // FIN -> LAST_ACK -> CLOSED
  EXPECT_EQ(::recv(p->client.get(), &c, 1, 0), 0);
}

// CLOSE_WAIT after the application already read the EOF, then moved twice.
TEST_P(TcpHalfCloseTest, CloseWaitAfterEofRead) {
  auto p = loopback_pair(GetParam());
  ASSERT_TRUE(p.ok()) << p.error().to_string();
  ASSERT_EQ(::shutdown(p->client.get(), SHUT_WR), 0);
  char c;
  ASSERT_EQ(::recv(p->server.get(), &c, 1, 0), 0);
  UniqueFd moved = move(p->server);
  ASSERT_TRUE(moved);
  UniqueFd again = move(moved);
  ASSERT_TRUE(again);
  EXPECT_EQ(tcp_state(again.get()), TCP_CLOSE_WAIT);
  EXPECT_EQ(::recv(again.get(), &c, 1, MSG_DONTWAIT), 0);
  auto response = pattern(3000, 62);
  ASSERT_TRUE(write_all(again.get(), response).ok());
  auto got = read_exactly(p->client.get(), response.size());
  ASSERT_TRUE(got.ok()) << got.error().to_string();
  EXPECT_EQ(*got, response);
}

// The server shut its write side and the client acknowledged: FIN_WAIT2.
TEST_P(TcpHalfCloseTest, FinWait2) {
  auto p = loopback_pair(GetParam());
  ASSERT_TRUE(p.ok()) << p.error().to_string();
  ASSERT_EQ(::shutdown(p->server.get(), SHUT_WR), 0);
  ASSERT_EQ(await_state(p->server.get(), TCP_FIN_WAIT2), TCP_FIN_WAIT2);
  Snapshot snap;
  UniqueFd moved = move(p->server, {}, &snap);
  ASSERT_TRUE(moved);
  EXPECT_EQ(snap.state, TCP_FIN_WAIT2);
  EXPECT_TRUE(snap.send_queue.empty());
  EXPECT_EQ(tcp_state(moved.get()), TCP_FIN_WAIT2);
  char c;
  EXPECT_EQ(::recv(p->client.get(), &c, 1, MSG_DONTWAIT), 0);
  auto upload = pattern(70000, 63);
  ASSERT_TRUE(write_all(p->client.get(), upload).ok());
  auto got = read_exactly(moved.get(), upload.size());
  ASSERT_TRUE(got.ok()) << got.error().to_string();
  EXPECT_EQ(*got, upload);
  ASSERT_EQ(::shutdown(p->client.get(), SHUT_WR), 0);
  EXPECT_EQ(::recv(moved.get(), &c, 1, 0), 0);
  // FIN in FIN_WAIT2: a timewait socket takes the connection over and the
  // full socket behind the fd goes to CLOSE.
  EXPECT_EQ(await_state(moved.get(), TCP_CLOSE), TCP_CLOSE);
}

// The server's FIN (with data before it) is sent but not acknowledged.
TEST_P(TcpHalfCloseTest, FinWait1) {
  auto p = loopback_pair(GetParam());
  ASSERT_TRUE(p.ok()) << p.error().to_string();
  ASSERT_TRUE(drop_flow("xo_hold", p->client_port, p->server_port).ok());
  auto tail = pattern(2000, 64);
  ASSERT_TRUE(write_all(p->server.get(), tail).ok());
  ASSERT_EQ(::shutdown(p->server.get(), SHUT_WR), 0);
  auto got = read_exactly(p->client.get(), tail.size());
  ASSERT_TRUE(got.ok()) << got.error().to_string();
  ASSERT_EQ(*got, tail);
  ASSERT_EQ(tcp_state(p->server.get()), TCP_FIN_WAIT1);
  Snapshot snap;
  UniqueFd moved = move(p->server, {}, &snap);
  ASSERT_TRUE(moved);
  EXPECT_EQ(snap.state, TCP_FIN_WAIT1);
  EXPECT_EQ(snap.send_queue, tail) << "the FIN is not a byte of the queue";
  EXPECT_EQ(tcp_state(moved.get()), TCP_FIN_WAIT1);
  ASSERT_TRUE(delete_table("xo_hold").ok());
  EXPECT_EQ(await_state(moved.get(), TCP_FIN_WAIT2), TCP_FIN_WAIT2);
  char c;
  EXPECT_EQ(::recv(p->client.get(), &c, 1, MSG_DONTWAIT), 0) << "client sees EOF, no extra byte";
  auto upload = pattern(5000, 65);
  ASSERT_TRUE(write_all(p->client.get(), upload).ok());
  got = read_exactly(moved.get(), upload.size());
  ASSERT_TRUE(got.ok()) << got.error().to_string();
  EXPECT_EQ(*got, upload);
}

// FIN_WAIT1 with the FIN still behind unsent bytes: the client's small
// receive window (it does not read) holds most of the response back.
TEST_P(TcpHalfCloseTest, FinWait1BehindUnsentData) {
  auto p = loopback_pair(GetParam(), 4096);
  ASSERT_TRUE(p.ok()) << p.error().to_string();
  auto tail = pattern(200000, 66);
  int big = 1 << 20;
  ASSERT_EQ(::setsockopt(p->server.get(), SOL_SOCKET, SO_SNDBUF, &big, sizeof(big)), 0);
  ASSERT_EQ(::send(p->server.get(), tail.data(), tail.size(), MSG_DONTWAIT), static_cast<ssize_t>(tail.size()));
  ASSERT_EQ(::shutdown(p->server.get(), SHUT_WR), 0);
  ASSERT_EQ(tcp_state(p->server.get()), TCP_FIN_WAIT1);
  Snapshot snap;
  UniqueFd moved = move(p->server, {}, &snap);
  ASSERT_TRUE(moved);
  EXPECT_EQ(snap.state, TCP_FIN_WAIT1);
  EXPECT_GT(snap.unsent, 0u) << "the test meant to hold bytes (and the FIN) back";
  // The send queue is the tail of the response, without a byte for the FIN.
  ASSERT_LE(snap.send_queue.size(), tail.size());
  EXPECT_TRUE(std::equal(snap.send_queue.begin(), snap.send_queue.end(),
                         tail.end() - static_cast<long>(snap.send_queue.size())));
  EXPECT_EQ(tcp_state(moved.get()), TCP_FIN_WAIT1);
  // The client reads everything, then the FIN that came after the unsent tail.
  std::vector<uint8_t> got;
  std::vector<uint8_t> buf(65536);
  for (;;) {
    auto r = read_exactly(p->client.get(), 1, 5000);
    ASSERT_TRUE(r.ok() || got.size() == tail.size()) << r.error().to_string() << " after " << got.size();
    if (!r.ok()) break;
    got.push_back((*r)[0]);
    ssize_t k = ::recv(p->client.get(), buf.data(), buf.size(), MSG_DONTWAIT);
    if (k > 0) got.insert(got.end(), buf.begin(), buf.begin() + k);
  }
  EXPECT_EQ(got, tail);
  EXPECT_EQ(await_state(moved.get(), TCP_FIN_WAIT2), TCP_FIN_WAIT2);
}

// The client closed first, then the server; the server's FIN is unacked.
TEST_P(TcpHalfCloseTest, LastAck) {
  auto p = loopback_pair(GetParam());
  ASSERT_TRUE(p.ok()) << p.error().to_string();
  ASSERT_EQ(::shutdown(p->client.get(), SHUT_WR), 0);
  ASSERT_EQ(await_state(p->server.get(), TCP_CLOSE_WAIT), TCP_CLOSE_WAIT);
  ASSERT_TRUE(drop_flow("xo_hold", p->client_port, p->server_port).ok());
  auto tail = pattern(3000, 67);
  ASSERT_TRUE(write_all(p->server.get(), tail).ok());
  ASSERT_EQ(::shutdown(p->server.get(), SHUT_WR), 0);
  auto got = read_exactly(p->client.get(), tail.size());
  ASSERT_TRUE(got.ok()) << got.error().to_string();
  EXPECT_EQ(*got, tail);
  ASSERT_EQ(tcp_state(p->server.get()), TCP_LAST_ACK);
  Snapshot snap;
  UniqueFd moved = move(p->server, {}, &snap);
  ASSERT_TRUE(moved);
  EXPECT_EQ(snap.state, TCP_LAST_ACK);
  EXPECT_EQ(snap.send_queue, tail);
  EXPECT_EQ(tcp_state(moved.get()), TCP_LAST_ACK);
  ASSERT_TRUE(delete_table("xo_hold").ok());
  EXPECT_EQ(await_state(moved.get(), TCP_CLOSE), TCP_CLOSE);
  char c;
  EXPECT_EQ(::recv(p->client.get(), &c, 1, MSG_DONTWAIT), 0);
}

// Simultaneous close: both FINs crossed, ours not yet acknowledged.
TEST_P(TcpHalfCloseTest, Closing) {
  auto p = loopback_pair(GetParam());
  ASSERT_TRUE(p.ok()) << p.error().to_string();
  ASSERT_TRUE(drop_flow("xo_c2s", p->client_port, p->server_port).ok());
  ASSERT_TRUE(drop_flow("xo_s2c", p->server_port, p->client_port).ok());
  ASSERT_EQ(::shutdown(p->server.get(), SHUT_WR), 0);
  ASSERT_EQ(::shutdown(p->client.get(), SHUT_WR), 0);
  ASSERT_TRUE(delete_table("xo_c2s").ok());
  // The client's FIN (retransmitted) reaches the server in FIN_WAIT1.
  ASSERT_EQ(await_state(p->server.get(), TCP_CLOSING, 10000), TCP_CLOSING);
  Snapshot snap;
  UniqueFd moved = move(p->server, {}, &snap);
  ASSERT_TRUE(moved);
  EXPECT_EQ(snap.state, TCP_CLOSING);
  EXPECT_EQ(tcp_state(moved.get()), TCP_CLOSING);
  ASSERT_TRUE(delete_table("xo_s2c").ok());
  // The window probe draws the client's ACK of our FIN: TIME_WAIT, which
  // leaves the full socket behind the fd in CLOSE.
  EXPECT_EQ(await_state(moved.get(), TCP_CLOSE, 10000), TCP_CLOSE);
  char c;
  EXPECT_EQ(::recv(p->client.get(), &c, 1, 0), 0);
}

INSTANTIATE_TEST_SUITE_P(Families, TcpHalfCloseTest, ::testing::Values(AF_INET, AF_INET6),
                         [](const auto& info) { return info.param == AF_INET ? "IPv4" : "IPv6"; });

}  // namespace
}  // namespace xo::tcp::testing
