// A test/benchmark process's view of the running Ceph lab (qa/ceph/xo-ceph): reads
// the state dir's env file, moves this process into the frontend host's network
// namespace (before librados starts its threads, so they and any child process such
// as radosgw-admin inherit it) and connects librados as client.admin.
#pragma once

#include <rados/librados.hpp>

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "common/base/result.h"
#include "qa/lab/netns.h"

namespace xo::ceph_lab {

// $XO_CEPH_STATE, else the build tree's ceph-lab dir (compiled in).
std::string state_dir();

class Client {
 public:
  static Result<std::unique_ptr<Client>> connect(const std::string& state = state_dir());
  ~Client();

  librados::Rados& rados() { return rados_; }
  const std::string& var(const std::string& name) const;  // from the env file ("" if absent)
  const std::string& state() const { return state_; }
  uint16_t s3_port() const;  // radosgw's port on 127.0.0.1 in the frontend namespace

  // JSON answer of a monitor / manager command.
  Result<std::string> mon(const std::string& json);
  Result<std::string> mgr(const std::string& json);

 private:
  Client() = default;
  std::string state_;
  std::map<std::string, std::string> vars_;
  std::optional<lab::NetnsScope> netns_;
  librados::Rados rados_;
  bool connected_ = false;
};

// Runs a command (inherits this process' namespace and CEPH_CONF); stdout or an error.
Result<std::string> run_capture(const std::string& shell_command);
std::string shell_quote(const std::string& s);

}  // namespace xo::ceph_lab
