// The offload lab: a client, a frontend and N backends (qa/lab), each host
// running xo-testserver with a handoff Node on its eth0 (eBPF steering pinned
// in a bpffs of the test's own), a fresh cluster CA per lab (qa/pki/xo-pki).
// The frontend offloads GETs by prefix (--offload) to backends, which serve
// and give the connection back.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/base/fd.h"
#include "common/base/result.h"
#include "qa/lab/lab.h"

namespace xo::steer::test {
class BpffsMount;
}

namespace xo::handoff::labtest {

// A process in a lab host whose stdout is read line by line on a thread
// (so a chatty process never blocks on a full pipe).
class Process {
 public:
  static Result<std::unique_ptr<Process>> spawn(const std::string& ns, const std::vector<std::string>& argv);
  ~Process();  // SIGKILL + reap if still running
  // Wait until a line starting with `prefix` appeared; returns it.
  Result<std::string> wait_line(const std::string& prefix, int timeout_ms);
  // SIGTERM, then wait for exit (SIGKILL after timeout). Returns the exit code.
  Result<int> terminate(int timeout_ms);
  std::vector<std::string> lines() const;
  Status signal(int sig);

 private:
  Process() = default;
  void read_loop();
  pid_t pid_ = -1;
  UniqueFd out_;
  std::thread reader_;
  mutable std::mutex mu_;
  std::vector<std::string> lines_;
  std::atomic<bool> eof_{false};
};

struct OffloadLabOptions {
  int backends = 1;
  std::vector<std::string> offload;  // frontend --offload rules, PREFIX=HOST
  int ready_timeout_ms = 0;          // 0: the Node's default
};

// Stats line of one stopped server ("stats k=v ..."), parsed.
using Stats = std::map<std::string, uint64_t>;

class OffloadLab {
 public:
  static Result<std::unique_ptr<OffloadLab>> up(const OffloadLabOptions& opts);
  ~OffloadLab();

  lab::Lab& lab() { return *lab_; }
  const std::string& service_ip() const { return lab_->service_ip(); }
  // Stop every server (SIGTERM) and return its stats by host.
  Result<std::map<std::string, Stats>> stop();
  // Handoff records ("record offer offloaded ... freeze=12 ...") printed so far, by host.
  std::vector<std::string> records(const std::string& host) const;
  std::vector<std::string> hosts() const;
  // SIGUSR1 to the frontend: it reconciles its REDIRECT entries with the
  // backends; returns its "reconciled held=N stale=N unknown=N" line.
  Result<std::string> reconcile_frontend(int timeout_ms = 5000);
  // The host's bpffs pin directory (its steering map).
  std::string pin_dir(const std::string& host) const;
  // Entries in the host's pinned steering map right now.
  Result<size_t> steering_entries(const std::string& host);

 private:
  OffloadLab() = default;
  std::unique_ptr<lab::Lab> lab_;
  std::unique_ptr<steer::test::BpffsMount> bpffs_;
  std::string pki_root_;
  std::map<std::string, std::unique_ptr<Process>> servers_;
};

// Microsecond value of `step` in a record line ("... go_sent=85 ..."), or -1.
long step_us(const std::string& record, const std::string& step);

}  // namespace xo::handoff::labtest
