// The lab itself: hosts reachable, RSTs counted on the wire, flows diverted.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <optional>

#include "qa/lab/flow_diverter.h"
#include "qa/lab/lab.h"
#include "qa/lab/netns.h"
#include "qa/lab/packet_counter.h"
#include "qa/lab/run.h"
#include "qa/lab/sockets.h"

namespace xo::lab {
namespace {

#define ASSERT_OK(expr)                                              \
  ({                                                                 \
    auto r_ = (expr);                                                \
    ASSERT_TRUE(r_.ok()) << #expr << ": " << r_.error().to_string(); \
    std::move(r_).value();                                           \
  })

UniqueFd listen_in(const std::string& ns, uint16_t port) {
  auto scope = NetnsScope::enter(ns);
  if (!scope.ok()) return {};
  UniqueFd fd(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int off = 0, on = 1;
  ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(port);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd.get(), 16) != 0) return {};
  return fd;
}

UniqueFd connect_in(const std::string& ns, const std::string& ip, uint16_t port) {
  auto scope = NetnsScope::enter(ns);
  if (!scope.ok()) return {};
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return {};
  return fd;
}

bool readable(int fd, int ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, ms) == 1;
}

TEST(Lab, UpHostsAndDown) {
  std::string name;
  {
    Lab lab = ASSERT_OK(Lab::up({.backends = 2, .caps = {{"frontend", "100mbit"}}}));
    name = lab.name();
    std::string qdisc = ASSERT_OK(run_ok(lab.frontend().ns, {"tc", "qdisc", "show", "dev", "eth0"}));
    EXPECT_NE(qdisc.find("tbf"), std::string::npos) << qdisc;
    EXPECT_NE(qdisc.find("100Mbit"), std::string::npos) << qdisc;
    EXPECT_EQ(lab.host_names(), (std::vector<std::string>{"client", "frontend", "backend0", "backend1"}));
    EXPECT_EQ(lab.backend(1).ip, "198.18.0.21");
    std::string addrs = ASSERT_OK(run_ok(lab.frontend().ns, {"ip", "-o", "addr", "show", "dev", "eth0"}));
    EXPECT_NE(addrs.find(lab.service_ip() + "/32"), std::string::npos) << addrs;
    EXPECT_NE(addrs.find(lab.service_ip6() + "/128"), std::string::npos) << addrs;
    std::string routes = ASSERT_OK(run_ok("", {"ip", "route", "show", "type", "unreachable"}));
    EXPECT_NE(routes.find("198.18.0.0/15"), std::string::npos);
  }
  EXPECT_FALSE(run_ok("", {"test", "-e", "/run/netns/" + name + "-client"}).ok()) << "namespace left behind";
}

bool lab_exists(const std::string& name) { return run_ok("", {"test", "-d", "/run/xo-lab/" + name}).ok(); }

// A lab whose owner died is swept (with the processes inside it); a lab
// whose owner lives is never touched.
TEST(Lab, SweepRemovesOnlyLabsOfDeadOwners) {
  auto spawned = Child::spawn("", {"sleep", "60"});
  ASSERT_TRUE(spawned.ok());
  std::optional<Child> owner;
  owner.emplace(std::move(*spawned));
  auto dead = run_ok("", {xo_lab_script(), "up", "--backends", "0", "--owner", std::to_string(owner->pid())});
  ASSERT_TRUE(dead.ok()) << dead.error().to_string();
  std::string dead_name = dead->substr(0, dead->find('\n'));
  Lab live = ASSERT_OK(Lab::up({.backends = 0}));
  // Something left running inside the soon-dead lab.
  auto inside = Child::spawn(dead_name + "-frontend", {"sleep", "60"});
  ASSERT_TRUE(inside.ok());
  owner.reset();  // the destructor kills and reaps the owner
  ASSERT_TRUE(run_ok("", {xo_lab_script(), "sweep"}).ok());
  EXPECT_FALSE(lab_exists(dead_name)) << "stale lab not swept";
  EXPECT_TRUE(lab_exists(live.name())) << "a live lab was swept";
  auto code = inside->wait(std::chrono::seconds(5));
  ASSERT_TRUE(code.ok()) << "process in the stale lab still runs";
  EXPECT_EQ(*code, 128 + 9);
}

TEST(Lab, CountsRstsOnTheWire) {
  Lab lab = ASSERT_OK(Lab::up({.backends = 0}));
  auto counter = ASSERT_OK(PacketCounter::start(lab.client().ns));
  UniqueFd listener = listen_in(lab.frontend().ns, 8080);
  ASSERT_TRUE(listener.valid());
  {
    UniqueFd c = connect_in(lab.client().ns, lab.service_ip(), 8080);
    ASSERT_TRUE(c.valid());
  }
  // Nobody listens on 8081: the frontend answers the SYN with an RST.
  EXPECT_FALSE(connect_in(lab.client().ns, lab.service_ip(), 8081).valid());
  auto counts = counter->stop();
  EXPECT_GE(counts.tcp_out, 3u);
  EXPECT_GE(counts.tcp_in, 2u);
  EXPECT_EQ(counts.rst_in, 1u);
}

TEST(Lab, DiverterBlocksAndMovesTheServiceAddress) {
  Lab lab = ASSERT_OK(Lab::up({.backends = 1}));
  UniqueFd fe = listen_in(lab.frontend().ns, 80), be = listen_in(lab.backend(0).ns, 80);
  ASSERT_TRUE(fe.valid() && be.valid());
  UniqueFd c = connect_in(lab.client().ns, lab.service_ip(), 80);
  ASSERT_TRUE(c.valid());
  UniqueFd s(::accept4(fe.get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(s.valid());
  Flow flow = ASSERT_OK(flow_of(s.get()));
  EXPECT_EQ(flow.family, AF_INET);
  EXPECT_EQ(flow.local_ip, lab.service_ip());
  EXPECT_EQ(flow.remote_ip, lab.client().ip);

  auto diverter = make_default_diverter(lab);
  auto blocked = diverter->block(flow);
  ASSERT_TRUE(blocked.ok()) << blocked.error().to_string();
  ASSERT_EQ(::send(c.get(), "x", 1, 0), 1);
  EXPECT_FALSE(readable(s.get(), 300)) << "blocked flow delivered data";
  ASSERT_TRUE(diverter->unblock(flow).ok());
  EXPECT_TRUE(readable(s.get(), 3000)) << "retransmission not delivered after unblock";

  auto moved = diverter->deliver_to(flow, "backend0");
  ASSERT_TRUE(moved.ok()) << moved.error().to_string();
  EXPECT_EQ(diverter->owner(flow), "backend0");
  UniqueFd c2 = connect_in(lab.client().ns, lab.service_ip(), 80);
  ASSERT_TRUE(c2.valid());
  EXPECT_TRUE(readable(be.get(), 1000)) << "new connection did not reach backend0";
  EXPECT_FALSE(readable(fe.get(), 0));
  auto conns = ASSERT_OK(connection_sockets(lab.frontend().ns));
  EXPECT_EQ(conns.size(), 1u) << to_string(conns);
}

}  // namespace
}  // namespace xo::lab
