// handoff_control_bench: the control plane's share of a handoff, measured.
// Prints JSON lines (qa/bench format) on stdout, diagnostics on stderr:
//   handoff.control.rtt     OFFER (4 KiB snapshot) → READY over mutual TLS 1.3
//   handoff.control.commit  OriginHandoff with no-op flows: start → GO sent
// Runs on loopback inside a private network namespace when it may (root).
#include <sched.h>

#include <algorithm>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <cstdio>
#include <future>
#include <thread>

#include "common/base/bench_report.h"
#include "common/handoff/channel/peer_client.h"
#include "common/handoff/channel/server.h"
#include "common/handoff/channel/tls_config.h"
#include "common/handoff/protocol/connection_link.h"
#include "common/handoff/protocol/origin.h"
#include "common/handoff/test/pki.h"
#include "common/handoff/test/sample_messages.h"
#include "common/handoff/wire/messages.h"

namespace {

using namespace xo::handoff;
using namespace std::chrono_literals;
namespace asio = boost::asio;

struct NoopFlow : protocol::OriginFlow {
  xo::Result<protocol::FrozenState> freeze() override { return protocol::FrozenState{std::string(4096, 's'), {}}; }
  xo::Status redirect(const std::string&) override { return {}; }
  void release() override {}
  xo::Status thaw() override { return {}; }
};

pb::Offer offer(uint64_t id) { return xo::handoff::test::loopback_offer(id, std::string(4096, 's'), 1000); }


}  // namespace

int main() {
  if (unshare(CLONE_NEWNET) == 0) std::system("ip link set lo up");  // private loopback
  test::TempPki pki({"osd-1", "rgw-1"});
  if (!pki.ok()) return std::fprintf(stderr, "xo-pki failed\n"), 1;
  asio::io_context io;
  auto work = asio::make_work_guard(io);
  std::thread io_thread([&] { io.run(); });

  auto sctx = channel::make_tls_context(channel::TlsIdentity::from_pki_dir(pki.dir(), "osd-1"), channel::Role::kServer);
  auto cctx = channel::make_tls_context(channel::TlsIdentity::from_pki_dir(pki.dir(), "rgw-1"), channel::Role::kClient);
  if (!sctx.ok() || !cctx.ok()) return 1;
  channel::ServerOptions so;
  so.listen = asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0);
  so.handlers.on_message = [](const channel::ConnectionPtr& conn, pb::Envelope m) {
    if (m.type() != pb::TYPE_OFFER) return;
    pb::Ready r;
    r.set_flow_id(m.offer().flow_id());
    (void)conn->respond(m, wire::wrap(r));
  };
  auto server = channel::Server::create(io, *sctx, so);
  if (!server.ok()) return 1;
  (*server)->start();
  channel::PeerOptions po;
  po.peer_host_id = "osd-1";
  po.endpoint = (*server)->local_endpoint();
  auto client = channel::PeerClient::create(io, *cctx, po);
  if (!client.ok()) return 1;
  (*client)->start();
  for (int i = 0; i < 500 && !(*client)->connected(); ++i) std::this_thread::sleep_for(10ms);
  if (!(*client)->connected()) return std::fprintf(stderr, "no control connection\n"), 1;

  constexpr int kIterations = 2000;
  std::vector<double> rtt, commit;
  for (int i = 0; i < kIterations + 100; ++i) {  // the first 100 warm up
    std::promise<void> done;
    const auto t0 = std::chrono::steady_clock::now();
    (*client)->request(wire::wrap(offer(i + 1)), 1s, [&](xo::Result<pb::Envelope>) { done.set_value(); });
    done.get_future().wait();
    if (i >= 100)
      rtt.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  protocol::CommitLog commits;
  protocol::Counters counters;
  auto link = std::make_shared<protocol::PeerClientLink>(*client, "osd-1");
  for (int i = 0; i < kIterations + 100; ++i) {
    std::promise<void> done;
    const auto t0 = std::chrono::steady_clock::now();
    protocol::OfferSpec spec{offer(1).flow(), static_cast<uint64_t>(100000 + i), "plan", "rgw-1", 1000ms};
    protocol::OriginHandoff::create(io.get_executor(), link, std::make_unique<NoopFlow>(), spec, commits, counters,
                                    [&](const protocol::OriginResult& r) {
                                      if (i == kIterations) std::fprintf(stderr, "trace: %s\n", r.trace.to_string().c_str());
                                      done.set_value();
                                    })
        ->start();
    done.get_future().wait();
    if (i >= 100)
      commit.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  xo::bench::print_latency("handoff.control.rtt", "us", rtt, "OFFER (4 KiB snapshot) to READY over mutual TLS 1.3, loopback, one connection");
  xo::bench::print_latency("handoff.control.commit", "us", commit,
        "OriginHandoff with no-op TCP/TLS/steer: start to GO sent (control plane only)");
  (*client)->stop();
  (*server)->stop();
  std::this_thread::sleep_for(50ms);
  work.reset();
  io.stop();
  io_thread.join();
  return 0;
}
