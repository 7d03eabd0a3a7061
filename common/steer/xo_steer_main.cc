// xo-steer: the operator's tool over the steering library.
//
//   xo-steer --pin-dir DIR [--dev IF] COMMAND ...
//     list                          flows with action, owner, age and packet counters
//     counters                      per-action program counters
//     attach --hook H [--hook H]    attach programs on --dev (H: tc-ingress tc-egress
//                                   xdp-generic xdp-native); adopts if already attached
//     detach --hook H [--unpin]     detach from --dev; --unpin also removes the pins
//     insert ACTION SRC DST [--to IP] [--to-mac MAC] [--our-mac MAC] [--ifindex N] [--owner N]
//                                   ACTION: block | redirect | snat; SRC/DST: ip:port, [ip6]:port
//     remove SRC DST                remove one flow
//     flush --owner N               remove every flow of one owner
//   --hook H with any other command attaches (or adopts) first
//   --hold                          after the command, sleep until killed (tests)
//
// Runs in the caller's network namespace: enter the host's with
// `nsenter --net=/run/netns/NS` (not `ip netns exec`, which hides bpffs pins).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/steer/ebpf_backend.h"

namespace {

using namespace xo::steer;

int usage() {
  std::fprintf(stderr,
               "usage: xo-steer --pin-dir DIR [--dev IF] [--hold] "
               "list|counters|attach|detach|insert|remove|flush ...\n");
  return 2;
}

int fail(const xo::Error& e) {
  std::fprintf(stderr, "xo-steer: %s\n", e.to_string().c_str());
  return 1;
}

xo::Result<std::pair<IpAddr, uint16_t>> parse_endpoint(const std::string& s) {
  std::string host, port;
  if (!s.empty() && s[0] == '[') {
    auto close = s.find("]:");
    if (close == std::string::npos) return xo::error("bad endpoint '" + s + "' (want [ip6]:port)", EINVAL);
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    auto colon = s.rfind(':');
    if (colon == std::string::npos) return xo::error("bad endpoint '" + s + "' (want ip:port)", EINVAL);
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
  }
  XO_ASSIGN_OR_RETURN(IpAddr addr, IpAddr::parse(host));
  char* end = nullptr;
  unsigned long p = std::strtoul(port.c_str(), &end, 10);
  if (port.empty() || *end || p > 65535) return xo::error("bad port in '" + s + "'", EINVAL);
  return std::make_pair(addr, static_cast<uint16_t>(p));
}

xo::Result<FlowKey> parse_flow(const std::string& src, const std::string& dst) {
  FlowKey f;
  XO_ASSIGN_OR_RETURN(auto s, parse_endpoint(src));
  XO_ASSIGN_OR_RETURN(auto d, parse_endpoint(dst));
  f.src = s.first;
  f.src_port = s.second;
  f.dst = d.first;
  f.dst_port = d.second;
  return f;
}

xo::Result<Hook> parse_hook(const std::string& s) {
  for (Hook h : {Hook::kTcIngress, Hook::kTcEgress, Hook::kXdpGeneric, Hook::kXdpNative})
    if (s == hook_name(h)) return h;
  return xo::error("unknown hook '" + s + "'", EINVAL);
}

struct Args {
  std::string pin_dir, dev, command;
  std::vector<std::string> positional;
  std::vector<Hook> hooks;
  std::string to, to_mac, our_mac;
  uint32_t ifindex = 0;
  uint64_t owner = 0;
  bool owner_set = false, hold = false, unpin = false;
};

xo::Result<Args> parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; i++) {
    std::string s = argv[i];
    auto value = [&]() -> xo::Result<std::string> {
      if (i + 1 >= argc) return xo::error(s + " needs a value", EINVAL);
      return std::string(argv[++i]);
    };
    if (s == "--pin-dir") {
      XO_ASSIGN_OR_RETURN(a.pin_dir, value());
    } else if (s == "--dev") {
      XO_ASSIGN_OR_RETURN(a.dev, value());
    } else if (s == "--hook") {
      XO_ASSIGN_OR_RETURN(std::string h, value());
      XO_ASSIGN_OR_RETURN(Hook hook, parse_hook(h));
      a.hooks.push_back(hook);
    } else if (s == "--to") {
      XO_ASSIGN_OR_RETURN(a.to, value());
    } else if (s == "--to-mac") {
      XO_ASSIGN_OR_RETURN(a.to_mac, value());
    } else if (s == "--our-mac") {
      XO_ASSIGN_OR_RETURN(a.our_mac, value());
    } else if (s == "--ifindex") {
      XO_ASSIGN_OR_RETURN(std::string v, value());
      a.ifindex = static_cast<uint32_t>(std::strtoul(v.c_str(), nullptr, 10));
    } else if (s == "--owner") {
      XO_ASSIGN_OR_RETURN(std::string v, value());
      a.owner = std::strtoull(v.c_str(), nullptr, 0);
      a.owner_set = true;
    } else if (s == "--hold") {
      a.hold = true;
    } else if (s == "--unpin") {
      a.unpin = true;
    } else if (a.command.empty()) {
      a.command = s;
    } else {
      a.positional.push_back(s);
    }
  }
  if (a.pin_dir.empty() || a.command.empty()) return xo::error("--pin-dir and a command are required", EINVAL);
  return a;
}

int run(const Args& a) {
  EbpfOptions opts;
  opts.pin_dir = a.pin_dir;
  opts.ifname = a.dev;
  if (a.command != "detach") opts.hooks = a.hooks;  // any command may attach first
  auto opened = EbpfSteer::open(opts);
  if (!opened.ok()) return fail(opened.error());
  EbpfSteer& steer = **opened;

  if (a.command == "list") {
    auto flows = steer.list();
    if (!flows.ok()) return fail(flows.error());
    uint64_t now = realtime_ns();
    std::printf("%-8s %-48s %-26s %-10s %8s %12s %10s\n", "action", "flow", "target", "owner", "age_s",
                "packets", "bytes");
    for (const ListedEntry& l : *flows) {
      const SteerEntry& e = l.entry;
      std::string target = e.action == Action::kBlock ? "-" : e.new_addr.to_string();
      double age = e.insert_time_ns && now > e.insert_time_ns ? double(now - e.insert_time_ns) / 1e9 : 0.0;
      std::printf("%-8s %-48s %-26s %-10llu %8.1f %12llu %10llu\n", std::string(action_name(e.action)).c_str(),
                  e.flow.to_string().c_str(), target.c_str(), static_cast<unsigned long long>(e.owner), age,
                  static_cast<unsigned long long>(l.stats.packets), static_cast<unsigned long long>(l.stats.bytes));
    }
  } else if (a.command == "counters") {
    auto c = steer.counters();
    if (!c.ok()) return fail(c.error());
    const char* names[XO_CNT_MAX] = {"miss", "block", "redirect", "snat", "error", "not_tcp", "held"};
    for (int i = 0; i < XO_CNT_MAX; i++) std::printf("%s %llu\n", names[i], static_cast<unsigned long long>((*c)[i]));
  } else if (a.command == "attach") {
    std::printf("%s\n", steer.adopted() ? "adopted" : "attached");
  } else if (a.command == "detach") {
    if (a.dev.empty() || a.hooks.empty()) return fail(xo::error("detach needs --dev and --hook", EINVAL));
    auto adapter = BpfAdapter::open(a.pin_dir);
    if (!adapter.ok()) return fail(adapter.error());
    for (Hook h : a.hooks) {
      auto st = (*adapter)->detach(h, steer.ifindex());
      if (!st.ok()) return fail(st.error());
    }
    if (a.unpin) {
      auto st = BpfAdapter::unpin(a.pin_dir);
      if (!st.ok()) return fail(st.error());
    }
  } else if (a.command == "insert") {
    if (a.positional.size() != 3) return usage();
    auto flow = parse_flow(a.positional[1], a.positional[2]);
    if (!flow.ok()) return fail(flow.error());
    const std::string& action = a.positional[0];
    SteerEntry e;
    if (action == "block") {
      e = SteerEntry::block(*flow, a.owner, realtime_ns());
    } else if (action == "redirect" || action == "snat") {
      auto to = IpAddr::parse(a.to);
      if (!to.ok()) return fail(xo::annotate(to.take_error(), "--to"));
      if (action == "snat") {
        e = SteerEntry::snat(*flow, *to, a.owner, realtime_ns());
      } else {
        auto dmac = parse_mac(a.to_mac);
        auto smac = parse_mac(a.our_mac);
        if (!dmac.ok()) return fail(xo::annotate(dmac.take_error(), "--to-mac"));
        if (!smac.ok()) return fail(xo::annotate(smac.take_error(), "--our-mac"));
        e = SteerEntry::redirect(*flow, *to, *dmac, *smac, a.owner, realtime_ns(), a.ifindex);
      }
    } else {
      return usage();
    }
    auto st = steer.insert(e);
    if (!st.ok()) return fail(st.error());
  } else if (a.command == "remove") {
    if (a.positional.size() != 2) return usage();
    auto flow = parse_flow(a.positional[0], a.positional[1]);
    if (!flow.ok()) return fail(flow.error());
    auto st = steer.remove(*flow);
    if (!st.ok()) return fail(st.error());
  } else if (a.command == "flush") {
    if (!a.owner_set) return fail(xo::error("flush needs --owner", EINVAL));
    auto flows = steer.list();
    if (!flows.ok()) return fail(flows.error());
    int removed = 0;
    for (const ListedEntry& l : *flows) {
      if (l.entry.owner != a.owner) continue;
      auto st = steer.remove(l.entry.flow);
      if (st.ok()) removed++;
      else if (st.error().code != ENOENT) return fail(st.error());
    }
    std::printf("removed %d\n", removed);
  } else {
    return usage();
  }
  if (a.hold) {
    std::fflush(stdout);
    for (;;) pause();
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  auto args = parse_args(argc, argv);
  if (!args.ok()) {
    fail(args.error());
    return usage();
  }
  return run(*args);
}
