// run_io_loop: handlers posted from other threads run, stop() ends the loop,
// and the loop polls after control traffic for the window only — then it
// sleeps; other work does not make it poll (CPU time of the loop thread, read
// with its thread CPU clock).
#include "common/handoff/node/io_loop.h"

#include "common/handoff/channel/poll_window.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <time.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <future>
#include <thread>

namespace xo::handoff::node {
namespace {

using namespace std::chrono_literals;

class Loop {
 public:
  explicit Loop(std::chrono::microseconds busy_poll)
      : work_(io_.get_executor()), thread_([this, busy_poll] { run_io_loop(io_, busy_poll); }) {}
  ~Loop() {
    io_.stop();
    thread_.join();
  }
  void run_and_wait(std::function<void()> fn) {
    std::promise<void> done;
    boost::asio::post(io_, [&] {
      fn();
      done.set_value();
    });
    ASSERT_EQ(done.get_future().wait_for(5s), std::future_status::ready);
  }
  // CPU time the loop thread used while the caller slept `idle`.
  std::chrono::milliseconds cpu_while_idle(std::chrono::milliseconds idle) {
    clockid_t clock;
    EXPECT_EQ(pthread_getcpuclockid(thread_.native_handle(), &clock), 0);
    timespec a{}, b{};
    clock_gettime(clock, &a);
    std::this_thread::sleep_for(idle);
    clock_gettime(clock, &b);
    return std::chrono::milliseconds((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1'000'000);
  }
  boost::asio::io_context io_;

 private:
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::thread thread_;
};

TEST(IoLoop, RunsPostedHandlersAndStops) {
  for (auto window : {0us, 200us}) {
    Loop loop(window);
    std::atomic<int> ran{0};
    for (int i = 0; i < 100; ++i) loop.run_and_wait([&] { ++ran; });
    EXPECT_EQ(ran, 100) << "busy_poll " << window.count() << " µs";
  }  // ~Loop: stop() must end the loop, asleep or polling
}

TEST(IoLoop, SleepsOnceTheWindowIsOver) {
  Loop loop(1ms);
  loop.run_and_wait([] { channel::PollWindow::note_traffic(); });
  // 1 ms of polling after the handler, then asleep in epoll: ~0 CPU.
  EXPECT_LT(loop.cpu_while_idle(300ms).count(), 30);
}

TEST(IoLoop, PollsWithinTheWindow) {
  // A window longer than the measurement: the thread keeps polling (it
  // yields, but with nothing else to run on its CPU it gets most of it).
  Loop loop(std::chrono::microseconds(5s));
  loop.run_and_wait([] { channel::PollWindow::note_traffic(); });
  EXPECT_GT(loop.cpu_while_idle(300ms).count(), 30);
}

TEST(IoLoop, WorkWithoutTrafficDoesNotOpenTheWindow) {
  // A timer's or a deferred removal's handler: back to sleep at once.
  Loop loop(std::chrono::microseconds(5s));
  loop.run_and_wait([] {});
  EXPECT_LT(loop.cpu_while_idle(300ms).count(), 30);
}

TEST(IoLoop, PlainRunSleeps) {
  Loop loop(0us);
  loop.run_and_wait([] {});
  EXPECT_LT(loop.cpu_while_idle(300ms).count(), 30);
}

}  // namespace
}  // namespace xo::handoff::node
