// xo-testserver: the test server as a process (run it inside a lab host).
//   xo-testserver --name frontend [--port 80] [--listen ::] [--https-port 443]
// Offload (common/handoff/node, as the daemons use it; see offload.h):
//   --node-id ID --pki DIR --control IP:PORT --pin-dir BPFFS_DIR [--dev eth0]
//   --data-ip IP (v4 and/or v6, repeatable)
//   --peer ID=CTRL_IP:PORT,DATA_IP[,DATA_IP6],MAC (repeatable)
//   --offload PREFIX=HOST (repeatable; frontend) [--ready-timeout-ms N]
//   [--records 1]  print every handoff record on stdout
// Prints "https <port>" / "control <port>" when enabled, then "ready <port>"
// once listening; SIGUSR1 reconciles (prints "reconciled held=N stale=N unknown=N");
// stops on SIGTERM/SIGINT and then prints one "stats ..." line.
#include <net/if.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/handoff/node/node.h"
#include "common/steer/ebpf_backend.h"
#include "qa/server/offload.h"
#include "qa/server/server.h"
#include "qa/server/tls_stream.h"

namespace {

using xo::Result;

struct Args {
  xo::testserver::ServerOptions http;
  int https_port = -1;
  std::string node_id, pki, control, pin_dir, dev = "eth0";
  std::vector<std::string> data_ips, peers, offload;
  int ready_timeout_ms = 0;
  bool records = false;
};

int usage() {
  std::fprintf(stderr,
               "usage: xo-testserver --name NAME [--port N] [--listen ADDR] [--https-port N]\n"
               "  [--node-id ID --pki DIR --control IP:PORT --pin-dir DIR [--dev IF] --data-ip IP...\n"
               "   --peer ID=CTRL_IP:PORT,DATA_IP[,DATA_IP6],MAC... --offload PREFIX=HOST...\n"
               "   --ready-timeout-ms N --records 1]\n");
  return 2;
}

Result<boost::asio::ip::tcp::endpoint> parse_hostport(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos) return xo::error("expected IP:PORT: " + text, EINVAL);
  std::string host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  boost::system::error_code ec;
  auto addr = boost::asio::ip::make_address(host, ec);
  if (ec) return xo::error("bad address " + host, EINVAL);
  return boost::asio::ip::tcp::endpoint(addr, static_cast<uint16_t>(std::atoi(text.c_str() + colon + 1)));
}

Result<std::pair<std::string, xo::handoff::node::Peer>> parse_peer(const std::string& text) {
  auto eq = text.find('=');
  if (eq == std::string::npos) return xo::error("--peer ID=CTRL_IP:PORT,DATA_IP[,DATA_IP6],MAC: " + text, EINVAL);
  std::vector<std::string> parts;
  std::string rest = text.substr(eq + 1);
  for (size_t pos = 0;;) {
    auto comma = rest.find(',', pos);
    parts.push_back(rest.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  if (parts.size() < 3) return xo::error("--peer needs control, data address and MAC: " + text, EINVAL);
  xo::handoff::node::Peer peer;
  XO_ASSIGN_OR_RETURN(peer.control, parse_hostport(parts[0]));
  for (size_t i = 1; i + 1 < parts.size(); ++i) {
    XO_ASSIGN_OR_RETURN(auto ip, xo::steer::IpAddr::parse(parts[i]));
    (ip.family == AF_INET6 ? peer.data_ip6 : peer.data_ip4) = ip;
  }
  XO_ASSIGN_OR_RETURN(peer.mac, xo::steer::parse_mac(parts.back()));
  return std::make_pair(text.substr(0, eq), peer);
}

Result<xo::steer::MacAddr> mac_of(const std::string& dev) {
  xo::UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!s) return xo::sys_error("socket");
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, dev.c_str(), IFNAMSIZ - 1);
  if (::ioctl(s.get(), SIOCGIFHWADDR, &ifr) != 0) return xo::sys_error("SIOCGIFHWADDR " + dev);
  xo::steer::MacAddr mac;
  std::memcpy(mac.data(), ifr.ifr_hwaddr.sa_data, 6);
  return mac;
}

std::string record_line(const xo::handoff::node::HandoffRecord& r) {
  std::string s = std::string("record ") + xo::handoff::node::handoff_kind_name(r.kind) + " " + r.outcome +
                  " peer=" + r.peer_host + " flow=" + std::to_string(r.flow.flow_id) + " " + r.trace.to_string();
  if (r.why) s += " why=\"" + r.why->to_string() + "\"";
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--name") a.http.name = v;
    else if (k == "--port") a.http.port = static_cast<uint16_t>(std::atoi(v.c_str()));
    else if (k == "--listen") a.http.listen = v;
    else if (k == "--https-port") a.https_port = std::atoi(v.c_str());
    else if (k == "--node-id") a.node_id = v;
    else if (k == "--pki") a.pki = v;
    else if (k == "--control") a.control = v;
    else if (k == "--pin-dir") a.pin_dir = v;
    else if (k == "--dev") a.dev = v;
    else if (k == "--data-ip") a.data_ips.push_back(v);
    else if (k == "--peer") a.peers.push_back(v);
    else if (k == "--offload") a.offload.push_back(v);
    else if (k == "--ready-timeout-ms") a.ready_timeout_ms = std::atoi(v.c_str());
    else if (k == "--records") a.records = v == "1";
    else return usage();
  }
  if (argc % 2 == 0) return usage();
  if (a.http.name.empty()) {
    std::fprintf(stderr, "xo-testserver: --name is required (it goes into X-Served-By)\n");
    return 2;
  }
  auto fail = [](const xo::Error& e) {
    std::fprintf(stderr, "xo-testserver: %s\n", e.to_string().c_str());
    return 1;
  };
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);  // threads inherit: only sigwait sees them

  // Offload: a Node on this host's NIC, and the hook that uses it.
  std::unique_ptr<xo::steer::EbpfSteer> steer;
  std::unique_ptr<xo::handoff::node::Node> node;
  std::unique_ptr<xo::testserver::OffloadHook> hook;
  if (!a.node_id.empty()) {
    if (a.pki.empty() || a.control.empty() || a.pin_dir.empty()) return usage();
    // hold_blocked: segments dropped while a connection moves are replayed.
    auto opened = xo::steer::EbpfSteer::open(
        {a.pin_dir, a.dev, {xo::steer::Hook::kTcIngress, xo::steer::Hook::kTcEgress}, /*hold_blocked=*/true});
    if (!opened.ok()) return fail(opened.error());
    steer = std::move(*opened);
    xo::handoff::node::NodeConfig cfg;
    cfg.host_id = a.node_id;
    cfg.identity = xo::handoff::channel::TlsIdentity::from_pki_dir(a.pki, a.node_id);
    auto listen = parse_hostport(a.control);
    if (!listen.ok()) return fail(listen.error());
    cfg.listen = *listen;
    for (const auto& p : a.peers) {
      auto peer = parse_peer(p);
      if (!peer.ok()) return fail(peer.error());
      cfg.peers.insert(*peer);
    }
    for (const auto& ip : a.data_ips) {
      auto parsed = xo::steer::IpAddr::parse(ip);
      if (!parsed.ok()) return fail(parsed.error());
      (parsed->family == AF_INET6 ? cfg.data_ip6 : cfg.data_ip4) = *parsed;
    }
    auto mac = mac_of(a.dev);
    if (!mac.ok()) return fail(mac.error());
    cfg.mac = *mac;
    cfg.steer = steer.get();
    if (a.ready_timeout_ms > 0) cfg.ready_timeout = std::chrono::milliseconds(a.ready_timeout_ms);
    auto created = xo::handoff::node::Node::create(std::move(cfg));
    if (!created.ok()) return fail(created.error());
    node = std::move(*created);
    if (a.records)
      node->set_record_observer([](const xo::handoff::node::HandoffRecord& r) {
        std::printf("%s\n", record_line(r).c_str());
        std::fflush(stdout);
      });
    std::vector<xo::testserver::OffloadRule> rules;
    for (const auto& r : a.offload) {
      auto rule = xo::testserver::parse_offload_rule(r);
      if (!rule.ok()) return fail(rule.error());
      rules.push_back(*rule);
    }
    hook = std::make_unique<xo::testserver::OffloadHook>(*node, std::move(rules));
    a.http.hook = hook.get();
  }

  auto server = xo::testserver::Server::start(a.http);
  if (!server.ok()) return fail(server.error());
  std::unique_ptr<xo::testserver::TlsStreamFactory> tls_streams;
  std::unique_ptr<xo::testserver::Server> https;
  if (a.https_port >= 0) {
    auto pem = xo::tls::make_self_signed(a.http.name);
    if (!pem.ok()) return fail(pem.error());
    auto ctx = xo::tls::ServerContext::create({pem->cert_pem, pem->key_pem});
    if (!ctx.ok()) return fail(ctx.error());
    tls_streams = std::make_unique<xo::testserver::TlsStreamFactory>(*ctx);
    auto opts = a.http;
    opts.port = static_cast<uint16_t>(a.https_port);
    opts.streams = tls_streams.get();
    auto started = xo::testserver::Server::start(opts);
    if (!started.ok()) return fail(started.error());
    https = std::move(*started);
    std::printf("https %u\n", https->port());
  }
  if (hook) {
    hook->attach(server->get(), https.get());
    std::printf("control %u\n", node->control_endpoint().port());
    // "ready" means offers can go out: wait (bounded) for the control
    // connections to every peer; a peer still missing is only logged
    // (offers to it are served locally).
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (const auto& p : a.peers) {
      std::string id = p.substr(0, p.find('='));
      while (!node->connected(id) && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      if (!node->connected(id)) std::fprintf(stderr, "xo-testserver: no control connection to %s yet\n", id.c_str());
    }
  }
  std::printf("ready %u\n", (*server)->port());
  std::fflush(stdout);
  // SIGUSR1: reconcile this node's REDIRECT entries with its targets.
  for (;;) {
    int sig = 0;
    sigwait(&set, &sig);
    if (sig != SIGUSR1) break;
    if (!node) continue;
    node->reconcile(std::chrono::milliseconds(1000), [](xo::handoff::protocol::ReconcileResult r) {
      std::printf("reconciled held=%zu stale=%zu unknown=%zu\n", r.held.size(), r.stale.size(), r.unknown.size());
      std::fflush(stdout);
    });
  }
  (*server)->stop();
  if (https) https->stop();
  if (node) {
    auto h = hook->stats();
    auto n = node->stats();
    size_t entries = 0;
    uint64_t held = 0;  // segments the ingress program dropped for a BLOCK and reported for replay
    if (auto c = steer->counters(); c.ok()) held = (*c)[XO_CNT_HELD];
    if (auto list = node->steering_entries(); list.ok()) entries = list->size();
    node->stop();
    std::printf(
        "stats offered=%lu offloaded=%lu served_locally=%lu lost=%lu accepted=%lu given_back=%lu kept=%lu "
        "dropped=%lu closed_here=%lu taken_back=%lu ended_at_target=%lu refusals=%lu rollbacks=%lu discarded=%lu "
        "flows_out=%lu flows_in=%lu steer_errors=%lu steer_entries=%zu replayed=%lu held=%lu\n",
        h.offered, h.offloaded, h.served_locally, h.lost, h.accepted, h.given_back, h.kept, h.dropped, h.closed_here, h.taken_back,
        h.ended_at_target, n.refusals, n.rollbacks, n.discarded, n.flows_out, n.flows_in, n.steer_errors, entries, n.replayed, held);
    std::fflush(stdout);
  }
  return 0;
}
