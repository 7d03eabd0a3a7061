// tcp_bench: capture() and restore() latency over a loopback pair, in a
// private network namespace. Prints one JSON object per line on stdout
// (qa/bench tcp); diagnostics go to stderr. Runs as root.
//
//   tcp.capture / tcp.restore                 empty queues
//   tcp.capture.loaded / tcp.restore.loaded   64 KiB sent but unacknowledged
//                                             (the peer's ACKs dropped by nft)
//                                             and 1 KiB in the receive queue
//
// Each iteration is one call timed with a steady clock; the untimed part puts
// the world back (resume() after capture, a silent close after restore).
#include <linux/sockios.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/base/bench_report.h"
#include "common/tcp/snapshot.h"
#include "common/tcp/test/loopback.h"

namespace {
using xo::bench::print_latency;

using namespace xo;
using namespace xo::tcp;
using namespace xo::tcp::testing;
using Clock = std::chrono::steady_clock;

constexpr int kWarmup = 200;

[[noreturn]] void die(const std::string& what, const Error& e) {
  std::fprintf(stderr, "tcp_bench: %s: %s\n", what.c_str(), e.to_string().c_str());
  std::exit(1);
}

double micros(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }


// Captures `fd` n times (resume() in between, untimed); checks the queues.
std::vector<double> bench_capture(int fd, int n, size_t send_q, size_t recv_q) {
  std::vector<double> us;
  us.reserve(n);
  for (int i = -kWarmup; i < n; ++i) {
    auto t0 = Clock::now();
    auto snap = capture(fd);
    auto t1 = Clock::now();
    if (!snap.ok()) die("capture", snap.error());
    if (snap->send_queue.size() != send_q || snap->recv_queue.size() != recv_q)
      die("capture", error("queues changed: send " + std::to_string(snap->send_queue.size()) + " recv " +
                           std::to_string(snap->recv_queue.size())));
    auto st = resume(fd, *snap);
    if (!st.ok()) die("resume", st.error());
    if (i >= 0) us.push_back(micros(t1 - t0));
  }
  return us;
}

// Restores `snap` n times; each restored socket is closed silently (untimed)
// so that the next restore can take its 4-tuple.
std::vector<double> bench_restore(const Snapshot& snap, int n) {
  std::vector<double> us;
  us.reserve(n);
  for (int i = -kWarmup; i < n; ++i) {
    auto t0 = Clock::now();
    auto fd = restore(snap);
    auto t1 = Clock::now();
    if (!fd.ok()) die("restore", fd.error());
    close_silently(*fd);
    if (i >= 0) us.push_back(micros(t1 - t0));
  }
  return us;
}

Snapshot capture_and_close(UniqueFd& fd) {
  auto snap = capture(fd.get());
  if (!snap.ok()) die("capture", snap.error());
  close_silently(fd);
  return *snap;
}

void wait_ioctl(int fd, unsigned long req, int want, const char* what) {
  int v = -1;
  for (int i = 0; i < 5000; ++i) {
    ::ioctl(fd, req, &v);
    if (v == want) return;
    ::usleep(1000);
  }
  die("setup", error(std::string(what) + " stuck at " + std::to_string(v) + ", want " + std::to_string(want)));
}

}  // namespace

int main(int argc, char** argv) {
  int n = 10000;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--iterations") && i + 1 < argc) {
      n = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: tcp_bench [--iterations N]\n");
      return 2;
    }
  }
  if (auto st = enter_private_netns(); !st.ok()) die("netns", st.error());

  {
    auto p = loopback_pair(AF_INET);
    if (!p.ok()) die("pair", p.error());
    auto cap = bench_capture(p->server.get(), n, 0, 0);
    print_latency("tcp.capture", "us", cap, "capture() of an ESTABLISHED IPv4 loopback socket, empty queues");
    Snapshot snap = capture_and_close(p->server);
    auto res = bench_restore(snap, n);
    print_latency("tcp.restore", "us", res, "restore() of that snapshot (socket to repair off, window probe on), empty queues");
  }
  {
    auto p = loopback_pair(AF_INET);
    if (!p.ok()) die("pair", p.error());
    std::vector<uint8_t> in(1024, 'i'), out(64 << 10, 'o');
    if (auto st = write_all(p->client.get(), in); !st.ok()) die("setup", st.error());
    wait_ioctl(p->server.get(), SIOCINQ, 1024, "SIOCINQ");
    if (auto st = drop_flow("xo_bench_hold", p->client_port, p->server_port); !st.ok()) die("nft", st.error());
    if (auto st = write_all(p->server.get(), out); !st.ok()) die("setup", st.error());
    if (auto r = read_exactly(p->client.get(), out.size()); !r.ok()) die("setup", r.error());
    wait_ioctl(p->server.get(), SIOCOUTQNSD, 0, "SIOCOUTQNSD");
    auto cap = bench_capture(p->server.get(), n, out.size(), in.size());
    print_latency("tcp.capture.loaded", "us", cap, "capture() with 64 KiB unacknowledged in the send queue and 1 KiB in the receive queue");
    Snapshot snap = capture_and_close(p->server);
    auto res = bench_restore(snap, n);
    print_latency("tcp.restore.loaded", "us", res, "restore() with 64 KiB unacknowledged in the send queue and 1 KiB in the receive queue");
  }
  // The namespace (and its nft table) disappears with this process.
  return 0;
}
