#include "qa/system/handoff/faults/fault_support.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "qa/lab/netns.h"
#include "qa/lab/run.h"
#include "qa/lab/sockets.h"

namespace xo::handoff::faulttest {

Result<std::vector<pid_t>> pids_in_netns(const std::string& ns) {
  struct stat want{};
  if (::stat(lab::netns_path(ns).c_str(), &want) != 0) return sys_error("stat " + lab::netns_path(ns));
  std::vector<pid_t> out;
  DIR* d = ::opendir("/proc");
  if (!d) return sys_error("opendir /proc");
  while (dirent* e = ::readdir(d)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (pid <= 0 || *end) continue;
    struct stat got{};
    if (::stat(("/proc/" + std::string(e->d_name) + "/ns/net").c_str(), &got) != 0) continue;
    if (got.st_dev == want.st_dev && got.st_ino == want.st_ino) out.push_back(static_cast<pid_t>(pid));
  }
  ::closedir(d);
  return out;
}

Result<std::vector<std::string>> cmdline_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  if (!in) return error("no /proc/" + std::to_string(pid) + "/cmdline", ESRCH);
  std::string all((std::istreambuf_iterator<char>(in)), {});
  std::vector<std::string> argv;
  for (size_t pos = 0; pos < all.size();) {
    size_t nul = all.find('\0', pos);
    if (nul == std::string::npos) nul = all.size();
    argv.push_back(all.substr(pos, nul - pos));
    pos = nul + 1;
  }
  return argv;
}

Result<pid_t> server_pid(const std::string& ns) {
  XO_ASSIGN_OR_RETURN(auto pids, pids_in_netns(ns));
  std::vector<pid_t> found;
  for (pid_t p : pids) {
    auto argv = cmdline_of(p);
    // A zombie (killed, not yet reaped by its Process) has an empty cmdline.
    if (argv.ok() && !argv->empty() && (*argv)[0].ends_with("/xo-testserver")) found.push_back(p);
  }
  if (found.size() != 1)
    return error("expected one xo-testserver in " + ns + ", found " + std::to_string(found.size()), ESRCH);
  return found[0];
}

std::string flag_value(const std::vector<std::string>& argv, const std::string& flag) {
  for (size_t i = 0; i + 1 < argv.size(); ++i)
    if (argv[i] == flag) return argv[i + 1];
  return {};
}

bool alive(pid_t pid) {
  // A zombie still answers kill(0): look at its state instead.
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return false;
  auto rp = line.rfind(')');
  return rp != std::string::npos && rp + 2 < line.size() && line[rp + 2] != 'Z' && line[rp + 2] != 'X';
}

// ---- nft -------------------------------------------------------------------

Result<NftRules> NftRules::install(const std::string& ns, const std::string& body, const std::string& table) {
  const std::string script = "table inet " + table + " {\n" + body + "\n}\n";
  XO_TRY(lab::run_ok(ns, {"nft", "-f", "-"}, std::chrono::seconds(10), script));
  return NftRules(ns, table);
}

NftRules::~NftRules() { (void)remove(); }

Status NftRules::remove() {
  if (ns_.empty()) return {};
  auto r = lab::run_ok(ns_, {"nft", "delete", "table", "inet", table_}, std::chrono::seconds(10));
  ns_.clear();
  if (!r.ok()) return r.error();
  return {};
}

std::string NftRules::listing() const {
  if (ns_.empty()) return "(removed)";
  auto r = lab::run_in(ns_, {"nft", "list", "table", "inet", table_}, std::chrono::seconds(10));
  return r.ok() ? r->out : r.error().to_string();
}

Result<std::vector<std::pair<uint16_t, uint16_t>>> control_connections(const std::string& ns, const std::string& peer_ip,
                                                                       uint16_t port) {
  XO_ASSIGN_OR_RETURN(auto rows, lab::tcp_sockets(ns));
  auto port_of = [](const std::string& ep) { return static_cast<uint16_t>(std::atoi(ep.c_str() + ep.rfind(':') + 1)); };
  auto ip_of = [](std::string ep) {
    ep = ep.substr(0, ep.rfind(':'));
    if (!ep.empty() && ep.front() == '[') ep = ep.substr(1, ep.size() - 2);
    if (ep.rfind("::ffff:", 0) == 0) ep = ep.substr(7);
    return ep;
  };
  std::vector<std::pair<uint16_t, uint16_t>> out;
  for (const auto& r : rows) {
    if (r.state != "ESTAB" || ip_of(r.peer) != peer_ip) continue;
    if (port_of(r.local) == port || port_of(r.peer) == port) out.emplace_back(port_of(r.local), port_of(r.peer));
  }
  return out;
}

std::string control_drop_in_rules(const std::string& peer_ip, const std::vector<std::pair<uint16_t, uint16_t>>& conns) {
  std::ostringstream s;
  s << "  chain in {\n    type filter hook input priority -5; policy accept;\n";
  for (auto [local, remote] : conns)
    s << "    ip saddr " << peer_ip << " tcp sport " << remote << " tcp dport " << local
      << " tcp flags & psh == psh counter drop\n";
  s << "  }";
  return s.str();
}

std::string control_cut_rules(const std::string& peer_ip, const std::vector<std::pair<uint16_t, uint16_t>>& conns,
                              bool let_one_in, bool drop_out) {
  std::ostringstream s;
  // `seen` remembers the peer whose first data segment (the OFFER) went through.
  s << "  set seen { type ipv4_addr; flags dynamic; }\n";
  s << "  chain in {\n    type filter hook input priority -5; policy accept;\n";
  if (let_one_in)
    for (auto [local, remote] : conns) {
      const std::string match = "ip saddr " + peer_ip + " tcp sport " + std::to_string(remote) + " tcp dport " +
                                std::to_string(local) + " tcp flags & psh == psh";
      s << "    " << match << " ip saddr @seen counter drop\n";
      s << "    " << match << " add @seen { ip saddr } counter\n";
    }
  s << "  }\n";
  s << "  chain out {\n    type filter hook output priority -5; policy accept;\n";
  if (drop_out)
    for (auto [local, remote] : conns)
      s << "    ip daddr " << peer_ip << " tcp sport " << local << " tcp dport " << remote
        << " tcp flags & psh == psh counter drop\n";
  s << "  }";
  return s.str();
}

// ---- RawGet ----------------------------------------------------------------

Result<RawGet> RawGet::start(const std::string& ns, const std::string& ip, uint16_t port, const std::string& path) {
  UniqueFd fd;
  {
    XO_ASSIGN_OR_RETURN(auto scope, lab::NetnsScope::enter(ns));
    fd.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  }
  if (!fd) return sys_error("socket");
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  if (::inet_pton(AF_INET, ip.c_str(), &sa.sin_addr) != 1) return error("bad address " + ip, EINVAL);
  timeval tv{5, 0};  // connect() and send() never block longer
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) return sys_error("connect " + ip);
  const std::string req = "GET " + path + " HTTP/1.1\r\nHost: xo\r\n\r\n";
  if (::send(fd.get(), req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size()))
    return sys_error("send request");
  return RawGet(std::move(fd));
}

Result<bool> RawGet::pump(std::chrono::milliseconds wait) {
  pollfd p{fd_.get(), POLLIN, 0};
  int r = ::poll(&p, 1, static_cast<int>(wait.count()));
  if (r < 0) return sys_error("poll");
  if (r == 0) return false;
  char tmp[65536];
  ssize_t n = ::recv(fd_.get(), tmp, sizeof tmp, MSG_DONTWAIT);
  if (n < 0) {
    if (errno == EAGAIN || errno == EINTR) return true;
    out_.closed = true;
    out_.reset = errno == ECONNRESET;
    return true;
  }
  if (n == 0) {
    out_.closed = true;
    return true;
  }
  if (head_done_) {
    out_.body.append(tmp, static_cast<size_t>(n));
  } else {
    buf_.append(tmp, static_cast<size_t>(n));
    XO_TRY(parse_head());
  }
  if (head_done_ && out_.body.size() >= out_.content_length) out_.complete = true;
  return true;
}

Status RawGet::parse_head() {
  auto end = buf_.find("\r\n\r\n");
  if (end == std::string::npos) return {};
  std::string head = buf_.substr(0, end);
  if (head.compare(0, 9, "HTTP/1.1 ") != 0) return error("not an HTTP/1.1 response: " + head.substr(0, 40), EPROTO);
  out_.status = std::atoi(head.c_str() + 9);
  std::istringstream lines(head);
  std::string line;
  while (std::getline(lines, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    for (auto& c : name) c = static_cast<char>(std::tolower(c));
    std::string value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.erase(0, 1);
    if (name == "content-length") out_.content_length = std::strtoull(value.c_str(), nullptr, 10);
    if (name == "x-served-by") out_.served_by = value;
  }
  head_done_ = true;
  out_.body = buf_.substr(end + 4);
  buf_.clear();
  return {};
}

Status RawGet::read_body_until(uint64_t n, std::chrono::milliseconds stall) {
  while (!out_.closed && !(head_done_ && (out_.body.size() >= n || out_.complete))) {
    XO_ASSIGN_OR_RETURN(bool progress, pump(stall));
    if (!progress) {
      out_.stalled = true;
      return error("no byte within " + std::to_string(stall.count()) + " ms", ETIMEDOUT);
    }
  }
  return {};
}

RawGet::Outcome RawGet::finish(std::chrono::milliseconds stall, std::chrono::milliseconds eof_wait) {
  while (!out_.closed && !out_.complete) {
    auto progress = pump(stall);
    if (!progress.ok()) break;
    if (!*progress) {
      out_.stalled = true;
      return out_;
    }
  }
  const auto until = std::chrono::steady_clock::now() + eof_wait;
  while (!out_.closed && std::chrono::steady_clock::now() < until) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    auto progress = pump(std::max(left, std::chrono::milliseconds(1)));
    if (!progress.ok() || !*progress) break;
  }
  return out_;
}

}  // namespace xo::handoff::faulttest
