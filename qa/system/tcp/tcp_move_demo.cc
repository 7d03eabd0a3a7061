// tcp_move_demo --lab NAME: the server side of qa/demo/tcp-move.
//
// Attaches to a lab the script brought up, runs the test server on the
// frontend and backend0, and moves each client connection by this plan:
//   request 1 frontend, request 2 backend0, request 3 frontend again,
//   request 4 started by the frontend and finished mid-body by backend0.
// Prints "ready" once listening; on SIGTERM/SIGINT prints one line per move
// ("move ..."), the wire counts ("wire ...") and leftover sockets ("left ...").
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>

#include "common/tcp/snapshot.h"
#include "qa/lab/lab.h"
#include "qa/lab/packet_counter.h"
#include "qa/lab/sockets.h"
#include "qa/system/tcp/move_lab.h"

namespace {

constexpr uint64_t kMidBodyOffset = 5'000'000;

std::string clock_time(std::chrono::system_clock::time_point t) {
  auto secs = std::chrono::system_clock::to_time_t(t);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02d:%02d:%02d.%03d", tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace xo;
  if (argc != 3 || std::string(argv[1]) != "--lab") {
    std::fprintf(stderr, "usage: tcp_move_demo --lab NAME\n");
    return 2;
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  auto lab = lab::Lab::attach(argv[2]);
  if (!lab.ok()) {
    std::fprintf(stderr, "tcp_move_demo: %s\n", lab.error().to_string().c_str());
    return 1;
  }
  tcpmove::Plan plan = tcpmove::answer_by({"frontend", "backend0", "frontend", "frontend"});
  plan.mid = [](const std::string& here, const testserver::RequestInfo& r)
      -> std::optional<std::pair<uint64_t, std::string>> {
    if (here == "frontend" && r.seq == 4) return std::pair<uint64_t, std::string>{kMidBodyOffset, "backend0"};
    return std::nullopt;
  };
  auto ml = tcpmove::MoveLab::start(*lab, std::move(plan));
  auto counter = lab::PacketCounter::start(lab->client().ns);
  if (!ml.ok() || !counter.ok()) {
    std::fprintf(stderr, "tcp_move_demo: %s\n",
                 (!ml.ok() ? ml.error() : counter.error()).to_string().c_str());
    return 1;
  }
  std::printf("ready\n");
  std::fflush(stdout);
  int sig = 0;
  sigwait(&set, &sig);

  auto wire = (*counter)->stop();
  int n = 0;
  for (const auto& m : (*ml)->mover().records()) {
    std::printf("move %d %s %s -> %s | %s | %s | total %.1f ms (block %.1f, TCP state %.2f, deliver %.1f) | "
                "in flight: %zu B sent+unacked, %zu B unsent, %zu B received+unread, %zu B in the server buffer | %s\n",
                ++n, clock_time(m.at).c_str(), m.from.c_str(), m.to.c_str(), m.ok ? "ok" : m.error.c_str(),
                m.owed.c_str(), m.us_total / 1000, m.us_block / 1000,
                (m.us_capture + m.us_encode + m.us_decode + m.us_restore) / 1000, m.us_deliver / 1000, m.unacked,
                m.unsent, m.recv_queue, m.unread, tcp::state_name(m.tcp_state));
  }
  std::printf("wire %lu %lu %lu %lu %lu\n", static_cast<unsigned long>(wire.tcp_in),
              static_cast<unsigned long>(wire.tcp_out), static_cast<unsigned long>(wire.rst_in),
              static_cast<unsigned long>(wire.rst_out), static_cast<unsigned long>(wire.dropped));
  for (const char* host : {"frontend", "backend0"}) {
    auto left = lab::wait_no_connections(lab->find(host)->ns);
    std::printf("left %s %zu\n", host, left.ok() ? left->size() : size_t{999});
  }
  (*ml)->stop();
  std::fflush(stdout);
  return 0;
}
