// Every channel test runs in a private network namespace of its own process:
// its loopback is isolated from the host's and from other test processes, and
// it disappears with the process, even when a timeout kills the test.
// Without CAP_SYS_ADMIN the tests fall back to the host's loopback (127.0.0.1).
#include <gtest/gtest.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "common/base/fd.h"

namespace {

class PrivateNetns : public ::testing::Environment {
 public:
  // Runs on the main thread before any test thread exists; threads started
  // later inherit the namespace.
  void SetUp() override {
    if (unshare(CLONE_NEWNET) != 0) {
      std::fprintf(stderr, "handoff tests: unshare(CLONE_NEWNET): %s; using the host's loopback\n",
                   std::strerror(errno));
      return;
    }
    xo::UniqueFd s(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    if (!s || ioctl(s.get(), SIOCGIFFLAGS, &ifr) != 0) return perror("SIOCGIFFLAGS lo");
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(s.get(), SIOCSIFFLAGS, &ifr) != 0) return perror("SIOCSIFFLAGS lo up");
  }
};

[[maybe_unused]] auto* const kEnv = ::testing::AddGlobalTestEnvironment(new PrivateNetns);

}  // namespace
