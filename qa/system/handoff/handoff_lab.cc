#include "qa/system/handoff/handoff_lab.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "common/steer/ebpf_backend.h"
#include "qa/system/steer/steer_lab.h"

namespace xo::handoff::labtest {
namespace {

constexpr uint16_t kControlPort = 7700;

std::string self_dir_binary(const char* name) { return std::string(XO_BUILD_DIR) + "/" + name; }

}  // namespace

// ---- Process ---------------------------------------------------------------

Result<std::unique_ptr<Process>> Process::spawn(const std::string& ns, const std::vector<std::string>& argv) {
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return sys_error("pipe2");
  UniqueFd nsfd(::open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC));
  if (!nsfd) return sys_error("open netns " + ns);
  pid_t pid = ::fork();
  if (pid < 0) return sys_error("fork");
  if (pid == 0) {
    // setns, not `ip netns exec`: keeps our mounts (the bpffs pins).
    if (::setns(nsfd.get(), CLONE_NEWNET) != 0) _exit(126);
    ::dup2(pipefd[1], 1);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    _exit(127);
  }
  ::close(pipefd[1]);
  auto p = std::unique_ptr<Process>(new Process());
  p->pid_ = pid;
  p->out_ = UniqueFd(pipefd[0]);
  p->reader_ = std::thread([raw = p.get()] { raw->read_loop(); });
  return p;
}

void Process::read_loop() {
  std::string partial;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(out_.get(), buf, sizeof buf);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      break;
    }
    partial.append(buf, static_cast<size_t>(n));
    size_t nl;
    while ((nl = partial.find('\n')) != std::string::npos) {
      std::lock_guard lock(mu_);
      lines_.push_back(partial.substr(0, nl));
      partial.erase(0, nl + 1);
    }
  }
  eof_ = true;
}

Process::~Process() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  if (reader_.joinable()) reader_.join();
}

Result<std::string> Process::wait_line(const std::string& prefix, int timeout_ms) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    {
      std::lock_guard lock(mu_);
      for (const auto& l : lines_)
        if (l.compare(0, prefix.size(), prefix) == 0) return l;
    }
    if (eof_) return error("process exited before printing \"" + prefix + "\"", ECHILD);
    if (std::chrono::steady_clock::now() > until) return error("no \"" + prefix + "\" line in time", ETIMEDOUT);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

Result<int> Process::terminate(int timeout_ms) {
  if (pid_ <= 0) return error("not running", ECHILD);
  ::kill(pid_, SIGTERM);
  int status = 0;
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) break;
    if (std::chrono::steady_clock::now() > until) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
      if (reader_.joinable()) reader_.join();
      return error("did not stop on SIGTERM in time", ETIMEDOUT);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pid_ = -1;
  if (reader_.joinable()) reader_.join();
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

Status Process::signal(int sig) {
  if (pid_ <= 0 || ::kill(pid_, sig) != 0) return sys_error("kill");
  return {};
}

std::vector<std::string> Process::lines() const {
  std::lock_guard lock(mu_);
  return lines_;
}

// ---- OffloadLab ------------------------------------------------------------

Result<std::unique_ptr<OffloadLab>> OffloadLab::up(const OffloadLabOptions& opts) {
  auto l = std::unique_ptr<OffloadLab>(new OffloadLab());
  lab::LabOptions lo;
  lo.backends = opts.backends;
  XO_ASSIGN_OR_RETURN(auto lab, lab::Lab::up(lo));
  l->lab_ = std::make_unique<lab::Lab>(std::move(lab));
  XO_ASSIGN_OR_RETURN(l->bpffs_, steer::test::BpffsMount::create(l->lab_->name()));

  // A fresh cluster CA with a certificate per host.
  std::string tmpl = (std::filesystem::temp_directory_path() / "xo-handoff-lab.XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) return sys_error("mkdtemp");
  l->pki_root_ = tmpl;
  const std::string pki = tmpl + "/pki";
  const std::string script = XO_PKI_SCRIPT;
  if (std::system((script + " init '" + pki + "' >/dev/null").c_str()) != 0) return error("xo-pki init failed");
  std::vector<std::string> hosts{"frontend"};
  for (int k = 0; k < opts.backends; ++k) hosts.push_back("backend" + std::to_string(k));
  for (const auto& h : hosts)
    if (std::system((script + " host '" + pki + "' '" + h + "' >/dev/null").c_str()) != 0)
      return error("xo-pki host " + h + " failed");

  auto peer_arg = [&](const lab::Host& h) {
    return h.name + "=" + h.ip + ":" + std::to_string(kControlPort) + "," + h.ip + "," + h.ip6 + "," + h.mac;
  };
  for (const auto& name : hosts) {
    const lab::Host* h = l->lab_->find(name);
    if (!h) return error("lab has no host " + name);
    std::vector<std::string> argv{self_dir_binary("qa/server/xo-testserver"),
                                  "--name", name, "--port", "80", "--https-port", "443",
                                  "--node-id", name, "--pki", pki,
                                  "--control", h->ip + ":" + std::to_string(kControlPort),
                                  "--pin-dir", l->bpffs_->pin_dir(name), "--dev", "eth0",
                                  "--data-ip", h->ip, "--data-ip", h->ip6, "--records", "1"};
    if (name == "frontend") {
      for (int k = 0; k < opts.backends; ++k) {
        argv.push_back("--peer");
        argv.push_back(peer_arg(l->lab_->backend(k)));
      }
      for (const auto& r : opts.offload) {
        argv.push_back("--offload");
        argv.push_back(r);
      }
      if (opts.ready_timeout_ms > 0) {
        argv.push_back("--ready-timeout-ms");
        argv.push_back(std::to_string(opts.ready_timeout_ms));
      }
    } else {
      argv.push_back("--peer");
      argv.push_back(peer_arg(l->lab_->frontend()));
    }
    XO_ASSIGN_OR_RETURN(l->servers_[name], Process::spawn(h->ns, argv));
  }
  for (auto& [name, p] : l->servers_) {
    auto ready = p->wait_line("ready ", 20000);
    if (!ready.ok()) return annotate(ready.take_error(), "xo-testserver on " + name);
  }
  return l;
}

OffloadLab::~OffloadLab() {
  servers_.clear();  // SIGKILL whatever still runs
  bpffs_.reset();
  lab_.reset();
  std::error_code ec;
  if (!pki_root_.empty()) std::filesystem::remove_all(pki_root_, ec);
}

Result<std::map<std::string, Stats>> OffloadLab::stop() {
  std::map<std::string, Stats> all;
  // Backends first: a target still holding a connection would otherwise lose
  // its frontend mid-return.
  std::vector<std::string> order;
  for (auto& [name, p] : servers_)
    if (name != "frontend") order.push_back(name);
  order.push_back("frontend");
  for (const auto& name : order) {
    auto& p = servers_.at(name);
    XO_ASSIGN_OR_RETURN(int code, p->terminate(10000));
    if (code != 0) return error("xo-testserver on " + name + " exited with " + std::to_string(code));
    XO_ASSIGN_OR_RETURN(std::string line, p->wait_line("stats ", 1000));
    std::istringstream in(line.substr(6));
    std::string kv;
    Stats s;
    while (in >> kv) {
      auto eq = kv.find('=');
      if (eq != std::string::npos) s[kv.substr(0, eq)] = std::strtoull(kv.c_str() + eq + 1, nullptr, 10);
    }
    all[name] = std::move(s);
  }
  return all;
}

std::vector<std::string> OffloadLab::records(const std::string& host) const {
  std::vector<std::string> out;
  auto it = servers_.find(host);
  if (it == servers_.end()) return out;
  for (auto& l : it->second->lines())
    if (l.compare(0, 7, "record ") == 0) out.push_back(l);
  return out;
}

Result<std::string> OffloadLab::reconcile_frontend(int timeout_ms) {
  auto& p = servers_.at("frontend");
  auto count = [&] {
    size_t n = 0;
    for (const auto& l : p->lines()) n += l.rfind("reconciled ", 0) == 0;
    return n;
  };
  const size_t before = count();
  XO_TRY(p->signal(SIGUSR1));
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (count() == before) {
    if (std::chrono::steady_clock::now() > until) return error("no reconcile answer in time", ETIMEDOUT);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::string last;
  for (const auto& l : p->lines())
    if (l.rfind("reconciled ", 0) == 0) last = l;
  return last;
}

std::vector<std::string> OffloadLab::hosts() const {
  std::vector<std::string> out;
  for (const auto& [name, p] : servers_) out.push_back(name);
  return out;
}

std::string OffloadLab::pin_dir(const std::string& host) const { return bpffs_->pin_dir(host); }

Result<size_t> OffloadLab::steering_entries(const std::string& host) {
  XO_ASSIGN_OR_RETURN(auto steer, steer::EbpfSteer::open({bpffs_->pin_dir(host), "", {}}));
  XO_ASSIGN_OR_RETURN(auto list, steer->list());
  return list.size();
}

long step_us(const std::string& record, const std::string& step) {
  auto pos = record.find(" " + step + "=");
  if (pos == std::string::npos) return -1;
  return std::strtol(record.c_str() + pos + step.size() + 2, nullptr, 10);
}

}  // namespace xo::handoff::labtest
