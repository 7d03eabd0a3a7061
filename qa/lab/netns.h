// NetnsScope: this thread setns()'d into a lab host's network namespace.
//
// setns(CLONE_NEWNET) changes only the calling thread. Sockets keep the
// namespace they were created in, so a scope is needed only around socket
// creation (listen, connect, restore), not around their use.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "common/base/fd.h"
#include "common/base/result.h"

namespace xo::lab {

class NetnsScope {
 public:
  // ns: a name under /run/netns (e.g. "xo-1a2b3c4d-frontend").
  static Result<NetnsScope> enter(const std::string& ns);
  NetnsScope(NetnsScope&&) noexcept = default;
  NetnsScope& operator=(NetnsScope&&) = delete;
  ~NetnsScope();  // back to the namespace the thread was in (aborts if that fails)

 private:
  explicit NetnsScope(UniqueFd previous) : previous_(std::move(previous)) {}
  UniqueFd previous_;
};

std::string netns_path(const std::string& ns);

// A TCP client socket created in `ns` and connected to ip:port (IPv4 or
// IPv6 literal). Every later read and write on it gives up after
// `io_timeout`, so a stalled peer fails a test instead of hanging it.
Result<UniqueFd> connect_from(const std::string& ns, const std::string& ip, uint16_t port,
                              std::chrono::seconds io_timeout);

}  // namespace xo::lab
