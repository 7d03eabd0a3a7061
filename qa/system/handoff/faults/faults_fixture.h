// The fixture of the handoff fault tests (issue 5): an OffloadLab
// (qa/system/handoff) whose frontend offloads GETs of /data/1* to backend0,
// plus what the faults need — kill/stop/restart a host's xo-testserver, cut
// its control channel with nft, fill its steering map, HTTPS through curl —
// and the checks of what is left behind: client sockets, steering entries,
// RSTs on the client's wire. Every test has its own lab (namespaces, bpffs,
// CA): parallel-safe; every wait is bounded.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "common/base/testing.h"
#include "common/steer/bpf_adapter.h"
#include "common/steer/bpf_codec.h"
#include "common/steer/ebpf_backend.h"
#include "qa/lab/netns.h"
#include "qa/lab/packet_counter.h"
#include "qa/lab/run.h"
#include "qa/lab/sockets.h"
#include "qa/server/client.h"
#include "qa/server/content.h"
#include "qa/system/handoff/faults/fault_support.h"
#include "qa/system/handoff/handoff_lab.h"
#include "qa/system/steer/steer_lab.h"

namespace xo::handoff::faulttest {

using namespace std::chrono_literals;
using labtest::OffloadLab;
using labtest::OffloadLabOptions;
using labtest::Process;

inline constexpr uint16_t kControlPort = 7700;  // OffloadLab's control port on every host

inline bool body_ok(const std::string& body, uint64_t seed) {
  return testserver::content_mismatch(seed, 0, std::span(reinterpret_cast<const uint8_t*>(body.data()), body.size())) ==
         -1;
}

inline size_t count_prefix(const std::vector<std::string>& lines, const std::string& prefix) {
  size_t n = 0;
  for (const auto& l : lines) n += l.compare(0, prefix.size(), prefix) == 0;
  return n;
}

inline std::string join(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) s += "  " + l + "\n";
  return s;
}


class HandoffFaults : public ::testing::Test {
 protected:
  // The lab, with /data/1* offloaded to backend0. Remembers every server's
  // command line (to restart it after a kill).
  void Up(int ready_timeout_ms = 0) {
    ::signal(SIGPIPE, SIG_IGN);  // a peer closing on us is an outcome to check, not a crash
    OffloadLabOptions opts;
    opts.backends = 1;
    opts.offload = {"/data/1=backend0"};
    opts.ready_timeout_ms = ready_timeout_ms;
    auto up = OffloadLab::up(opts);
    ASSERT_TRUE(up.ok()) << up.error().to_string();
    lab_ = std::move(*up);
    for (const char* host : {"frontend", "backend0"}) {
      ASSERT_OK_AND(pid_t pid, server_pid(ns(host)));
      ASSERT_OK_AND(argv_[host], cmdline_of(pid));
    }
    ASSERT_OK_AND(counter_, lab::PacketCounter::start(ns("client")));
  }

  const std::string& ns(const std::string& host) const { return lab_->lab().find(host)->ns; }
  std::string pin_dir(const std::string& host) { return flag_value(argv_[host], "--pin-dir"); }

  void Signal(const std::string& host, int sig) {
    ASSERT_OK_AND(pid_t pid, server_pid(ns(host)));
    ASSERT_EQ(::kill(pid, sig), 0) << "kill " << host;
  }
  // SIGKILL, and wait (bounded) until the process is gone.
  void Kill(const std::string& host) {
    ASSERT_OK_AND(pid_t pid, server_pid(ns(host)));
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    for (int i = 0; i < 200 && alive(pid); ++i) std::this_thread::sleep_for(10ms);
    ASSERT_FALSE(alive(pid)) << host << " survived SIGKILL";
  }
  // Start the host's server again with the same command line (same pin dir:
  // it adopts its pinned programs and maps). other_http_ports: listen for
  // HTTP(S) on 8080/8443 instead — the test server of a backend listens on
  // the port its restored sockets use, and a killed one's offloaded
  // connections leave TIME-WAIT sockets there that block a new listener.
  void Restart(const std::string& host, bool other_http_ports = false) {
    auto argv = argv_[host];
    if (other_http_ports)
      for (size_t i = 0; i + 1 < argv.size(); ++i) {
        if (argv[i] == "--port") argv[i + 1] = "8080";
        if (argv[i] == "--https-port") argv[i + 1] = "8443";
      }
    ASSERT_OK_AND(restarted_[host], Process::spawn(ns(host), argv));
    ASSERT_OK(restarted_[host]->wait_line("ready ", 20000));
  }

  // Handoff records of a host: the lab's process, then a restarted one.
  std::vector<std::string> Records(const std::string& host) {
    auto out = lab_->records(host);
    if (auto it = restarted_.find(host); it != restarted_.end())
      for (const auto& l : it->second->lines())
        if (l.compare(0, 7, "record ") == 0) out.push_back(l);
    return out;
  }
  // The records once `prefix` begins at least `n` of them (or `within`
  // passed): a host prints a record before its client gets the response, but
  // the lines reach this process through a reader thread that may lag.
  std::vector<std::string> RecordsWith(const std::string& host, const std::string& prefix, size_t n,
                                       std::chrono::milliseconds within = std::chrono::seconds(2)) {
    const auto until = std::chrono::steady_clock::now() + within;
    auto out = Records(host);
    while (count_prefix(out, prefix) < n && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      out = Records(host);
    }
    return out;
  }

  // Client connections on a host (the control channel on :7700 is not one).
  std::vector<lab::SocketRow> FlowSockets(const std::string& host) {
    std::vector<lab::SocketRow> left;
    auto rows = lab::connection_sockets(ns(host));
    if (!rows.ok()) {
      ADD_FAILURE() << rows.error().to_string();
      return left;
    }
    const std::string ctl = ":" + std::to_string(kControlPort);
    for (auto& row : *rows)
      if (row.local.find(ctl) == std::string::npos && row.peer.find(ctl) == std::string::npos) left.push_back(row);
    return left;
  }
  void ExpectNoFlowSockets(const std::vector<std::string>& hosts, std::chrono::milliseconds within = 5s) {
    for (const auto& host : hosts) {
      std::vector<lab::SocketRow> left;
      const auto until = std::chrono::steady_clock::now() + within;
      do {
        left = FlowSockets(host);
        if (left.empty()) break;
        std::this_thread::sleep_for(50ms);
      } while (std::chrono::steady_clock::now() < until);
      EXPECT_TRUE(left.empty()) << host << " still holds client connections: " << lab::to_string(left);
    }
  }
  // Polls until the host's pinned steering map holds `want` entries.
  size_t WaitEntries(const std::string& host, size_t want, std::chrono::milliseconds within) {
    size_t n = 0;
    const auto until = std::chrono::steady_clock::now() + within;
    do {
      auto r = lab_->steering_entries(host);
      if (!r.ok()) {
        ADD_FAILURE() << host << ": " << r.error().to_string();
        return n;
      }
      n = *r;
      if (n == want) break;
      std::this_thread::sleep_for(50ms);
    } while (std::chrono::steady_clock::now() < until);
    return n;
  }
  void ExpectNoEntries(const std::vector<std::string>& hosts, std::chrono::milliseconds within = 5s) {
    for (const auto& host : hosts) {
      if (WaitEntries(host, 0, within) == 0) continue;
      std::string listing;
      if (auto table = OpenTable(host); table.ok())
        if (auto entries = (*table)->list(); entries.ok())
          for (const auto& e : *entries)
            listing += "  " + e.entry.to_string() + " packets=" + std::to_string(e.stats.packets) + "\n";
      ADD_FAILURE() << host << " kept steering entries:\n" << listing << "records:\n" << join(Records(host));
    }
  }
  void ExpectNoRsts() {
    auto c = counter_->stop();
    EXPECT_GT(c.tcp_in, 0u) << "the wire counter saw nothing";
    EXPECT_EQ(c.rst_in + c.rst_out, 0u) << "RSTs on the client's wire (in " << c.rst_in << ", out " << c.rst_out << ")";
    EXPECT_EQ(c.dropped, 0u) << "the wire counter lost frames";
  }

  // A keep-alive client in the client namespace (stalls fail after 20 s).
  Result<testserver::Client> Connect(uint16_t port = 80) {
    XO_ASSIGN_OR_RETURN(auto scope, lab::NetnsScope::enter(ns("client")));
    return testserver::Client::connect(lab_->service_ip(), port, 20);
  }

  // GET on `client`; checks status and bytes; returns who served it.
  std::string Get(testserver::Client& client, uint64_t size, uint64_t seed) {
    auto r = client.get("/data/" + std::to_string(size) + "/" + std::to_string(seed));
    if (!r.ok()) {
      ADD_FAILURE() << "GET " << size << "/" << seed << ": " << r.error().to_string();
      return "";
    }
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body.size(), size);
    EXPECT_TRUE(body_ok(r->body, seed)) << "wrong bytes in /data/" << size << "/" << seed;
    return r->header("x-served-by");
  }

  // HTTPS GETs of /data/SIZE/SEED, in order, on ONE keep-alive connection
  // (curl in the client namespace). Checks status, bytes and the single
  // connection; returns who served each.
  std::vector<std::string> CurlHttps(const std::vector<std::pair<uint64_t, uint64_t>>& gets) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "xo-faults-curl.XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) {
      ADD_FAILURE() << "mkdtemp";
      return {};
    }
    const std::string dir = tmpl;
    std::vector<std::string> argv{"curl", "-sS", "-k", "--http1.1", "--max-time", "60", "-D", dir + "/headers",
                                  "-w", "%{num_connects}\\n"};
    for (size_t i = 0; i < gets.size(); ++i)
      argv.insert(argv.end(), {"-o", dir + "/body" + std::to_string(i),
                               "https://" + lab_->service_ip() + "/data/" + std::to_string(gets[i].first) + "/" +
                                   std::to_string(gets[i].second)});
    std::vector<std::string> by;
    auto out = lab::run_ok(ns("client"), argv, 90s);
    if (!out.ok()) {
      ADD_FAILURE() << "curl: " << out.error().to_string();
    } else {
      std::string want = "1\n";
      for (size_t i = 1; i < gets.size(); ++i) want += "0\n";
      EXPECT_EQ(*out, want) << "curl did not use one connection";
      std::ifstream h(dir + "/headers");
      for (std::string line; std::getline(h, line);)
        if (line.rfind("X-Served-By: ", 0) == 0 || line.rfind("x-served-by: ", 0) == 0) {
          std::string v = line.substr(13);
          if (!v.empty() && v.back() == '\r') v.pop_back();
          by.push_back(v);
        }
      for (size_t i = 0; i < gets.size(); ++i) {
        std::ifstream b(dir + "/body" + std::to_string(i), std::ios::binary);
        std::string body((std::istreambuf_iterator<char>(b)), {});
        EXPECT_EQ(body.size(), gets[i].first) << "response " << i;
        EXPECT_TRUE(body_ok(body, gets[i].second)) << "wrong bytes in response " << i;
      }
    }
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    by.resize(gets.size());
    return by;
  }

  // Fill backend0's pinned flow map with a stranger's entries (an operator's
  // writes through the pin); returns how many went in. Full: the next insert fails.
  uint32_t FillTargetTable(steer::EbpfSteer& table) {
    uint32_t inserted = 0;
    Status full;
    for (uint32_t i = 0; i < 70000; ++i) {
      full = table.insert(steer::SteerEntry::block(JunkKey(i), 0xfa017, steer::realtime_ns()));
      if (!full.ok()) break;
      ++inserted;
    }
    EXPECT_FALSE(full.ok()) << "the map never filled up";
    EXPECT_EQ(inserted, static_cast<uint32_t>(XO_STEER_MAX_FLOWS)) << (full.ok() ? "" : full.error().to_string());
    return inserted;
  }
  static steer::FlowKey JunkKey(uint32_t i) {
    steer::FlowKey k;
    k.src = *steer::IpAddr::parse("198.19." + std::to_string((i >> 8) & 0xff) + "." + std::to_string(i & 0xff));
    k.src_port = static_cast<uint16_t>(1000 + (i >> 16));
    k.dst = *steer::IpAddr::parse("198.19.255.1");
    k.dst_port = 9;
    return k;
  }
  Result<std::unique_ptr<steer::EbpfSteer>> OpenTable(const std::string& host) {
    XO_ASSIGN_OR_RETURN(auto scope, lab::NetnsScope::enter(ns(host)));
    return steer::EbpfSteer::open({pin_dir(host), "", {}});
  }

  // backend0 is SIGKILLed in a 100 MB offloaded body: the client sees a
  // correct prefix, then the end of the connection (never wrong bytes, never
  // a hang). The frontend's REDIRECT outlives the target; reconcile keeps it
  // while backend0 is unreachable and removes it once a restarted backend0
  // says it no longer holds the flow.
  void KillTargetMidResponseRestartAndReconcile() {
    std::optional<RawGet> get;
    {
      ASSERT_OK_AND(auto g, RawGet::start(ns("client"), lab_->service_ip(), 80, "/data/100000000/81"));
      get.emplace(std::move(g));
    }
    ASSERT_OK(get->read_body_until(1000000, 10s));
    EXPECT_EQ(get->now().served_by, "backend0");
    Kill("backend0");
    if (HasFatalFailure()) return;
    auto out = get->finish(10s, 10s);
    EXPECT_FALSE(out.stalled) << "the client hung after " << out.body.size() << " body bytes";
    EXPECT_TRUE(body_ok(out.body, 81)) << "wrong bytes after the target died";
    EXPECT_TRUE(out.closed) << "the connection did not end after the target died";
    std::printf("client got %zu of 100000000 body bytes, then %s\n", out.body.size(),
                out.reset ? "a reset" : out.closed ? "EOF" : "nothing");
    // The client closes; the dead target's orphaned socket (the kernel
    // finishes it: the pinned SNAT still applies) goes away.
    get.reset();
    ExpectNoFlowSockets({"frontend", "backend0", "client"}, 10s);

    EXPECT_EQ(WaitEntries("frontend", 1, 1s), 1u) << "the frontend's REDIRECT should survive until reconcile";
    ASSERT_OK_AND(auto r1, lab_->reconcile_frontend());
    EXPECT_EQ(r1, "reconciled held=0 stale=0 unknown=1") << "an unreachable target's flows are kept and asked again";
    Restart("backend0", /*other_http_ports=*/true);
    if (HasFatalFailure()) return;
    // The frontend reconnects with backoff (≤ 1 s); until then backend0 is
    // still "unknown" and reconcile is simply asked again.
    std::string r2;
    for (int i = 0; i < 25; ++i) {
      ASSERT_OK_AND(r2, lab_->reconcile_frontend());
      if (r2.find("unknown=0") != std::string::npos) break;
      std::this_thread::sleep_for(200ms);
    }
    EXPECT_EQ(r2, "reconciled held=0 stale=1 unknown=0");
    EXPECT_EQ(WaitEntries("frontend", 0, 2s), 0u) << "reconcile did not remove the stale REDIRECT";
  }

  std::unique_ptr<OffloadLab> lab_;
  std::map<std::string, std::vector<std::string>> argv_;
  std::map<std::string, std::unique_ptr<Process>> restarted_;
  std::unique_ptr<lab::PacketCounter> counter_;
};

#define UP(...)                     \
  Up(__VA_ARGS__);                  \
  if (HasFatalFailure()) return

// std::optional<testserver::Client> NAME, connected to the service (port 80).
#define CONNECT(name)                                                        \
  std::optional<testserver::Client> name;                                    \
  {                                                                          \
    auto connected_ = Connect();                                             \
    ASSERT_TRUE(connected_.ok()) << connected_.error().to_string();          \
    name.emplace(std::move(*connected_));                                    \
  }

// NftRules NAME cutting backend0's established control connections with the frontend.
#define CUT(name, let_one_in, drop_out)                                                                   \
  auto conns_##name = control_connections(ns("backend0"), lab_->lab().frontend().ip, kControlPort);       \
  ASSERT_TRUE(conns_##name.ok()) << conns_##name.error().to_string();                                     \
  ASSERT_FALSE(conns_##name->empty()) << "no control connection to cut";                                  \
  ASSERT_OK_AND(auto name, NftRules::install(ns("backend0"), control_cut_rules(lab_->lab().frontend().ip, \
                                                                               *conns_##name, let_one_in, drop_out)))

#define KILL(host)                  \
  Kill(host);                       \
  if (HasFatalFailure()) return
#define RESTART(...)                \
  Restart(__VA_ARGS__);             \
  if (HasFatalFailure()) return

// The fault injectors of a host's NIC. tc detach works in the calling
// thread's namespace, so they are freed inside the host's namespace (also
// when a test ends early), never in the root namespace.
struct InjectorsIn {
  std::string ns;
  std::unique_ptr<steer::BpfFaultInjector> ingress, egress;
  void detach() {
    if (!ingress && !egress) return;
    auto scope = lab::NetnsScope::enter(ns);
    if (!scope.ok()) {  // the lab is gone: so are the hooks
      (void)ingress.release();
      (void)egress.release();
      return;
    }
    ingress.reset();
    egress.reset();
  }
  ~InjectorsIn() { detach(); }
};

}  // namespace xo::handoff::faulttest
