// tcp_move_bench: the `tcp.move` benchmark line (run by qa/benchmarks/tcp).
//
// A lab (client, frontend, backend0) with the test server on both hosts; one
// keep-alive connection whose requests alternate frontend/backend0, so every
// request moves the live connection. Prints JSON lines on stdout:
//   tcp.move         whole move: block → capture → encode → decode →
//                    restore on the other host → deliver → unblock
//   tcp.move.state   the TCP state part alone: capture + encode + decode + restore
// Usage: tcp_move_bench [moves=300]   (after 4 unmeasured warm-up moves)
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/base/bench_report.h"
#include "qa/lab/lab.h"
#include "qa/lab/netns.h"
#include "qa/lab/packet_counter.h"
#include "qa/server/client.h"
#include "qa/server/content.h"
#include "qa/system/tcp/move_lab.h"

namespace {
using xo::bench::percentile;
using xo::bench::print_latency;

constexpr int kWarmUp = 4;  // moves not measured



int fail(const std::string& why) {
  std::fprintf(stderr, "tcp_move_bench: %s\n", why.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace xo;
  int moves = argc > 1 ? std::atoi(argv[1]) : 300;
  if (moves < 2) return fail("need at least 2 moves");
  auto lab = lab::Lab::up({.backends = 1});
  if (!lab.ok()) return fail(lab.error().to_string());
  auto ml = tcpmove::MoveLab::start(*lab, tcpmove::Plan{.before = [](const std::string&, const testserver::RequestInfo& r)
                                                          -> std::optional<std::string> {
                                          return r.seq % 2 == 0 ? "backend0" : "frontend";
                                        }});
  if (!ml.ok()) return fail(ml.error().to_string());
  auto counter = lab::PacketCounter::start(lab->client().ns);
  if (!counter.ok()) return fail(counter.error().to_string());
  {
    std::optional<testserver::Client> client;
    {
      auto scope = lab::NetnsScope::enter(lab->client().ns);
      if (!scope.ok()) return fail(scope.error().to_string());
      auto c = testserver::Client::connect(lab->service_ip(), (*ml)->port());
      if (!c.ok()) return fail(c.error().to_string());
      client.emplace(std::move(*c));
    }
    // Request seq 1 stays on the frontend; each later request moves once.
    for (int seq = 1; seq <= moves + kWarmUp + 1; ++seq) {
      auto r = client->get("/data/1024/" + std::to_string(seq));
      if (!r.ok()) return fail("request " + std::to_string(seq) + ": " + r.error().to_string());
      if (r->body.size() != 1024 ||
          testserver::content_mismatch(seq, 0, std::span(reinterpret_cast<const uint8_t*>(r->body.data()), 1024)) != -1)
        return fail("wrong bytes in response " + std::to_string(seq));
    }
  }
  (*ml)->stop();
  auto c = (*counter)->stop();
  std::vector<double> total, state, block, capture, encode, decode, restore, deliver;
  auto records = (*ml)->mover().records();
  if (records.size() != static_cast<size_t>(moves + kWarmUp)) return fail("expected one move per request");
  for (size_t i = 0; i < records.size(); ++i) {
    const auto& rec = records[i];
    if (!rec.ok) return fail("a move failed: " + rec.error);
    // The first moves open each host's nft and rtnetlink contexts.
    if (i < static_cast<size_t>(kWarmUp)) continue;
    total.push_back(rec.us_total);
    state.push_back(rec.us_capture + rec.us_encode + rec.us_decode + rec.us_restore);
    block.push_back(rec.us_block);
    capture.push_back(rec.us_capture);
    encode.push_back(rec.us_encode);
    decode.push_back(rec.us_decode);
    restore.push_back(rec.us_restore);
    deliver.push_back(rec.us_deliver);
  }
  std::fprintf(stderr,
               "tcp_move_bench: p50 µs: block %.1f, capture %.1f, encode %.1f, decode %.1f, restore %.1f, "
               "deliver %.1f (prepare + unblock make up the rest)\n",
               percentile(block, 0.5), percentile(capture, 0.5), percentile(encode, 0.5), percentile(decode, 0.5), percentile(restore, 0.5),
               percentile(deliver, 0.5));
  std::fprintf(stderr, "tcp_move_bench: %d moves, client saw %lu TCP segments in, %lu RSTs\n", moves,
               static_cast<unsigned long>(c.tcp_in), static_cast<unsigned long>(c.rst_in + c.rst_out));
  if (c.rst_in + c.rst_out != 0) return fail("RSTs on the client's wire");
  if (c.dropped != 0) std::fprintf(stderr, "tcp_move_bench: the wire counter lost %lu frames\n",
                                   static_cast<unsigned long>(c.dropped));
  print_latency("tcp.move", "us", total,
             "a whole move of one live keep-alive connection between two lab namespaces (frontend<->backend0), "
             "between requests: nft block (libnftables), capture, encode, decode, restore in the other namespace, "
             "service address + client neighbour moved (libnl), unblock, window probe; the lab's FlowDiverter, not eBPF");
  print_latency("tcp.move.state", "us", state,
             "the TCP-state part of the same moves: capture + encode + decode + restore in the other namespace");
  return 0;
}
