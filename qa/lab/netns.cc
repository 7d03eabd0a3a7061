#include "qa/lab/netns.h"

#include <fcntl.h>
#include <sched.h>

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

}  // namespace xo::lab
