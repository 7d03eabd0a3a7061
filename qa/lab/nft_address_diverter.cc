#include <arpa/inet.h>
#include <linux/neighbour.h>
#include <net/if.h>
#include <netinet/in.h>
#include <nftables/libnftables.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/neighbour.h>
#include <sys/socket.h>

#include <linux/rtnetlink.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>
#include <tuple>

#include "qa/lab/flow_diverter.h"
#include "qa/lab/netns.h"

namespace xo::lab {
namespace {

std::string ntop(const sockaddr_storage& ss, uint16_t* port) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
    *port = ntohs(a->sin_port);
  } else {
    auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
    *port = ntohs(a->sin6_port);
  }
  return buf;
}

// The block set: a flow's packets in both directions, keyed as the client's
// saddr.sport.daddr.dport. Priority -300: before conntrack (-200), so a
// dropped packet leaves no state.
// Egress too: a socket in repair mode still transmits from its send queue
// (pacing and TSQ timers call tcp_write_xmit unless TCP_SEND_QUEUE is
// selected), so bytes the snapshot counts as unsent could reach the client
// and the restored socket would never see a valid ACK again. A drop in the
// output hook fails the transmit, so snd_nxt does not advance.
constexpr const char* kTable =
    "add table inet xo_lab\n"
    "delete table inet xo_lab\n"
    "table inet xo_lab {\n"
    "  set block4 { type ipv4_addr . inet_service . ipv4_addr . inet_service; }\n"
    "  set block6 { type ipv6_addr . inet_service . ipv6_addr . inet_service; }\n"
    "  chain ingress {\n"
    "    type filter hook prerouting priority -300; policy accept;\n"
    "    ip saddr . tcp sport . ip daddr . tcp dport @block4 drop\n"
    "    ip6 saddr . tcp sport . ip6 daddr . tcp dport @block6 drop\n"
    "  }\n"
    "  chain egress {\n"
    "    type filter hook output priority -300; policy accept;\n"
    "    ip daddr . tcp dport . ip saddr . tcp sport @block4 drop\n"
    "    ip6 daddr . tcp dport . ip6 saddr . tcp sport @block6 drop\n"
    "  }\n"
    "}\n";

std::string element(const Flow& f) {
  return std::string(f.family == AF_INET6 ? "block6" : "block4") + " { " + f.remote_ip + " . " +
         std::to_string(f.remote_port) + " . " + f.local_ip + " . " + std::to_string(f.local_port) + " }";
}

template <class T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { if (p) Free(p); }
};
using NlAddrPtr = std::unique_ptr<nl_addr, Deleter<nl_addr, nl_addr_put>>;

Result<NlAddrPtr> parse_addr(const std::string& text, int family) {
  nl_addr* a = nullptr;
  if (int e = nl_addr_parse(text.c_str(), family, &a); e < 0)
    return error("nl_addr_parse " + text + ": " + nl_geterror(e));
  return NlAddrPtr(a);
}

// Does the host route `ip` to itself (a RTN_LOCAL answer to RTM_GETROUTE)?
// `fd` is a NETLINK_ROUTE socket opened in the host's namespace.
Result<bool> routes_locally(int fd, const std::string& ip, int family) {
  struct {
    nlmsghdr nh;
    rtmsg rt;
    char attrs[64];
  } req{};
  unsigned char addr[16];
  if (::inet_pton(family, ip.c_str(), addr) != 1) return error("bad address " + ip);
  size_t alen = family == AF_INET6 ? 16 : 4;
  req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(rtmsg));
  req.nh.nlmsg_type = RTM_GETROUTE;
  req.nh.nlmsg_flags = NLM_F_REQUEST;
  req.rt.rtm_family = static_cast<unsigned char>(family);
  req.rt.rtm_dst_len = static_cast<unsigned char>(alen * 8);
  auto* rta = reinterpret_cast<rtattr*>(reinterpret_cast<char*>(&req) + NLMSG_ALIGN(req.nh.nlmsg_len));
  rta->rta_type = RTA_DST;
  rta->rta_len = static_cast<unsigned short>(RTA_LENGTH(alen));
  std::memcpy(RTA_DATA(rta), addr, alen);
  req.nh.nlmsg_len = NLMSG_ALIGN(req.nh.nlmsg_len) + RTA_ALIGN(rta->rta_len);
  if (::send(fd, &req, req.nh.nlmsg_len, 0) < 0) return sys_error("send RTM_GETROUTE");
  alignas(nlmsghdr) char buf[8192];
  ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  if (n < 0) return sys_error("recv RTM_GETROUTE");
  auto* nh = reinterpret_cast<nlmsghdr*>(buf);
  if (!NLMSG_OK(nh, static_cast<unsigned>(n))) return error("short RTM_GETROUTE answer");
  if (nh->nlmsg_type == NLMSG_ERROR) return false;  // e.g. unreachable: certainly not local
  return reinterpret_cast<rtmsg*>(NLMSG_DATA(nh))->rtm_type == RTN_LOCAL;
}

}  // namespace

struct NftAddressDiverter::HostNet {
  std::string ns;
  nft_ctx* nft = nullptr;
  nl_sock* rtnl = nullptr;
  UniqueFd route_query;  // raw NETLINK_ROUTE for RTM_GETROUTE
  int eth0 = 0;
  ~HostNet() {
    if (nft) nft_ctx_free(nft);
    if (rtnl) nl_socket_free(rtnl);
  }
  // Runs nft commands; libnftables talks netlink from the calling thread's
  // namespace for cache fetches, so every call happens inside the host.
  Status nft_run(const std::string& cmds) {
    XO_ASSIGN_OR_RETURN(auto scope, NetnsScope::enter(ns));
    if (nft_run_cmd_from_buffer(nft, cmds.c_str()) != 0)
      return error("nft in " + ns + ": " + nft_ctx_get_error_buffer(nft) + " (commands: " + cmds + ")");
    return {};
  }
};

std::string Flow::to_string() const {
  auto fmt = [&](const std::string& ip, uint16_t port) {
    return (family == AF_INET6 ? "[" + ip + "]" : ip) + ":" + std::to_string(port);
  };
  return fmt(remote_ip, remote_port) + " -> " + fmt(local_ip, local_port);
}

bool Flow::operator<(const Flow& o) const {
  return std::tie(family, local_ip, local_port, remote_ip, remote_port) <
         std::tie(o.family, o.local_ip, o.local_port, o.remote_ip, o.remote_port);
}

Result<Flow> flow_of(int fd) {
  sockaddr_storage l{}, r{};
  socklen_t ll = sizeof l, rl = sizeof r;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&l), &ll) != 0) return sys_error("getsockname");
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&r), &rl) != 0) return sys_error("getpeername");
  Flow f;
  f.family = l.ss_family;
  f.local_ip = ntop(l, &f.local_port);
  f.remote_ip = ntop(r, &f.remote_port);
  // A v4 client on a dual-stack listener shows up as ::ffff:a.b.c.d.
  if (f.family == AF_INET6 && f.local_ip.rfind("::ffff:", 0) == 0 && f.remote_ip.rfind("::ffff:", 0) == 0) {
    f.family = AF_INET;
    f.local_ip = f.local_ip.substr(7);
    f.remote_ip = f.remote_ip.substr(7);
  }
  return f;
}

NftAddressDiverter::NftAddressDiverter(const Lab& lab, std::string initial_owner)
    : lab_(lab), address_owner_(std::move(initial_owner)) {}

NftAddressDiverter::~NftAddressDiverter() = default;

Result<NftAddressDiverter::HostNet*> NftAddressDiverter::net(const std::string& host) {
  if (auto it = nets_.find(host); it != nets_.end()) return it->second.get();
  const Host* h = lab_.find(host);
  if (!h) return error("no host " + host + " in lab " + lab_.name());
  auto hn = std::make_unique<HostNet>();
  hn->ns = h->ns;
  {
    // Netlink sockets belong to the namespace they are opened in.
    XO_ASSIGN_OR_RETURN(auto scope, NetnsScope::enter(h->ns));
    hn->eth0 = static_cast<int>(::if_nametoindex("eth0"));
    if (hn->eth0 == 0) return sys_error("if_nametoindex eth0 in " + h->ns);
    hn->nft = nft_ctx_new(NFT_CTX_DEFAULT);
    if (!hn->nft) return error("nft_ctx_new failed");
    nft_ctx_buffer_output(hn->nft);
    nft_ctx_buffer_error(hn->nft);
    hn->rtnl = nl_socket_alloc();
    if (!hn->rtnl) return error("nl_socket_alloc failed");
    if (int e = nl_connect(hn->rtnl, NETLINK_ROUTE); e < 0)
      return error(std::string("nl_connect(NETLINK_ROUTE): ") + nl_geterror(e));
    hn->route_query.reset(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
    if (!hn->route_query) return sys_error("socket(NETLINK_ROUTE)");
  }
  XO_TRY(hn->nft_run(kTable));
  return nets_.emplace(host, std::move(hn)).first->second.get();
}

Status NftAddressDiverter::block(const Flow& flow) {
  std::lock_guard lock(mu_);
  XO_ASSIGN_OR_RETURN(HostNet * hn, net(address_owner_));
  if (auto s = hn->nft_run("add element inet xo_lab " + element(flow) + "\n"); !s.ok())
    return annotate(s.take_error(), "block " + flow.to_string());
  auto& hosts = blocked_at_[flow];
  if (std::find(hosts.begin(), hosts.end(), address_owner_) == hosts.end()) hosts.push_back(address_owner_);
  return {};
}

Status NftAddressDiverter::unblock(const Flow& flow) {
  std::lock_guard lock(mu_);
  auto it = blocked_at_.find(flow);
  if (it == blocked_at_.end()) return {};
  Status first;
  for (const auto& host : it->second) {
    auto hn = net(host);
    Status s = hn.ok() ? (*hn)->nft_run("delete element inet xo_lab " + element(flow) + "\n") : Status(hn.error());
    if (!s.ok() && first.ok()) first = annotate(s.take_error(), "unblock on " + host);
  }
  blocked_at_.erase(it);
  return first;
}

// Adds or removes the service address (v4 /32, v6 /128 nodad) on a host's eth0.
Status NftAddressDiverter::set_service_address(const std::string& host, bool present) {
  XO_ASSIGN_OR_RETURN(HostNet * hn, net(host));
  for (const auto& [text, family] : {std::pair{lab_.service_ip() + "/32", AF_INET},
                                     std::pair{lab_.service_ip6() + "/128", AF_INET6}}) {
    XO_ASSIGN_OR_RETURN(NlAddrPtr local, parse_addr(text, family));
    std::unique_ptr<rtnl_addr, Deleter<rtnl_addr, rtnl_addr_put>> addr(rtnl_addr_alloc());
    rtnl_addr_set_ifindex(addr.get(), hn->eth0);
    rtnl_addr_set_family(addr.get(), family);
    if (int e = rtnl_addr_set_local(addr.get(), local.get()); e < 0)
      return error(std::string("rtnl_addr_set_local: ") + nl_geterror(e));
    int e;
    if (present) {
      // nodad: an IPv6 address in DAD cannot be bound or answered from.
      if (family == AF_INET6) rtnl_addr_set_flags(addr.get(), IFA_F_NODAD);
      e = rtnl_addr_add(hn->rtnl, addr.get(), NLM_F_REPLACE);
    } else {
      e = rtnl_addr_delete(hn->rtnl, addr.get(), 0);
      if (e == -NLE_NOADDR || e == -NLE_OBJ_NOTFOUND) e = 0;  // already gone
    }
    if (e < 0)
      return error(std::string(present ? "add " : "delete ") + text + " on " + host + ": " + nl_geterror(e));
  }
  if (!present) return {};
  // IPv6 inserts an address's local route from a workqueue (DAD completion,
  // even with nodad): until then the host drops packets to the address.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  for (const auto& [ip, family] : {std::pair{lab_.service_ip(), AF_INET}, std::pair{lab_.service_ip6(), AF_INET6}}) {
    for (;;) {
      XO_ASSIGN_OR_RETURN(bool local, routes_locally(hn->route_query.get(), ip, family));
      if (local) break;
      if (std::chrono::steady_clock::now() > deadline) return error(ip + " never became local on " + host);
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
  return {};
}

Status NftAddressDiverter::prepare(const Flow&, const std::string& host) {
  std::lock_guard lock(mu_);
  if (host == address_owner_) return {};
  // The address on two hosts for a moment is harmless: the client's permanent
  // neighbour entry decides which one gets its packets.
  return set_service_address(host, true);
}

Status NftAddressDiverter::deliver_to(const Flow& flow, const std::string& host) {
  std::lock_guard lock(mu_);
  (void)flow;  // the service address carries every flow (see header)
  const Host* to = lab_.find(host);
  if (!to) return error("deliver_to: unknown host " + host);
  if (host == address_owner_) return {};
  // New owner first, then the client's neighbour entries, then the old owner
  // lets go: at no moment does the client's next packet find nobody.
  XO_TRY(set_service_address(host, true));
  XO_ASSIGN_OR_RETURN(HostNet * client, net("client"));
  XO_ASSIGN_OR_RETURN(NlAddrPtr mac, parse_addr(to->mac, AF_LLC));
  for (const auto& [ip, family] : {std::pair{lab_.service_ip(), AF_INET}, std::pair{lab_.service_ip6(), AF_INET6}}) {
    XO_ASSIGN_OR_RETURN(NlAddrPtr dst, parse_addr(ip, family));
    std::unique_ptr<rtnl_neigh, Deleter<rtnl_neigh, rtnl_neigh_put>> neigh(rtnl_neigh_alloc());
    rtnl_neigh_set_ifindex(neigh.get(), client->eth0);
    rtnl_neigh_set_family(neigh.get(), family);
    rtnl_neigh_set_dst(neigh.get(), dst.get());
    rtnl_neigh_set_lladdr(neigh.get(), mac.get());
    // Permanent: the client never re-resolves the address mid-move.
    rtnl_neigh_set_state(neigh.get(), NUD_PERMANENT);
    if (int e = rtnl_neigh_add(client->rtnl, neigh.get(), NLM_F_CREATE | NLM_F_REPLACE); e < 0)
      return error("client neighbour " + ip + " -> " + to->mac + ": " + nl_geterror(e));
  }
  XO_TRY(set_service_address(address_owner_, false));
  address_owner_ = host;
  return {};
}

std::string NftAddressDiverter::owner(const Flow&) const {
  std::lock_guard lock(mu_);
  return address_owner_;
}

std::unique_ptr<FlowDiverter> make_default_diverter(const Lab& lab) {
  // The steering layer replaces this line.
  return std::make_unique<NftAddressDiverter>(lab);
}

}  // namespace xo::lab
