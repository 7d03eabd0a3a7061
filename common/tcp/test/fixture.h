// Every test runs in its own network namespace with an RST counter, so nft
// rules and ports never touch the host or other tests.
#pragma once

#include <gtest/gtest.h>
#include <netinet/tcp.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <sys/socket.h>

#include "common/tcp/snapshot.h"
#include "common/tcp/test/loopback.h"

namespace xo::tcp::testing {

class TcpRepairTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto st = enter_private_netns();
    ASSERT_TRUE(st.ok()) << st.error().to_string();
    st = install_rst_counter();
    ASSERT_TRUE(st.ok()) << st.error().to_string();
  }
  // No test may produce an RST: a handoff that resets is a failed handoff.
  void TearDown() override {
    if (!expect_no_rst_) return;
    auto n = rst_count();
    ASSERT_TRUE(n.ok()) << n.error().to_string();
    EXPECT_EQ(*n, 0) << "RST segments were sent in the test's namespace";
  }

  // Capture `fd`, close it silently, pass the snapshot through encode/decode,
  // restore it. The usual handoff.
  UniqueFd move(UniqueFd& fd, const RestoreOptions& opts = {}, Snapshot* out = nullptr) {
    auto snap = capture(fd.get());
    EXPECT_TRUE(snap.ok()) << snap.error().to_string();
    if (!snap.ok()) return {};
    close_silently(fd);
    auto wire = encode(*snap);
    auto decoded = decode(wire);
    EXPECT_TRUE(decoded.ok()) << decoded.error().to_string();
    if (!decoded.ok()) return {};
    if (out) *out = *decoded;
    auto fd2 = restore(*decoded, opts);
    EXPECT_TRUE(fd2.ok()) << fd2.error().to_string();
    if (!fd2.ok()) return {};
    return std::move(*fd2);
  }

  // Bytes both ways, every one compared.
  void exchange(int a, int b, size_t n, uint32_t seed) {
    auto x = pattern(n, seed), y = pattern(n, seed + 1);
    ASSERT_TRUE(write_all(a, x).ok());
    auto got = read_exactly(b, n);
    ASSERT_TRUE(got.ok()) << got.error().to_string();
    ASSERT_EQ(*got, x);
    ASSERT_TRUE(write_all(b, y).ok());
    got = read_exactly(a, n);
    ASSERT_TRUE(got.ok()) << got.error().to_string();
    ASSERT_EQ(*got, y);
  }

  bool expect_no_rst_ = true;
};

inline int sockopt(int fd, int level, int opt) {
  int v = -1;
  socklen_t len = sizeof(v);
  ::getsockopt(fd, level, opt, &v, &len);
  return v;
}

}  // namespace xo::tcp::testing

namespace xo::tcp::testing {

// Polls until `fd` reaches `state` (or `ms` pass); returns the last state.
inline int await_state(int fd, int state, int ms = 3000) {
  int st = tcp_state(fd);
  for (int i = 0; i < ms && st != state; ++i) {
    ::usleep(1000);
    st = tcp_state(fd);
  }
  return st;
}

// Polls until an ioctl (SIOCINQ, SIOCOUTQ, ...) reports `want`.
inline int await_ioctl(int fd, unsigned long req, int want, int ms = 3000) {
  int v = -1;
  for (int i = 0; i < ms; ++i) {
    ::ioctl(fd, req, &v);
    if (v == want) break;
    ::usleep(1000);
  }
  return v;
}

}  // namespace xo::tcp::testing
