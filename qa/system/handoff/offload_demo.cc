// offload_demo: the main job's lab demo once the offload protocol exists
// (qa/demo/offload). A client, a frontend and two backends in network
// namespaces; xo-testserver with a handoff Node on each host; the frontend
// offloads GETs under /data/1 to backend0 and under /data/2 to backend1.
// curl in the client namespace makes six requests on one keep-alive
// connection, over HTTP and then HTTPS; each offloaded response is served by a
// backend straight to the client and the connection comes back.
// Prints who answered what, whether every byte was right, the offload and
// return times from the Nodes' traces, the RSTs seen on the client's wire and
// what is left on the hosts. Exit code 0 and "RESULT: ok" only if all is well.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "qa/lab/packet_counter.h"
#include "qa/lab/run.h"
#include "qa/lab/sockets.h"
#include "qa/server/content.h"
#include "qa/system/handoff/handoff_lab.h"

namespace {

using namespace xo;
using handoff::labtest::OffloadLab;

struct Request {
  uint64_t size, seed;
};
// /data/1… → backend0, /data/2… → backend1, others stay on the frontend.
const std::vector<Request> kRequests = {
    {1'000'000, 1}, {50'000, 2}, {2'000'000, 3}, {300'000, 4}, {10'000'000, 5}, {40'000, 6}};

std::string expected_host(uint64_t size) {
  std::string s = std::to_string(size);
  return s[0] == '1' ? "backend0" : s[0] == '2' ? "backend1" : "frontend";
}

bool body_ok(const std::string& path, const Request& r) {
  std::ifstream in(path, std::ios::binary);
  std::string got((std::istreambuf_iterator<char>(in)), {});
  return got.size() == r.size &&
         testserver::content_mismatch(r.seed, 0, std::span(reinterpret_cast<const uint8_t*>(got.data()), got.size())) ==
             -1;
}

long percentile(std::vector<long> v, double p) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

int fail(const std::string& what) {
  std::fprintf(stderr, "offload demo: %s\n", what.c_str());
  std::printf("RESULT: FAILED (%s)\n", what.c_str());
  return 1;
}

}  // namespace

int main() {
  auto up = OffloadLab::up({.backends = 2, .offload = {"/data/1=backend0", "/data/2=backend1"}});
  if (!up.ok()) return fail("lab: " + up.error().to_string());
  auto lab = std::move(*up);
  const std::string client_ns = lab->lab().client().ns;
  auto counter = lab::PacketCounter::start(client_ns);
  if (!counter.ok()) return fail("packet counter: " + counter.error().to_string());

  std::string tmp = (std::filesystem::temp_directory_path() / "xo-offload-demo.XXXXXX").string();
  if (!::mkdtemp(tmp.data())) return fail("mkdtemp");
  struct RemoveDir {
    std::string path;
    ~RemoveDir() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  } remove_tmp{tmp};

  std::printf("\nXO lab demo: GETs offloaded from a frontend to the backends that serve them\n");
  std::printf("lab %s: client %s, service address %s (frontend), backend0, backend1\n", lab->lab().name().c_str(),
              lab->lab().client().ip.c_str(), lab->service_ip().c_str());
  std::printf("frontend rules: /data/1* -> backend0, /data/2* -> backend1 (NAT mode, eBPF redirect + source rewrite)\n");

  bool all_ok = true;
  for (const std::string scheme : {"http", "https"}) {
    std::vector<std::string> argv{"/usr/bin/curl", "-sS", "-k", "--http1.1", "--max-time", "60"};
    for (size_t i = 0; i < kRequests.size(); ++i) {
      argv.push_back(scheme + "://" + lab->service_ip() + "/data/" + std::to_string(kRequests[i].size) + "/" +
                     std::to_string(kRequests[i].seed));
      argv.push_back("-o");
      argv.push_back(tmp + "/" + scheme + std::to_string(i));
    }
    argv.push_back("-w");
    argv.push_back("%{http_code} %{num_connects} %header{x-served-by}\\n");
    auto start = std::chrono::steady_clock::now();
    auto r = lab::run_in(client_ns, argv, std::chrono::seconds(120));
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!r.ok()) return fail("curl: " + r.error().to_string());
    std::printf("\ncurl over %s, one keep-alive connection, %zu requests (%.2f s)%s\n", scheme.c_str(),
                kRequests.size(), secs, r->exit_code ? (" — curl failed: " + r->err).c_str() : "");
    all_ok &= r->exit_code == 0;
    std::istringstream lines(r->out);
    int connects = 0;
    for (size_t i = 0; i < kRequests.size(); ++i) {
      std::string line, code, host;
      int nc = 0;
      std::getline(lines, line);
      std::istringstream(line) >> code >> nc >> host;
      connects += nc;
      bool bytes = body_ok(tmp + "/" + scheme + std::to_string(i), kRequests[i]);
      bool right_host = host == expected_host(kRequests[i].size);
      all_ok &= code == "200" && bytes && right_host;
      std::printf("  GET /data/%-11s %-4s served by %-9s %s%s\n",
                  (std::to_string(kRequests[i].size) + "/" + std::to_string(kRequests[i].seed)).c_str(), code.c_str(),
                  host.c_str(), bytes ? "every byte right" : "WRONG BYTES",
                  right_host ? "" : (" (expected " + expected_host(kRequests[i].size) + ")").c_str());
    }
    std::printf("  TCP connections opened by curl: %d\n", connects);
    all_ok &= connects == 1;
  }

  std::vector<long> offload_us, return_us;
  size_t other = 0;
  for (const auto& host : lab->hosts())
    for (const auto& rec : lab->records(host)) {
      if (rec.rfind("record offer offloaded", 0) == 0) offload_us.push_back(handoff::labtest::step_us(rec, "go_sent"));
      else if (rec.rfind("record give_back returned", 0) == 0)
        return_us.push_back(handoff::labtest::step_us(rec, "release"));
      else if (rec.find(" accepted ") == std::string::npos && rec.find(" taken-back ") == std::string::npos) {
        ++other;
        std::printf("  %s: %s\n", host.c_str(), rec.c_str());
      }
    }
  std::printf("\nhandoffs: %zu offloads (freeze .. GO sent: p50 %ld us, max %ld us), %zu returns (freeze .. DONE: "
              "p50 %ld us, max %ld us), %zu other outcomes\n",
              offload_us.size(), percentile(offload_us, 0.5), percentile(offload_us, 1.0), return_us.size(),
              percentile(return_us, 0.5), percentile(return_us, 1.0), other);
  size_t offloadable = 0;
  for (const auto& r : kRequests) offloadable += expected_host(r.size) != "frontend";
  all_ok &= offload_us.size() == 2 * offloadable && return_us.size() == 2 * offloadable && other == 0;

  auto wire = counter.value()->stop();
  std::printf("client's wire: %lu TCP segments in, %lu out, RST in %lu, RST out %lu\n",
              static_cast<unsigned long>(wire.tcp_in), static_cast<unsigned long>(wire.tcp_out),
              static_cast<unsigned long>(wire.rst_in), static_cast<unsigned long>(wire.rst_out));
  all_ok &= wire.rst_in == 0 && wire.rst_out == 0 && wire.dropped == 0;

  // A backend keeps its entries of a returned flow for close_linger (2 s) so
  // stray segments are dropped, not answered with an RST.
  std::this_thread::sleep_for(std::chrono::milliseconds(2200));
  size_t sockets = 0, entries = 0;
  for (const auto& host : lab->hosts()) {
    auto rows = lab::connection_sockets(lab->lab().find(host)->ns);
    if (rows.ok())
      for (const auto& row : *rows)
        sockets += row.local.find(":7700") == std::string::npos && row.peer.find(":7700") == std::string::npos;
    auto n = lab->steering_entries(host);
    if (n.ok()) entries += *n;
    else all_ok = false;
  }
  std::printf("left behind: %zu client connection sockets, %zu steering entries (all hosts)\n", sockets, entries);
  all_ok &= sockets == 0 && entries == 0;
  auto stats = lab->stop();
  if (!stats.ok()) return fail("stopping the servers: " + stats.error().to_string());
  std::printf("\nRESULT: %s\n", all_ok ? "ok" : "FAILED");
  return all_ok ? 0 : 1;
}
