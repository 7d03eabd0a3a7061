#include "qa/lab/run.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <utility>

#include "qa/lab/netns.h"

namespace xo::lab {
namespace {

using Clock = std::chrono::steady_clock;

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Everything the child needs is prepared before fork(): after fork() in a
// threaded process only async-signal-safe calls are allowed.
struct Prepared {
  std::vector<std::string> args;
  std::vector<char*> argv;
  std::string nspath;
};

Prepared prepare(const std::string& ns, const std::vector<std::string>& argv) {
  Prepared p{argv, {}, ns.empty() ? std::string() : netns_path(ns)};
  for (auto& a : p.args) p.argv.push_back(a.data());
  p.argv.push_back(nullptr);
  return p;
}

[[noreturn]] void child_exec(const Prepared& p, int in_fd, int out_fd, int err_fd) {
  if (in_fd >= 0) ::dup2(in_fd, 0);
  if (out_fd >= 0) ::dup2(out_fd, 1);
  if (err_fd >= 0) ::dup2(err_fd, 2);
  // Die with the parent: a test killed by its timeout leaves no client behind.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (!p.nspath.empty()) {
    int nsfd = ::open(p.nspath.c_str(), O_RDONLY | O_CLOEXEC);
    if (nsfd < 0 || ::setns(nsfd, CLONE_NEWNET) != 0) _exit(126);
  }
  ::execvp(p.argv[0], p.argv.data());
  _exit(127);
}

Result<std::pair<UniqueFd, UniqueFd>> make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return sys_error("pipe2");
  return std::pair{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

Result<int> wait_pid(pid_t pid, Clock::time_point deadline) {
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return decode_status(status);
    if (r < 0 && errno != EINTR) return sys_error("waitpid");
    if (Clock::now() >= deadline) return error("timed out", ETIMEDOUT);
    ::usleep(1000);
  }
}

}  // namespace

Result<RunResult> run_in(const std::string& ns, const std::vector<std::string>& argv,
                         std::chrono::milliseconds timeout, const std::string& stdin_data) {
  if (argv.empty()) return error("run_in: empty argv");
  Prepared p = prepare(ns, argv);
  XO_ASSIGN_OR_RETURN(auto in, make_pipe());
  XO_ASSIGN_OR_RETURN(auto out, make_pipe());
  XO_ASSIGN_OR_RETURN(auto err, make_pipe());
  pid_t pid = ::fork();
  if (pid < 0) return sys_error("fork");
  if (pid == 0) child_exec(p, in.first.get(), out.second.get(), err.second.get());
  in.first.reset();
  out.second.reset();
  err.second.reset();
  // Small inputs only (nft/ip batches): fits in the pipe buffer.
  if (!stdin_data.empty()) {
    ssize_t w = ::write(in.second.get(), stdin_data.data(), stdin_data.size());
    (void)w;
  }
  in.second.reset();

  RunResult res;
  auto deadline = Clock::now() + timeout;
  pollfd pfds[2] = {{out.first.get(), POLLIN, 0}, {err.first.get(), POLLIN, 0}};
  std::string* sinks[2] = {&res.out, &res.err};
  int open_fds = 2;
  bool timed_out = false;
  while (open_fds > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    int n = ::poll(pfds, 2, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    for (int i = 0; i < 2; ++i) {
      if (pfds[i].fd < 0 || !(pfds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[65536];
      ssize_t r = ::read(pfds[i].fd, buf, sizeof buf);
      if (r > 0) {
        sinks[i]->append(buf, static_cast<size_t>(r));
      } else if (r == 0 || errno != EINTR) {
        pfds[i].fd = -1;
        --open_fds;
      }
    }
  }
  if (timed_out) ::kill(pid, SIGKILL);
  auto code = wait_pid(pid, timed_out ? Clock::now() + std::chrono::seconds(5) : deadline);
  if (!code.ok()) {
    ::kill(pid, SIGKILL);
    (void)wait_pid(pid, Clock::now() + std::chrono::seconds(5));
    return error(argv[0] + ": did not finish in time", ETIMEDOUT);
  }
  if (timed_out) return error(argv[0] + ": killed after timeout", ETIMEDOUT);
  res.exit_code = *code;
  return res;
}

Result<std::string> run_ok(const std::string& ns, const std::vector<std::string>& argv,
                           std::chrono::milliseconds timeout, const std::string& stdin_data) {
  XO_ASSIGN_OR_RETURN(RunResult r, run_in(ns, argv, timeout, stdin_data));
  if (!r.ok()) {
    std::string cmd;
    for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
    return error(cmd + " (in " + (ns.empty() ? "root ns" : ns) + ") exited " +
                 std::to_string(r.exit_code) + ": " + r.err);
  }
  return std::move(r.out);
}

Result<Child> Child::spawn(const std::string& ns, const std::vector<std::string>& argv) {
  if (argv.empty()) return error("Child::spawn: empty argv");
  Prepared p = prepare(ns, argv);
  XO_ASSIGN_OR_RETURN(auto out, make_pipe());
  pid_t pid = ::fork();
  if (pid < 0) return sys_error("fork");
  if (pid == 0) child_exec(p, -1, out.second.get(), -1);
  return Child(pid, std::move(out.first));
}

Child::Child(Child&& o) noexcept : pid_(std::exchange(o.pid_, -1)), out_(std::move(o.out_)) {}

Child::~Child() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  (void)wait_pid(pid_, Clock::now() + std::chrono::seconds(5));
}

Result<int> Child::wait(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return error("Child::wait: no process");
  auto r = wait_pid(pid_, Clock::now() + timeout);
  if (r.ok()) pid_ = -1;
  return r;
}

Result<std::string> Child::read_stdout_until_exit(std::chrono::milliseconds timeout) {
  std::string data;
  auto deadline = Clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return error("child output: timed out", ETIMEDOUT);
    pollfd pfd{out_.get(), POLLIN, 0};
    int n = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_error("poll");
    if (n == 0) continue;
    char buf[65536];
    ssize_t r = ::read(out_.get(), buf, sizeof buf);
    if (r > 0) data.append(buf, static_cast<size_t>(r));
    else if (r == 0) break;
    else if (errno != EINTR) return sys_error("read child output");
  }
  XO_TRY(wait(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()) +
              std::chrono::seconds(1)));
  return data;
}

}  // namespace xo::lab
