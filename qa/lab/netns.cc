#include "qa/lab/netns.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>

#include <cstdio>
#include <cstdlib>

namespace xo::lab {

std::string netns_path(const std::string& ns) { return "/run/netns/" + ns; }

Result<NetnsScope> NetnsScope::enter(const std::string& ns) {
  UniqueFd previous(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  if (!previous) return sys_error("open /proc/thread-self/ns/net");
  UniqueFd target(::open(netns_path(ns).c_str(), O_RDONLY | O_CLOEXEC));
  if (!target) return sys_error("open " + netns_path(ns));
  if (::setns(target.get(), CLONE_NEWNET) != 0) return sys_error("setns " + ns);
  return NetnsScope(std::move(previous));
}

NetnsScope::~NetnsScope() {
  if (!previous_) return;  // moved from
  // A thread left in the wrong namespace would silently talk to the wrong
  // host; there is no safe way to continue.
  if (::setns(previous_.get(), CLONE_NEWNET) != 0) {
    std::perror("xo::lab::NetnsScope: setns back");
    std::abort();
  }
}

Result<UniqueFd> connect_from(const std::string& ns, const std::string& ip, uint16_t port,
                              std::chrono::seconds io_timeout) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (auto* a4 = reinterpret_cast<sockaddr_in*>(&ss); ::inet_pton(AF_INET, ip.c_str(), &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(port);
    len = sizeof *a4;
  } else if (auto* a6 = reinterpret_cast<sockaddr_in6*>(&ss); ::inet_pton(AF_INET6, ip.c_str(), &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(port);
    len = sizeof *a6;
  } else {
    return error("connect_from: not an IP address: " + ip, EINVAL);
  }
  UniqueFd fd;
  {
    XO_ASSIGN_OR_RETURN(auto scope, NetnsScope::enter(ns));
    fd.reset(::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  }
  if (!fd) return sys_error("socket in " + ns);
  const timeval tv{static_cast<time_t>(io_timeout.count()), 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&ss), len) != 0)
    return sys_error("connect to " + ip + ":" + std::to_string(port) + " from " + ns);
  return fd;
}

}  // namespace xo::lab
