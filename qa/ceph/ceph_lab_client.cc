#include "qa/ceph/ceph_lab_client.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sys/wait.h>

namespace xo::ceph_lab {

std::string state_dir() {
  if (const char* s = std::getenv("XO_CEPH_STATE"); s && *s) return s;
  return XO_CEPH_DEFAULT_STATE;
}

Result<std::unique_ptr<Client>> Client::connect(const std::string& state) {
  std::unique_ptr<Client> c(new Client());
  c->state_ = state;
  std::ifstream in(state + "/env");
  if (!in) return error("no Ceph lab recorded in " + state + "/env (start one: qa/ceph/xo-ceph start)");
  for (std::string line; std::getline(in, line);) {
    auto eq = line.find('=');
    if (eq == std::string::npos || line[0] == '#') continue;
    std::string v = line.substr(eq + 1);
    if (v.size() >= 2 && (v.front() == '\'' || v.front() == '"')) v = v.substr(1, v.size() - 2);
    c->vars_[line.substr(0, eq)] = v;
  }
  const std::string& ns = c->var("NS_frontend");
  if (ns.empty()) return error(state + "/env names no frontend namespace");
  auto scope = lab::NetnsScope::enter(ns);
  if (!scope.ok()) return annotate(scope.take_error(), "enter " + ns);
  c->netns_.emplace(std::move(*scope));
  ::setenv("CEPH_CONF", c->var("CEPH_CONF").c_str(), 1);

  int r = c->rados_.init2("client.admin", "ceph", 0);
  if (r < 0) return error("rados init", -r);
  r = c->rados_.conf_read_file(c->var("CEPH_CONF").c_str());
  if (r < 0) return error("read " + c->var("CEPH_CONF"), -r);
  c->rados_.conf_set("log_file", "");  // the daemons' log path template is not for clients
  c->rados_.conf_set("admin_socket", "");
  r = c->rados_.connect();
  if (r < 0) return error("rados connect", -r);
  c->connected_ = true;
  return c;
}

Client::~Client() {
  if (connected_) rados_.shutdown();
}

const std::string& Client::var(const std::string& name) const {
  static const std::string empty;
  auto it = vars_.find(name);
  return it == vars_.end() ? empty : it->second;
}

uint16_t Client::s3_port() const {
  const std::string& ep = var("S3_ENDPOINT");
  auto colon = ep.rfind(':');
  return colon == std::string::npos ? 0 : static_cast<uint16_t>(std::stoi(ep.substr(colon + 1)));
}

Result<std::string> Client::mon(const std::string& json) {
  librados::bufferlist in, out;
  std::string status;
  int r = rados_.mon_command(json, in, &out, &status);
  if (r < 0) return error("mon " + json + ": " + status, -r);
  return out.to_str();
}

Result<std::string> Client::mgr(const std::string& json) {
  librados::bufferlist in, out;
  std::string status;
  int r = rados_.mgr_command(json, in, &out, &status);
  if (r < 0) return error("mgr " + json + ": " + status, -r);
  return out.to_str();
}

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += (c == '\'') ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

Result<std::string> run_capture(const std::string& cmd) {
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return sys_error("popen " + cmd);
  std::string out;
  char buf[65536];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  int st = ::pclose(p);
  if (st != 0) return error(cmd + ": exit status " + std::to_string(WIFEXITED(st) ? WEXITSTATUS(st) : -1));
  return out;
}

}  // namespace xo::ceph_lab
