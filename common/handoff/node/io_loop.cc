#include "common/handoff/node/io_loop.h"

#include <sched.h>

#include "common/handoff/channel/poll_window.h"

namespace xo::handoff::node {

void run_io_loop(boost::asio::io_context& io, std::chrono::microseconds busy_poll) {
  if (busy_poll.count() <= 0) {
    io.run();
    return;
  }
  using Clock = std::chrono::steady_clock;
  Clock::time_point last_traffic{};  // the window opens with the first frame
  channel::PollWindow::last_traffic = &last_traffic;
  struct Reset {
    ~Reset() { channel::PollWindow::last_traffic = nullptr; }
  } reset;
  while (!io.stopped()) {
    // poll() also asks the reactor (epoll_wait with a zero timeout).
    if (io.poll() > 0) continue;
    if (io.stopped()) return;
    if (Clock::now() - last_traffic < busy_poll) {
      ::sched_yield();  // a no-op unless another thread wants this CPU
      continue;
    }
    if (io.run_one() == 0) return;  // asleep until the next event
  }
}

}  // namespace xo::handoff::node
