// run_io_loop: handlers posted from other threads run, stop() ends the loop,
// and the loop polls after control traffic for the window only — then it
// sleeps; other work does not make it poll. Asleep: the loop thread's CPU
// time stays ~0. Polling: the thread stays runnable ('R' in /proc), which
// holds even on a loaded host where its yields leave it little CPU time.
#include "common/handoff/node/io_loop.h"

#include <gtest/gtest.h>
#include <pthread.h>
#include <time.h>

#include <atomic>
#include <fstream>
#include <iterator>
#include <string>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <future>
#include <thread>

#include "common/handoff/channel/poll_window.h"

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
  // Share of 1 ms samples over `span` in which the loop thread was runnable
  // (state R), not asleep in epoll (S).
  double runnable_share(std::chrono::milliseconds span) {
    pid_t tid = 0;
    run_and_wait([&] { tid = ::gettid(); });
    const std::string path = "/proc/self/task/" + std::to_string(tid) + "/stat";
    int runnable = 0, samples = 0;
    for (auto until = std::chrono::steady_clock::now() + span; std::chrono::steady_clock::now() < until; ++samples) {
      std::ifstream in(path);
      std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      const auto paren = stat.rfind(')');  // "tid (comm) S ..."
      runnable += paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'R';
      std::this_thread::sleep_for(1ms);
    }
    return samples ? double(runnable) / samples : 0;
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
  // A window longer than the measurement: the thread keeps polling.
  Loop loop(std::chrono::microseconds(5s));
  loop.run_and_wait([] { channel::PollWindow::note_traffic(); });
  EXPECT_GT(loop.runnable_share(300ms), 0.8);
}

TEST(IoLoop, WorkWithoutTrafficDoesNotOpenTheWindow) {
  // A timer's or a deferred removal's handler: back to sleep at once.
  Loop loop(std::chrono::microseconds(5s));
  loop.run_and_wait([] {});
  EXPECT_LT(loop.cpu_while_idle(300ms).count(), 30);
  EXPECT_LT(loop.runnable_share(300ms), 0.2);
}

TEST(IoLoop, PlainRunSleeps) {
  Loop loop(0us);
  loop.run_and_wait([] {});
  EXPECT_LT(loop.cpu_while_idle(300ms).count(), 30);
}

}  // namespace
}  // namespace xo::handoff::node
