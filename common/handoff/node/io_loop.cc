#include "common/handoff/node/io_loop.h"

#include <sched.h>

namespace xo::handoff::node {

void run_io_loop(boost::asio::io_context& io, std::chrono::microseconds busy_poll) {
  if (busy_poll.count() <= 0) {
    io.run();
    return;
  }
  using Clock = std::chrono::steady_clock;
  auto last_work = Clock::now();
  while (!io.stopped()) {
    // poll() also asks the reactor (epoll_wait with a zero timeout).
    if (io.poll() > 0) {
      last_work = Clock::now();
      continue;
    }
    if (io.stopped()) return;
    if (Clock::now() - last_work < busy_poll) {
      ::sched_yield();  // a no-op unless another thread wants this CPU
      continue;
    }
    if (io.run_one() == 0) return;  // asleep until the next event
    last_work = Clock::now();
  }
}

}  // namespace xo::handoff::node
