// ESTABLISHED connections over loopback: move, options, failure paths.
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cstring>
#include <fstream>

#include "common/tcp/test/fixture.h"

namespace xo::tcp::testing {
namespace {

class TcpMoveTest : public TcpRepairTest, public ::testing::WithParamInterface<int> {};

TEST_P(TcpMoveTest, MovesAnEstablishedConnection) {
  auto p = loopback_pair(GetParam());
  ASSERT_TRUE(p.ok()) << p.error().to_string();
  exchange(p->client.get(), p->server.get(), 1000, 1);
  Snapshot snap;
  UniqueFd moved = move(p->server, {}, &snap);
  ASSERT_TRUE(moved);
  EXPECT_EQ(snap.state, TCP_ESTABLISHED);
  EXPECT_EQ(snap.local.family(), GetParam());
  EXPECT_TRUE(snap.send_queue.empty());
  EXPECT_TRUE(snap.recv_queue.empty());
  EXPECT_EQ(tcp_state(moved.get()), TCP_ESTABLISHED);
  // Loopback negotiates every option; the restored socket has them all again.
  tcp_info ti{};
  socklen_t len = sizeof(ti);
  ASSERT_EQ(::getsockopt(moved.get(), IPPROTO_TCP, TCP_INFO, &ti, &len), 0);
  EXPECT_EQ(ti.tcpi_options & 7, snap.tcpi_options & 7);
  EXPECT_EQ(snap.tcpi_options & 7, TCPI_OPT_TIMESTAMPS | TCPI_OPT_SACK | TCPI_OPT_WSCALE);
  EXPECT_EQ(ti.tcpi_snd_wscale, snap.snd_wscale);
  EXPECT_EQ(ti.tcpi_rcv_wscale, snap.rcv_wscale);
  ASSERT_TRUE(snap.window.has_value());
  for (int i = 0; i < 20; ++i) exchange(p->client.get(), moved.get(), 100000, 10 + i);
  // And back again, a second move of the restored socket.
  UniqueFd again = move(moved);
  ASSERT_TRUE(again);
  exchange(p->client.get(), again.get(), 5000, 99);
}

TEST_P(TcpMoveTest, MovesWithoutWindowProbe) {
  auto p = loopback_pair(GetParam());
  ASSERT_TRUE(p.ok()) << p.error().to_string();
  RestoreOptions opts;
  opts.window_probe = false;
  UniqueFd moved = move(p->server, opts);
  ASSERT_TRUE(moved);
  exchange(p->client.get(), moved.get(), 3000, 3);
}

TEST_P(TcpMoveTest, RestoresIntoASocketMadeAheadOfTime) {
  auto p = loopback_pair(GetParam());
  ASSERT_TRUE(p.ok()) << p.error().to_string();
  exchange(p->client.get(), p->server.get(), 2000, 5);
  auto fresh = make_repair_socket(GetParam());
  ASSERT_TRUE(fresh.ok()) << fresh.error().to_string();
  // Bytes in flight both ways at the capture: the client's unread request,
  // and our unacknowledged reply cannot be (loopback ACKs at once), so
  // queue the client's side only.
  const auto request = pattern(700, 8);
  ASSERT_TRUE(write_all(p->client.get(), request).ok());
  auto snap = capture(p->server.get());
  ASSERT_TRUE(snap.ok()) << snap.error().to_string();
  close_silently(p->server);
  auto moved = restore(*snap, std::move(*fresh));
  ASSERT_TRUE(moved.ok()) << moved.error().to_string();
  auto got = read_exactly(moved->get(), request.size());
  ASSERT_TRUE(got.ok()) << got.error().to_string();
  EXPECT_EQ(*got, request);
  exchange(p->client.get(), moved->get(), 50000, 6);
}

INSTANTIATE_TEST_SUITE_P(Families, TcpMoveTest, ::testing::Values(AF_INET, AF_INET6),
                         [](const auto& info) { return info.param == AF_INET ? "IPv4" : "IPv6"; });

TEST_F(TcpRepairTest, RestoresOnlyNegotiatedOptions) {
  // Per-namespace sysctls: no timestamps, no SACK, no window scaling.
  for (const char* knob : {"tcp_timestamps", "tcp_sack", "tcp_window_scaling"}) {
    std::ofstream(std::string("/proc/sys/net/ipv4/") + knob) << "0\n";
  }
  auto p = loopback_pair(AF_INET);
  ASSERT_TRUE(p.ok()) << p.error().to_string();
  Snapshot snap;
  UniqueFd moved = move(p->server, {}, &snap);
  ASSERT_TRUE(moved);
  EXPECT_EQ(snap.tcpi_options & 7, 0);
  tcp_info ti{};
  socklen_t len = sizeof(ti);
  ASSERT_EQ(::getsockopt(moved.get(), IPPROTO_TCP, TCP_INFO, &ti, &len), 0);
  EXPECT_EQ(ti.tcpi_options & 7, 0);
  exchange(p->client.get(), moved.get(), 200000, 5);
}

TEST_F(TcpRepairTest, SocketOptionsTravel) {
  auto p = loopback_pair(AF_INET6);
  ASSERT_TRUE(p.ok()) << p.error().to_string();
  int fd = p->server.get();
  auto set = [&](int level, int opt, int v) { ASSERT_EQ(::setsockopt(fd, level, opt, &v, sizeof(v)), 0); };
  set(IPPROTO_TCP, TCP_NODELAY, 1);
  set(SOL_SOCKET, SO_KEEPALIVE, 1);
  set(IPPROTO_TCP, TCP_KEEPIDLE, 77);
  set(IPPROTO_TCP, TCP_KEEPINTVL, 11);
  set(IPPROTO_TCP, TCP_KEEPCNT, 4);
  set(IPPROTO_TCP, TCP_NOTSENT_LOWAT, 32768);
  set(SOL_SOCKET, SO_SNDBUF, 50000);  // locks the send buffer, not the receive buffer
  set(SOL_SOCKET, SO_REUSEADDR, 1);
  ASSERT_EQ(::setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, "reno", 4), 0);
  const int sndbuf = sockopt(fd, SOL_SOCKET, SO_SNDBUF);

  Snapshot snap;
  UniqueFd moved = move(p->server, {}, &snap);
  ASSERT_TRUE(moved);
  EXPECT_EQ(snap.options.sndbuf, sndbuf);
  EXPECT_EQ(snap.options.rcvbuf, 0) << "receive buffer was not locked: must stay autotuned";
  int m = moved.get();
  EXPECT_EQ(sockopt(m, IPPROTO_TCP, TCP_NODELAY), 1);
  EXPECT_EQ(sockopt(m, SOL_SOCKET, SO_KEEPALIVE), 1);
  EXPECT_EQ(sockopt(m, IPPROTO_TCP, TCP_KEEPIDLE), 77);
  EXPECT_EQ(sockopt(m, IPPROTO_TCP, TCP_KEEPINTVL), 11);
  EXPECT_EQ(sockopt(m, IPPROTO_TCP, TCP_KEEPCNT), 4);
  EXPECT_EQ(sockopt(m, IPPROTO_TCP, TCP_NOTSENT_LOWAT), 32768);
  EXPECT_EQ(sockopt(m, SOL_SOCKET, SO_SNDBUF), sndbuf);
  EXPECT_EQ(sockopt(m, SOL_SOCKET, SO_REUSEADDR), 1);
  EXPECT_EQ(sockopt(m, SOL_SOCKET, SO_BUF_LOCK), 1) << "SNDBUF locked, RCVBUF autotuned";
  char cc[16] = {};
  socklen_t len = sizeof(cc);
  ASSERT_EQ(::getsockopt(m, IPPROTO_TCP, TCP_CONGESTION, cc, &len), 0);
  EXPECT_STREQ(cc, "reno");
  exchange(p->client.get(), m, 10000, 7);
}

TEST_F(TcpRepairTest, DefaultsStayDefaults) {
  auto p = loopback_pair(AF_INET);
  ASSERT_TRUE(p.ok()) << p.error().to_string();
  Snapshot snap;
  UniqueFd moved = move(p->server, {}, &snap);
  ASSERT_TRUE(moved);
  EXPECT_FALSE(snap.options.nodelay);
  EXPECT_FALSE(snap.options.keepalive);
  EXPECT_FALSE(snap.options.reuseaddr);
  EXPECT_EQ(snap.options.sndbuf, 0);
  EXPECT_EQ(snap.options.rcvbuf, 0);
  EXPECT_EQ(sockopt(moved.get(), SOL_SOCKET, SO_REUSEADDR), 0);
  EXPECT_EQ(sockopt(moved.get(), SOL_SOCKET, SO_BUF_LOCK), 0);
  EXPECT_EQ(sockopt(moved.get(), SOL_SOCKET, SO_KEEPALIVE), 0);
}

TEST_F(TcpRepairTest, FailedCaptureLeavesSocketUsable) {
  // A listening socket cannot be captured; it must still accept afterwards.
  UniqueFd lst(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(lst.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(::listen(lst.get(), 1), 0);
  auto snap = capture(lst.get());
  ASSERT_FALSE(snap.ok());
  EXPECT_NE(snap.error().message.find("LISTEN"), std::string::npos) << snap.error().message;
  EXPECT_EQ(sockopt(lst.get(), IPPROTO_TCP, TCP_REPAIR), 0) << "still in repair mode";
  socklen_t len = sizeof(a);
  ASSERT_EQ(::getsockname(lst.get(), reinterpret_cast<sockaddr*>(&a), &len), 0);
  UniqueFd c(::socket(AF_INET, SOCK_STREAM, 0));
  ASSERT_EQ(::connect(c.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  UniqueFd s(::accept(lst.get(), nullptr, nullptr));
  ASSERT_TRUE(s);
  exchange(c.get(), s.get(), 100, 1);

  // A socket that never connected (CLOSE): repair mode is allowed, the state
  // check refuses it, and the socket leaves repair mode again.
  UniqueFd fresh(::socket(AF_INET6, SOCK_STREAM, 0));
  auto f = capture(fresh.get());
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.error().message.find("state CLOSE"), std::string::npos) << f.error().message;
  EXPECT_EQ(sockopt(fresh.get(), IPPROTO_TCP, TCP_REPAIR), 0) << "still in repair mode";

  // A UDP socket: repair mode itself is refused, with the reason.
  UniqueFd udp(::socket(AF_INET, SOCK_DGRAM, 0));
  auto u = capture(udp.get());
  ASSERT_FALSE(u.ok());
  EXPECT_NE(u.error().message.find("TCP_REPAIR"), std::string::npos) << u.error().message;
}

TEST_F(TcpRepairTest, ResumeAfterCaptureKeepsTheConnection) {
  auto p = loopback_pair(AF_INET);
  ASSERT_TRUE(p.ok()) << p.error().to_string();
  int one = 1;
  ASSERT_EQ(::setsockopt(p->server.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
  auto snap = capture(p->server.get());
  ASSERT_TRUE(snap.ok()) << snap.error().to_string();
  EXPECT_EQ(sockopt(p->server.get(), IPPROTO_TCP, TCP_REPAIR), 1);
  ASSERT_TRUE(resume(p->server.get(), *snap).ok());
  EXPECT_EQ(sockopt(p->server.get(), IPPROTO_TCP, TCP_REPAIR), 0);
  EXPECT_EQ(sockopt(p->server.get(), SOL_SOCKET, SO_REUSEADDR), 1);
  exchange(p->client.get(), p->server.get(), 5000, 2);
}

TEST_F(TcpRepairTest, RestoreRefusesAnInvalidSnapshot) {
  Snapshot s;
  s.state = TCP_ESTABLISHED;
  auto r = restore(s);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("family"), std::string::npos) << r.error().message;
}

TEST_F(TcpRepairTest, RestoreBindsTheOverrideAddress) {
  // NAT mode: restore bound to another local address (here ::1 -> v4 is a
  // family mismatch and must be refused; 127.0.0.2 is a different address).
  auto p = loopback_pair(AF_INET);
  ASSERT_TRUE(p.ok()) << p.error().to_string();
  auto snap = capture(p->server.get());
  ASSERT_TRUE(snap.ok()) << snap.error().to_string();
  RestoreOptions bad;
  bad.local = *Endpoint::parse("::1", 80);
  auto r = restore(*snap, bad);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("differ in family"), std::string::npos) << r.error().message;
  ASSERT_TRUE(resume(p->server.get(), *snap).ok());
  exchange(p->client.get(), p->server.get(), 100, 4);
}

TEST_F(TcpRepairTest, RstCounterSeesResets) {
  // The fixture's "no RST" check must be able to fail: closing a socket with
  // unread data sends an RST, and the counter sees it.
  auto p = loopback_pair(AF_INET);
  ASSERT_TRUE(p.ok()) << p.error().to_string();
  ASSERT_TRUE(write_all(p->client.get(), pattern(10, 1)).ok());
  ASSERT_EQ(await_ioctl(p->server.get(), SIOCINQ, 10), 10);
  p->server.reset();
  auto n = rst_count();
  ASSERT_TRUE(n.ok()) << n.error().to_string();
  EXPECT_EQ(*n, 1);
  expect_no_rst_ = false;
}

TEST_F(TcpRepairTest, FailedRestoreLeavesNoTrace) {
  // An address this namespace does not own: bind() fails and says so; the
  // half-built socket goes silently; the same snapshot then restores fine.
  auto p = loopback_pair(AF_INET);
  ASSERT_TRUE(p.ok()) << p.error().to_string();
  auto snap = capture(p->server.get());
  ASSERT_TRUE(snap.ok()) << snap.error().to_string();
  close_silently(p->server);
  RestoreOptions elsewhere;
  elsewhere.local = *Endpoint::parse("198.18.255.1", 80);
  auto r = restore(*snap, elsewhere);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().to_string().find("bind(198.18.255.1:80)"), std::string::npos) << r.error().to_string();
  EXPECT_EQ(r.error().code, EADDRNOTAVAIL);
  // IP_TRANSPARENT lets the same bind succeed (the NAT-mode setup).
  elsewhere.transparent = true;
  auto t = restore(*snap, elsewhere);
  ASSERT_TRUE(t.ok()) << t.error().to_string();
  sockaddr_in a{};
  socklen_t len = sizeof(a);
  ASSERT_EQ(::getsockname(t->get(), reinterpret_cast<sockaddr*>(&a), &len), 0);
  EXPECT_EQ(ntohl(a.sin_addr.s_addr), 0xc612ff01u);
  EXPECT_EQ(ntohs(a.sin_port), 80);
  close_silently(*t);
  auto ok = restore(*snap);
  ASSERT_TRUE(ok.ok()) << ok.error().to_string();
  exchange(p->client.get(), ok->get(), 2000, 8);
}

// An IPv6 socket carrying IPv4 (v4-mapped addresses), half-closed: the peer's
// FIN must be injected as IPv4.
TEST_F(TcpRepairTest, MapsV4OnV6SocketsIncludingTheInjectedFin) {
  UniqueFd lst(::socket(AF_INET6, SOCK_STREAM, 0));
  sockaddr_in6 any{};
  any.sin6_family = AF_INET6;
  any.sin6_addr = in6addr_any;
  ASSERT_EQ(::bind(lst.get(), reinterpret_cast<sockaddr*>(&any), sizeof(any)), 0);
  ASSERT_EQ(::listen(lst.get(), 1), 0);
  socklen_t len = sizeof(any);
  ASSERT_EQ(::getsockname(lst.get(), reinterpret_cast<sockaddr*>(&any), &len), 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = any.sin6_port;
  UniqueFd client(::socket(AF_INET, SOCK_STREAM, 0));
  ASSERT_EQ(::connect(client.get(), reinterpret_cast<sockaddr*>(&to), sizeof(to)), 0);
  UniqueFd server(::accept(lst.get(), nullptr, nullptr));
  ASSERT_TRUE(server);
  ASSERT_EQ(::shutdown(client.get(), SHUT_WR), 0);
  ASSERT_EQ(await_state(server.get(), TCP_CLOSE_WAIT), TCP_CLOSE_WAIT);
  Snapshot snap;
  UniqueFd moved = move(server, {}, &snap);
  ASSERT_TRUE(moved);
  EXPECT_EQ(snap.local.family(), AF_INET6);
  EXPECT_EQ(snap.local.to_string().rfind("[::ffff:127.0.0.1]:", 0), 0u) << snap.local.to_string();
  EXPECT_EQ(tcp_state(moved.get()), TCP_CLOSE_WAIT);
  auto reply = pattern(4000, 9);
  ASSERT_TRUE(write_all(moved.get(), reply).ok());
  auto got = read_exactly(client.get(), reply.size());
  ASSERT_TRUE(got.ok()) << got.error().to_string();
  EXPECT_EQ(*got, reply);
}

}  // namespace
}  // namespace xo::tcp::testing
