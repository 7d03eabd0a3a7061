#include "qa/lab/lab.h"

#include <unistd.h>

#include <cstdio>
#include <sstream>

#include "qa/lab/run.h"

namespace xo::lab {

std::string xo_lab_script() {
  if (const char* s = std::getenv("XO_LAB_SCRIPT"); s && *s) return s;
  return XO_LAB_SCRIPT_PATH;  // set by qa/lab/CMakeLists.txt
}

namespace {

// `xo-lab env` prints KEY=VALUE lines; values may be double-quoted.
std::map<std::string, std::string> parse_env(const std::string& text) {
  std::map<std::string, std::string> kv;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string v = line.substr(eq + 1);
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
    kv[line.substr(0, eq)] = v;
  }
  return kv;
}

}  // namespace

Result<Lab> Lab::up(const LabOptions& opts) {
  std::vector<std::string> argv = {xo_lab_script(), "up", "--owner", std::to_string(::getpid()),
                                   "--backends", std::to_string(opts.backends)};
  if (!opts.name.empty()) argv.insert(argv.end(), {"--name", opts.name});
  for (const auto& [host, rate] : opts.caps) argv.insert(argv.end(), {"--cap", host + "=" + rate});
  XO_ASSIGN_OR_RETURN(std::string out, run_ok("", argv, std::chrono::seconds(120)));
  return load(out.substr(0, out.find('\n')), /*owned=*/true);
}

Result<Lab> Lab::attach(const std::string& name) {
  return load(name, /*owned=*/false);
}

Result<Lab> Lab::load(const std::string& name, bool owned) {
  Lab lab;
  lab.owned_ = owned;  // an owned lab that fails to load is taken down again
  lab.name_ = name;
  auto env = run_ok("", {xo_lab_script(), "env", lab.name_});
  if (!env.ok()) return annotate(env.take_error(), "xo-lab env");
  auto kv = parse_env(*env);
  std::istringstream hosts(kv["XO_LAB_HOSTS"]);
  std::string h;
  while (hosts >> h) {
    lab.hosts_[h] = Host{h, kv["NS_" + h], kv["IP_" + h], kv["IP6_" + h], kv["MAC_" + h]};
    lab.order_.push_back(h);
  }
  lab.service_ip_ = kv["IP_service"];
  lab.service_ip6_ = kv["IP6_service"];
  if (!lab.find("client") || !lab.find("frontend") || lab.service_ip_.empty())
    return error("xo-lab env for " + lab.name_ + " lacks client/frontend/service");
  return lab;
}

Lab::Lab(Lab&& o) noexcept
    : owned_(o.owned_),
      name_(std::exchange(o.name_, {})),
      service_ip_(std::move(o.service_ip_)),
      service_ip6_(std::move(o.service_ip6_)),
      hosts_(std::move(o.hosts_)),
      order_(std::move(o.order_)) {}

Lab::~Lab() {
  if (auto s = down(); !s.ok())
    std::fprintf(stderr, "xo::lab::Lab: %s\n", s.error().to_string().c_str());
}

const Host* Lab::find(const std::string& host) const {
  auto it = hosts_.find(host);
  return it == hosts_.end() ? nullptr : &it->second;
}

std::vector<std::string> Lab::host_names() const { return order_; }

Status Lab::down() {
  if (name_.empty() || !owned_) return {};
  std::string name = std::exchange(name_, {});
  auto r = run_ok("", {xo_lab_script(), "down", name}, std::chrono::seconds(60));
  if (!r.ok()) return annotate(r.take_error(), "xo-lab down " + name);
  return {};
}

}  // namespace xo::lab
