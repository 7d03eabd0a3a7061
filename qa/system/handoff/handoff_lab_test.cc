// The offload protocol end to end (issue 5): xo-testserver on a frontend
// offloads GETs to a backend through common/handoff/node, the backend serves
// and gives the connection back, the next request is the frontend's again.
// Real clients (curl, python3, wrk) in the lab's client namespace, over HTTP
// and HTTPS; every byte checked, RSTs counted on the client's wire, no
// connection or steering entry left behind.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "common/base/testing.h"
#include "common/handoff/node/flow_keys.h"
#include "common/steer/ebpf_backend.h"
#include "qa/lab/packet_counter.h"
#include "qa/system/steer/steer_lab.h"
#include "qa/lab/run.h"
#include "qa/lab/sockets.h"
#include "qa/server/content.h"
#include "qa/system/handoff/handoff_lab.h"

namespace xo::handoff::labtest {
namespace {

template <class T>
T take(Result<T> r) {
  EXPECT_TRUE(r.ok()) << r.error().to_string();
  return std::move(r.value());
}

const std::string kSystemDir = XO_HANDOFF_SYSTEM_DIR;
// Offloaded: "/data/1..." (prefix rule /data/1=backend0); local: "/data/2...".
constexpr uint64_t kOffSize = 100000, kLocalSize = 20000;
const std::string kOffPath = "/data/" + std::to_string(kOffSize);
const std::string kLocalPath = "/data/" + std::to_string(kLocalSize);

std::string expected(uint64_t size, uint64_t seed) {
  std::string s(size, '\0');
  testserver::content_fill(seed, 0, std::span(reinterpret_cast<uint8_t*>(s.data()), s.size()));
  return s;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

long percentile(std::vector<long> v, double p) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

class HandoffLabTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto up = OffloadLab::up({.backends = 1, .offload = {"/data/1=backend0"}});
    ASSERT_TRUE(up.ok()) << up.error().to_string();
    lab_ = std::move(*up);
    client_ns_ = lab_->lab().client().ns;
    auto counter = lab::PacketCounter::start(client_ns_);
    ASSERT_TRUE(counter.ok()) << counter.error().to_string();
    rst_ = std::move(*counter);
    // Which packets the RSTs were, should there be any (diagnostics only).
    auto recorder = steer::test::WireRecorder::start(client_ns_);
    ASSERT_TRUE(recorder.ok()) << recorder.error().to_string();
    wire_ = std::move(*recorder);
    std::string tmpl = (std::filesystem::temp_directory_path() / "xo-handoff-test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    tmp_ = tmpl;
  }

  void TearDown() override {
    std::error_code ec;
    if (!tmp_.empty()) std::filesystem::remove_all(tmp_, ec);
  }

  std::string url(const std::string& scheme, const std::string& path) const {
    return scheme + "://" + lab_->service_ip() + path;
  }

  // After the clients are done: no RST on the client's wire, no connection
  // left on any host, every server stops cleanly with nothing held or lost
  // and no steering entry left. `offloads` = handoffs the test expects.
  // `client_aborts`: the client may reset its own connections at the end
  // (wrk stops mid-request); then at most that many of its connections send
  // RSTs (one each, and one more for each server segment still arriving at
  // the closed socket), none may reach it, and a connection reset while at a
  // backend ends there (the backend tells the frontend: CLOSED; its REDIRECT
  // goes after the linger).
  // `closed_at_backend`: connections the test ends at the backend on purpose.
  void expect_clean_finish(uint64_t offloads, uint64_t client_aborts = 0, uint64_t closed_at_backend = 0) {
    auto counts = rst_->stop();
    std::string rsts;
    std::set<uint16_t> resetting_ports;  // the client's connections that sent an RST
    for (const auto& p : wire_->stop())
      if (p.flags & 0x04) {
        rsts += std::string(p.outgoing ? "out " : "in ") + p.src.to_string() + ":" + std::to_string(p.src_port) +
                " > " + p.dst.to_string() + ":" + std::to_string(p.dst_port) + " flags " + std::to_string(p.flags) +
                "\n";
        if (p.outgoing) resetting_ports.insert(p.src_port);
      }
    EXPECT_EQ(counts.rst_in, 0u) << "RSTs reached the client:\n" << rsts;
    EXPECT_LE(resetting_ports.size(), client_aborts) << "RSTs sent by the client:\n" << rsts;
    EXPECT_EQ(counts.dropped, 0u) << "the packet counter lost frames";
    for (const auto& host : lab_->hosts()) {
      // Client connections only: the control channel (port 7700) stays up.
      std::vector<lab::SocketRow> left;
      for (int i = 0; i < 50; ++i) {
        auto rows = lab::connection_sockets(lab_->lab().find(host)->ns);
        ASSERT_TRUE(rows.ok()) << rows.error().to_string();
        left.clear();
        for (auto& row : *rows)
          if (row.local.find(":7700") == std::string::npos && row.peer.find(":7700") == std::string::npos)
            left.push_back(row);
        if (left.empty()) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      EXPECT_TRUE(left.empty()) << host << " still holds: " << lab::to_string(left);
    }
    for (const auto& host : lab_->hosts()) {
      auto recs = lab_->records(host);
      for (size_t i = 0; i < recs.size(); ++i) {
        // A few samples, and every handoff that did not go the normal way.
        const bool normal = recs[i].find(" offloaded ") != std::string::npos ||
                            recs[i].find(" accepted ") != std::string::npos ||
                            recs[i].find(" returned ") != std::string::npos ||
                            recs[i].find(" taken-back ") != std::string::npos;
        if (i < 4 || !normal) std::printf("%s: %s\n", host.c_str(), recs[i].c_str());
      }
    }
    // Offload and return times, from the Node's per-handoff traces.
    std::vector<long> offload_us, return_us;
    for (const auto& r : lab_->records("frontend"))
      if (r.find("record offer offloaded") == 0) offload_us.push_back(step_us(r, "go_sent"));
    for (const auto& r : lab_->records("backend0"))
      if (r.find("record give_back returned") == 0) return_us.push_back(step_us(r, "release"));
    std::printf("handoff: %zu offloads p50 %ld us p99 %ld us (freeze..GO sent); %zu returns p50 %ld us p99 %ld us "
                "(freeze..DONE+release)\n",
                offload_us.size(), percentile(offload_us, 0.5), percentile(offload_us, 0.99), return_us.size(),
                percentile(return_us, 0.5), percentile(return_us, 0.99));
    // A backend keeps dropping stray segments of a flow it gave back, and
    // keeps the SNAT of a flow closed there, for close_linger (2 s); the
    // frontend keeps the REDIRECT of a flow that ended at the backend as long
    // after CLOSED. No reconcile: nothing may be left for one.
    std::this_thread::sleep_for(std::chrono::milliseconds(2200));
    for (const auto& host : lab_->hosts()) {
      auto n = lab_->steering_entries(host);
      ASSERT_TRUE(n.ok()) << n.error().to_string();
      EXPECT_EQ(*n, 0u) << host << " has steering entries left";
    }
    auto stats = lab_->stop();
    ASSERT_TRUE(stats.ok()) << stats.error().to_string();
    auto& fe = (*stats)["frontend"];
    auto& be = (*stats)["backend0"];
    std::printf("client segments dropped by a BLOCK / replayed: frontend %lu / %lu, backend0 %lu / %lu\n",
                static_cast<unsigned long>(fe["held"]), static_cast<unsigned long>(fe["replayed"]),
                static_cast<unsigned long>(be["held"]), static_cast<unsigned long>(be["replayed"]));
    // Every client segment a BLOCK dropped went back into the connection:
    // a lost one costs its client a ~200 ms retransmission timeout. (Only a
    // run descheduled past the fence's 200 µs bound could escape — and the
    // last segment, say a FIN, of a connection the client reset while it
    // moved: that socket is gone, nothing to replay into.)
    EXPECT_LE(fe["held"] + be["held"], fe["replayed"] + be["replayed"] + client_aborts);
    EXPECT_GE(fe["held"] + be["held"], fe["replayed"] + be["replayed"]);
    EXPECT_EQ(fe["offloaded"], offloads);
    EXPECT_EQ(fe["served_locally"], 0u);
    EXPECT_EQ(fe["lost"], 0u);
    EXPECT_EQ(be["accepted"], offloads);
    // Every accepted connection came back, or (client abort) ended at the backend.
    EXPECT_EQ(be["given_back"] + be["closed_here"] + be["kept"], offloads);
    EXPECT_LE(be["closed_here"] + be["kept"], client_aborts + closed_at_backend);
    EXPECT_GE(be["closed_here"], closed_at_backend);
    EXPECT_EQ(fe["taken_back"], be["given_back"]);
    // Every connection that ended at the backend (closed there, or kept after
    // a failed give-back and then closed) was reported to the frontend.
    EXPECT_EQ(fe["ended_at_target"], be["closed_here"] + be["kept"]);
    for (auto* s : {&fe, &be}) {
      EXPECT_EQ((*s)["flows_out"], 0u);
      EXPECT_EQ((*s)["flows_in"], 0u);
      EXPECT_EQ((*s)["steer_errors"], 0u);
      EXPECT_EQ((*s)["steer_entries"], 0u);
      EXPECT_EQ((*s)["discarded"], 0u);
      EXPECT_EQ((*s)["dropped"], 0u);
    }
  }

  // python3 handoff_client.py; returns the total ok count.
  void run_python(const std::string& scheme, int connections, int cycles) {
    auto r = lab::run_in(client_ns_,
                         {"/usr/bin/python3", kSystemDir + "/handoff_client.py", scheme, lab_->service_ip(),
                          scheme == "https" ? "443" : "80", std::to_string(connections), std::to_string(cycles),
                          kOffPath, kLocalPath},
                         std::chrono::seconds(400));
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_EQ(r->exit_code, 0) << r->err;
    const std::string want_total = "total ok " + std::to_string(2 * connections * cycles) + " bad 0";
    EXPECT_NE(r->out.find(want_total), std::string::npos) << r->out.substr(0, 4000) << r->err;
    // Half the requests of each connection were served by the backend, half by the frontend.
    const std::string want_split =
        "served backend0=" + std::to_string(cycles) + " frontend=" + std::to_string(cycles);
    std::istringstream lines(r->out);
    std::string line;
    int conns = 0;
    while (std::getline(lines, line))
      if (line.rfind("conn ", 0) == 0) {
        ++conns;
        EXPECT_NE(line.find(want_split), std::string::npos) << line;
      }
    EXPECT_EQ(conns, connections);
  }

  std::unique_ptr<OffloadLab> lab_;
  std::string client_ns_, tmp_;
  std::unique_ptr<lab::PacketCounter> rst_;
  std::unique_ptr<steer::test::WireRecorder> wire_;
};

// curl, one keep-alive connection: offload, serve, return, the next request
// is the frontend's; twice; HTTP then HTTPS.
TEST_F(HandoffLabTest, CurlOffloadServeReturnHttpAndHttps) {
  for (const std::string scheme : {"http", "https"}) {
    std::vector<std::string> argv{"/usr/bin/curl", "-sS", "-k", "--http1.1", "--max-time", "30"};
    std::vector<std::pair<uint64_t, uint64_t>> want;  // size, seed
    for (int i = 0; i < 4; ++i) {
      uint64_t size = i % 2 ? kLocalSize : kOffSize, seed = 10 + i;
      want.emplace_back(size, seed);
      argv.push_back(url(scheme, "/data/" + std::to_string(size) + "/" + std::to_string(seed)));
      argv.push_back("-o");
      argv.push_back(tmp_ + "/" + scheme + std::to_string(i));
    }
    argv.push_back("-w");
    argv.push_back("%{http_code} %{num_connects} %header{x-served-by} %header{x-request-seq}\\n");
    auto r = lab::run_in(client_ns_, argv, std::chrono::seconds(60));
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    ASSERT_EQ(r->exit_code, 0) << r->err;
    EXPECT_EQ(r->out,
              "200 1 backend0 1\n"
              "200 0 frontend 2\n"
              "200 0 backend0 3\n"
              "200 0 frontend 4\n")
        << scheme << "\n" << r->err;
    for (int i = 0; i < 4; ++i)
      EXPECT_TRUE(read_file(tmp_ + "/" + scheme + std::to_string(i)) == expected(want[i].first, want[i].second))
          << scheme << " body " << i << " differs";
  }
  expect_clean_finish(4);
}

// A connection that ends while at the backend ("Connection: close": the
// backend answers and closes): the backend tells the frontend (CLOSED), which
// keeps its REDIRECT for the linger — the client's last ACK still reaches the
// backend, no RST — and then removes it: nothing is left for a reconcile.
TEST_F(HandoffLabTest, ConnectionEndingAtTheBackendLeavesNoRedirect) {
  for (const std::string scheme : {"http", "https"}) {
    const std::string out = tmp_ + "/" + scheme + "-closed";
    auto r = lab::run_in(client_ns_,
                         {"/usr/bin/curl", "-sS", "-k", "--http1.1", "--max-time", "30", "-H", "Connection: close",
                          url(scheme, "/data/" + std::to_string(kOffSize) + "/77"), "-o", out, "-w",
                          "%{http_code} %header{x-served-by}\n"},
                         std::chrono::seconds(60));
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    ASSERT_EQ(r->exit_code, 0) << r->err;
    EXPECT_EQ(r->out, "200 backend0\n") << scheme << "\n" << r->err;
    EXPECT_TRUE(read_file(out) == expected(kOffSize, 77)) << scheme << " body differs";
  }
  // The frontend heard of both ends (record lines of its Node).
  auto ended = [&] {
    size_t n = 0;
    for (const auto& rec : lab_->records("frontend")) n += rec.rfind("record end ended-at-target", 0) == 0;
    return n;
  };
  for (int i = 0; i < 50 && ended() < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(ended(), 2u);
  // The backend closes TLS with close_notify; curl may close its socket
  // without reading it, and its kernel then sends an RST instead of a FIN
  // (the client's own doing, after the whole response). None may reach it.
  expect_clean_finish(2, /*client_aborts=*/1, /*closed_at_backend=*/2);
}

// The same over IPv6 (REDIRECT and SNAT of IPv6 headers, AF_INET6 snapshots).
TEST_F(HandoffLabTest, CurlOffloadServeReturnIpv6) {
  for (const std::string scheme : {"http", "https"}) {
    std::vector<std::string> argv{"/usr/bin/curl", "-sS", "-k", "--http1.1", "--max-time", "30"};
    for (int i = 0; i < 4; ++i) {
      const uint64_t size = i % 2 ? kLocalSize : kOffSize;
      argv.push_back(scheme + "://[" + lab_->lab().service_ip6() + "]/data/" + std::to_string(size) + "/" +
                     std::to_string(20 + i));
      argv.push_back("-o");
      argv.push_back(tmp_ + "/v6" + scheme + std::to_string(i));
    }
    argv.push_back("-w");
    argv.push_back("%{http_code} %{num_connects} %header{x-served-by} %header{x-request-seq}\\n");
    auto r = lab::run_in(client_ns_, argv, std::chrono::seconds(60));
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    ASSERT_EQ(r->exit_code, 0) << r->err;
    EXPECT_EQ(r->out, "200 1 backend0 1\n200 0 frontend 2\n200 0 backend0 3\n200 0 frontend 4\n") << scheme;
    for (int i = 0; i < 4; ++i)
      EXPECT_TRUE(read_file(tmp_ + "/v6" + scheme + std::to_string(i)) ==
                  expected(i % 2 ? kLocalSize : kOffSize, 20 + i))
          << scheme << " body " << i << " differs";
  }
  expect_clean_finish(4);
}

TEST_F(HandoffLabTest, PythonThousandCyclesOneConnectionHttp) {
  run_python("http", 1, 1000);
  expect_clean_finish(1000);
}

TEST_F(HandoffLabTest, PythonThousandCyclesOneConnectionHttps) {
  run_python("https", 1, 1000);
  expect_clean_finish(1000);
}

TEST_F(HandoffLabTest, PythonFiftyConcurrentConnectionsHttp) {
  run_python("http", 50, 3);
  expect_clean_finish(150);
}

TEST_F(HandoffLabTest, PythonFiftyConcurrentConnectionsHttps) {
  run_python("https", 50, 3);
  expect_clean_finish(150);
}

// wrk: keep-alive connections alternating an offloaded and a local GET,
// each body compared byte for byte in the Lua script.
TEST_F(HandoffLabTest, WrkKeepAliveHttpAndHttps) {
  {
    std::ofstream(tmp_ + "/off.bin", std::ios::binary) << expected(kOffSize, 1);
    std::ofstream(tmp_ + "/local.bin", std::ios::binary) << expected(kLocalSize, 1);
  }
  uint64_t backend_total = 0;
  for (const std::string scheme : {"http", "https"}) {
    auto r = lab::run_in(client_ns_,
                         {"/usr/bin/wrk", "-t2", "-c2", "-d3s", "--timeout", "5s", "-s",
                          kSystemDir + "/wrk_check.lua", url(scheme, kOffPath + "/1"), "--", kOffPath + "/1",
                          kLocalPath + "/1", tmp_},
                         std::chrono::seconds(60));
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    ASSERT_EQ(r->exit_code, 0) << r->out << r->err;
    auto at = r->out.find("check ok ");
    ASSERT_NE(at, std::string::npos) << r->out << r->err;
    unsigned long ok = 0, bad = 0, backend = 0, frontend = 0, e1 = 0, e2 = 0, e3 = 0, e4 = 0, e5 = 0;
    ASSERT_EQ(std::sscanf(r->out.c_str() + at, "check ok %lu bad %lu backend %lu frontend %lu errors %lu %lu %lu %lu %lu",
                          &ok, &bad, &backend, &frontend, &e1, &e2, &e3, &e4, &e5),
              9)
        << r->out;
    std::printf("wrk %s: %lu responses ok (%lu offloaded), %s\n", scheme.c_str(), ok, backend,
                r->out.substr(0, r->out.find("check ok")).c_str());
    EXPECT_GT(ok, 20u) << scheme;
    EXPECT_EQ(bad, 0u) << scheme;
    EXPECT_GT(backend, 10u) << scheme;
    EXPECT_GT(frontend, 10u) << scheme;
    EXPECT_EQ(e1 + e2 + e3 + e4 + e5, 0u) << scheme << " socket errors: " << r->out;
    // wrk sends the next request as soon as a response is in: it often
    // arrives while the connection goes back (BLOCK). Replayed, it costs
    // nothing; lost, it costs the client's ~200 ms loss-probe timeout, and
    // the mean latency was 50-70 ms before held segments were replayed.
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r->out, m, std::regex(R"(Latency\s+([0-9.]+)(us|ms|s))"))) << r->out;
    const double avg_ms = std::stod(m[1]) * (m[2] == "us" ? 0.001 : m[2] == "s" ? 1000.0 : 1.0);
    EXPECT_LT(avg_ms, 25.0) << scheme << ": mean latency " << avg_ms << " ms: requests wait for retransmissions";
    backend_total += backend;
  }
  // wrk stops with requests in flight and resets those connections (two per
  // run); the frontend's offload count is read from its records, once they
  // stop changing (an offer under way when wrk stopped ends within the
  // ready timeout, 200 ms).
  auto count_offloaded = [&] {
    uint64_t n = 0;
    for (const auto& r : lab_->records("frontend")) n += r.rfind("record offer offloaded", 0) == 0;
    return n;
  };
  uint64_t offloaded = count_offloaded();
  for (int i = 0; i < 10; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const uint64_t now = count_offloaded();
    if (now == offloaded) break;
    offloaded = now;
  }
  EXPECT_GE(offloaded, backend_total);
  expect_clean_finish(offloaded, /*client_aborts=*/4);
}

// A restarted frontend finds REDIRECT entries of its own (owner tag = its
// node tag) that no target holds: reconcile() removes exactly those, and
// leaves entries of other owners alone.
TEST_F(HandoffLabTest, ReconcileRemovesStaleRedirectsOfThisNodeOnly) {
  auto steer = take(steer::EbpfSteer::open({lab_->pin_dir("frontend"), "", {}}));
  ASSERT_TRUE(steer);
  const auto tag = uint64_t{node::tag_of_host("frontend")};
  auto flow = [&](uint16_t port) {
    return steer::FlowKey{take(steer::IpAddr::parse("198.18.0.2")), port,
                          take(steer::IpAddr::parse(lab_->service_ip())), 80};
  };
  const auto to = take(steer::IpAddr::parse(lab_->lab().backend(0).ip));
  const auto to_mac = take(steer::parse_mac(lab_->lab().backend(0).mac));
  const auto our_mac = take(steer::parse_mac(lab_->lab().frontend().mac));
  const auto now = steer::realtime_ns();
  ASSERT_OK(steer->insert(steer::SteerEntry::redirect(flow(50001), to, to_mac, our_mac, (tag << 48) | 1, now)));
  ASSERT_OK(steer->insert(steer::SteerEntry::redirect(flow(50002), to, to_mac, our_mac, (tag << 48) | 2, now)));
  const uint64_t foreign = ((tag ^ 0x5a5a) << 48) | 3;  // another node's tag
  ASSERT_OK(steer->insert(steer::SteerEntry::redirect(flow(50003), to, to_mac, our_mac, foreign, now)));

  auto line = lab_->reconcile_frontend();
  ASSERT_TRUE(line.ok()) << line.error().to_string();
  EXPECT_EQ(*line, "reconciled held=0 stale=2 unknown=0");
  auto left = take(steer->list());
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].entry.owner, foreign);
  ASSERT_OK(steer->remove(left[0].entry.flow));
  steer.reset();
  expect_clean_finish(0);
}

}  // namespace
}  // namespace xo::handoff::labtest
