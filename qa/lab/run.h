// Run a command inside a lab host: fork, setns into /run/netns/NS, exec.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/base/fd.h"
#include "common/base/result.h"

namespace xo::lab {

struct RunResult {
  int exit_code = -1;     // exit status, or 128+signal
  std::string out, err;   // captured stdout / stderr
  bool ok() const { return exit_code == 0; }
};

// ns empty: run in the caller's namespace. The child is killed after `timeout`.
Result<RunResult> run_in(const std::string& ns, const std::vector<std::string>& argv,
                         std::chrono::milliseconds timeout = std::chrono::seconds(60),
                         const std::string& stdin_data = {});

// Like run_in, but fails (with stderr in the message) unless the exit code is 0.
Result<std::string> run_ok(const std::string& ns, const std::vector<std::string>& argv,
                           std::chrono::milliseconds timeout = std::chrono::seconds(60),
                           const std::string& stdin_data = {});

// A process started in a lab host, killed (SIGKILL) and reaped on destruction.
class Child {
 public:
  static Result<Child> spawn(const std::string& ns, const std::vector<std::string>& argv);
  Child(Child&& o) noexcept;
  Child& operator=(Child&&) = delete;
  ~Child();
  pid_t pid() const { return pid_; }
  // Wait for exit; returns the exit code (128+signal when killed).
  Result<int> wait(std::chrono::milliseconds timeout);
  Result<std::string> read_stdout_until_exit(std::chrono::milliseconds timeout);

 private:
  Child(pid_t pid, UniqueFd out) : pid_(pid), out_(std::move(out)) {}
  pid_t pid_ = -1;
  UniqueFd out_;
};

}  // namespace xo::lab
