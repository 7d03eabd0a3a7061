// Lab: RAII handle on an `xo-lab` lab (hosts in network namespaces).
//
// Lab::up() runs `xo-lab up` owned by this process (so a killed test's lab is
// swept by the next run) and the destructor runs `xo-lab down`.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/base/result.h"

namespace xo::lab {

struct Host {
  std::string name;  // "client", "frontend", "backend0", ...
  std::string ns;    // namespace under /run/netns
  std::string ip, ip6, mac;
};

struct LabOptions {
  int backends = 1;
  std::vector<std::pair<std::string, std::string>> caps;  // host → rate ("1gbit")
  std::string name;                                       // empty: xo-<random>
};

class Lab {
 public:
  static Result<Lab> up(const LabOptions& opts = {});
  // A lab someone else brought up (e.g. a demo script): never taken down here.
  static Result<Lab> attach(const std::string& name);
  Lab(Lab&& o) noexcept;
  Lab& operator=(Lab&&) = delete;
  ~Lab();

  const std::string& name() const { return name_; }
  // The host by name; nullptr if the lab has none of that name.
  const Host* find(const std::string& host) const;
  const Host& client() const { return *find("client"); }
  const Host& frontend() const { return *find("frontend"); }
  const Host& backend(int k) const { return *find("backend" + std::to_string(k)); }
  std::vector<std::string> host_names() const;
  const std::string& service_ip() const { return service_ip_; }
  const std::string& service_ip6() const { return service_ip6_; }

  Status down();  // idempotent; the destructor calls it

 private:
  Lab() = default;
  static Result<Lab> load(const std::string& name, bool owned);
  bool owned_ = true;
  std::string name_, service_ip_, service_ip6_;
  std::map<std::string, Host> hosts_;
  std::vector<std::string> order_;
};

// Path of the xo-lab script (the source tree's copy).
std::string xo_lab_script();

}  // namespace xo::lab
