#include "qa/system/steer/steer_lab.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/ethtool.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "qa/lab/netns.h"

namespace xo::steer::test {
namespace {

constexpr const char* kMountRoot = "/run/xo-steer";

void sweep_stale_mounts() {
  DIR* d = ::opendir(kMountRoot);
  if (!d) return;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    if (::access(("/run/xo-lab/" + name).c_str(), F_OK) == 0) continue;  // lab alive (or not yet swept)
    std::string path = std::string(kMountRoot) + "/" + name;
    ::umount2(path.c_str(), MNT_DETACH);
    ::rmdir(path.c_str());
  }
  ::closedir(d);
}

Result<sockaddr_storage> to_sockaddr(const Endpoint& e, socklen_t* len) {
  sockaddr_storage ss{};
  if (e.addr.family == AF_INET) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(e.port);
    std::memcpy(&sin->sin_addr, e.addr.bytes.data(), 4);
    *len = sizeof(*sin);
  } else if (e.addr.family == AF_INET6) {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(e.port);
    std::memcpy(&sin6->sin6_addr, e.addr.bytes.data(), 16);
    *len = sizeof(*sin6);
  } else {
    return error("endpoint without address family", EINVAL);
  }
  return ss;
}

bool wait_fd(int fd, short events, int timeout_ms) {
  pollfd p{fd, events, 0};
  return ::poll(&p, 1, timeout_ms) == 1;
}

}  // namespace

Result<std::unique_ptr<BpffsMount>> BpffsMount::create(const std::string& lab) {
  ::mkdir(kMountRoot, 0700);
  sweep_stale_mounts();
  auto m = std::make_unique<BpffsMount>();
  std::string path = std::string(kMountRoot) + "/" + lab;
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) return sys_error("mkdir " + path);
  if (::mount("bpf", path.c_str(), "bpf", 0, "mode=0700") != 0) return sys_error("mount bpffs on " + path);
  m->path_ = path;
  return m;
}

BpffsMount::~BpffsMount() {
  if (path_.empty()) return;
  // Unmounting drops the pins; programs still attached stay alive until
  // their interfaces (the lab's namespaces) go away.
  ::umount2(path_.c_str(), MNT_DETACH);
  ::rmdir(path_.c_str());
}

Status disable_tx_checksum_offload(const std::string& ns, const std::string& ifname) {
  XO_ASSIGN_OR_RETURN(auto scope, lab::NetnsScope::enter(ns));
  UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!s) return sys_error("socket");
  ethtool_value ev{};
  ev.cmd = ETHTOOL_STXCSUM;
  ev.data = 0;
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
  ifr.ifr_data = reinterpret_cast<char*>(&ev);
  if (::ioctl(s.get(), SIOCETHTOOL, &ifr) != 0) return sys_error("ETHTOOL_STXCSUM off on " + ifname + " in " + ns);
  return {};
}

int ifindex_in(const std::string& ns, const std::string& ifname) {
  auto scope = lab::NetnsScope::enter(ns);
  if (!scope.ok()) return 0;
  return static_cast<int>(if_nametoindex(ifname.c_str()));
}

Result<Endpoint> endpoint_of(int fd, bool peer) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  int ret = peer ? ::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len)
                 : ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  if (ret != 0) return sys_error(peer ? "getpeername" : "getsockname");
  Endpoint e;
  e.addr.family = ss.ss_family;
  if (ss.ss_family == AF_INET) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    std::memcpy(e.addr.bytes.data(), &sin->sin_addr, 4);
    e.port = ntohs(sin->sin_port);
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    std::memcpy(e.addr.bytes.data(), &sin6->sin6_addr, 16);
    e.port = ntohs(sin6->sin6_port);
  }
  return e;
}

Result<UniqueFd> listen_in(const std::string& ns, const IpAddr& addr, uint16_t port) {
  XO_ASSIGN_OR_RETURN(auto scope, lab::NetnsScope::enter(ns));
  UniqueFd s(::socket(addr.family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!s) return sys_error("socket");
  int one = 1;
  ::setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  socklen_t len = 0;
  XO_ASSIGN_OR_RETURN(sockaddr_storage ss, to_sockaddr(Endpoint{addr, port}, &len));
  if (::bind(s.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) return sys_error("bind " + addr.to_string());
  if (::listen(s.get(), 64) != 0) return sys_error("listen");
  return s;
}

Result<UniqueFd> connect_in(const std::string& ns, const Endpoint& src, const Endpoint& dst, int timeout_ms) {
  XO_ASSIGN_OR_RETURN(auto scope, lab::NetnsScope::enter(ns));
  UniqueFd s(::socket(dst.addr.family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!s) return sys_error("socket");
  int one = 1;
  ::setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  socklen_t len = 0;
  if (src.addr.family) {
    XO_ASSIGN_OR_RETURN(sockaddr_storage ss, to_sockaddr(src, &len));
    if (::bind(s.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) return sys_error("bind client");
  }
  XO_ASSIGN_OR_RETURN(sockaddr_storage ds, to_sockaddr(dst, &len));
  if (::connect(s.get(), reinterpret_cast<sockaddr*>(&ds), len) != 0 && errno != EINPROGRESS)
    return sys_error("connect");
  if (!wait_fd(s.get(), POLLOUT, timeout_ms)) return error("connect timed out", ETIMEDOUT);
  int err = 0;
  socklen_t elen = sizeof(err);
  ::getsockopt(s.get(), SOL_SOCKET, SO_ERROR, &err, &elen);
  if (err) return sys_error("connect", err);
  int flags = ::fcntl(s.get(), F_GETFL);
  ::fcntl(s.get(), F_SETFL, flags & ~O_NONBLOCK);
  return s;
}

Result<UniqueFd> accept_with_timeout(int listen_fd, int timeout_ms) {
  if (!wait_fd(listen_fd, POLLIN, timeout_ms)) return error("accept timed out", ETIMEDOUT);
  UniqueFd c(::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC));
  if (!c) return sys_error("accept");
  return c;
}

EchoServer::EchoServer(UniqueFd listener) : listener_(std::move(listener)), thread_([this] { loop(); }) {}

EchoServer::~EchoServer() {
  stop_ = true;
  thread_.join();
}

void EchoServer::loop() {
  std::vector<UniqueFd> conns;
  char buf[65536];
  while (!stop_) {
    std::vector<pollfd> fds{{listener_.get(), POLLIN, 0}};
    for (auto& c : conns) fds.push_back({c.get(), POLLIN, 0});
    if (::poll(fds.data(), fds.size(), 50) <= 0) continue;
    if (fds[0].revents & POLLIN) {
      UniqueFd c(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (c) {
        conns.push_back(std::move(c));
        accepted_++;
      }
    }
    for (size_t i = 1; i < fds.size(); i++) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = ::recv(fds[i].fd, buf, sizeof(buf), MSG_DONTWAIT);
      if (n <= 0) {
        if (n < 0 && errno == EAGAIN) continue;
        conns[i - 1].reset();
        continue;
      }
      for (ssize_t off = 0; off < n;) {
        ssize_t w = ::send(fds[i].fd, buf + off, static_cast<size_t>(n - off), MSG_NOSIGNAL);
        if (w <= 0) break;
        off += w;
      }
    }
    std::erase_if(conns, [](const UniqueFd& c) { return !c.valid(); });
  }
}

Result<void> echo_roundtrip(int fd, size_t bytes, int timeout_ms) {
  std::vector<uint8_t> out(bytes), in;
  for (size_t i = 0; i < bytes; i++) out[i] = static_cast<uint8_t>(i * 7 + (i >> 8));
  size_t sent = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  uint8_t buf[65536];
  while (in.size() < bytes) {
    int left = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count());
    if (left <= 0) return error("echo timed out after " + std::to_string(in.size()) + " of " + std::to_string(bytes) + " bytes", ETIMEDOUT);
    pollfd p{fd, static_cast<short>(POLLIN | (sent < bytes ? POLLOUT : 0)), 0};
    if (::poll(&p, 1, left) <= 0) continue;
    if ((p.revents & POLLOUT) && sent < bytes) {
      ssize_t w = ::send(fd, out.data() + sent, std::min<size_t>(bytes - sent, 16384), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w < 0 && errno != EAGAIN) return sys_error("send");
      if (w > 0) sent += static_cast<size_t>(w);
    }
    if (p.revents & (POLLIN | POLLERR | POLLHUP)) {
      ssize_t n = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
      if (n == 0) return error("peer closed during echo", ECONNRESET);
      if (n < 0 && errno != EAGAIN) return sys_error("recv");
      if (n > 0) in.insert(in.end(), buf, buf + n);
    }
  }
  if (std::memcmp(in.data(), out.data(), bytes) != 0) return error("echoed bytes differ", EIO);
  return {};
}

Result<std::unique_ptr<WireRecorder>> WireRecorder::start(const std::string& ns, const std::string& ifname) {
  XO_ASSIGN_OR_RETURN(auto scope, lab::NetnsScope::enter(ns));
  UniqueFd fd(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL)));
  if (!fd) return sys_error("socket(AF_PACKET)");
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = static_cast<int>(if_nametoindex(ifname.c_str()));
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sll), sizeof(sll)) != 0) return sys_error("bind AF_PACKET");
  auto r = std::unique_ptr<WireRecorder>(new WireRecorder);
  r->fd_ = std::move(fd);
  r->thread_ = std::thread([p = r.get()] { p->loop(); });
  return r;
}

WireRecorder::~WireRecorder() { stop(); }

std::vector<WirePacket> WireRecorder::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> lock(mu_);
  return packets_;
}

void WireRecorder::loop() {
  uint8_t frame[2048];
  for (;;) {
    bool stopping = stop_.load();
    pollfd p{fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, stopping ? 0 : 20) <= 0) {
      if (stopping) return;  // drained
      continue;
    }
    sockaddr_ll from{};
    socklen_t fl = sizeof(from);
    ssize_t n = ::recvfrom(fd_.get(), frame, sizeof(frame), MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), &fl);
    if (n < 14) continue;
    WirePacket w;
    w.outgoing = from.sll_pkttype == PACKET_OUTGOING;
    uint16_t proto = static_cast<uint16_t>(frame[12] << 8 | frame[13]);
    size_t l4 = 0;
    if (proto == ETH_P_IP && n >= 34) {
      auto* ip = reinterpret_cast<const iphdr*>(frame + 14);
      if (ip->protocol != IPPROTO_TCP) continue;
      w.src.family = w.dst.family = AF_INET;
      std::memcpy(w.src.bytes.data(), &ip->saddr, 4);
      std::memcpy(w.dst.bytes.data(), &ip->daddr, 4);
      l4 = 14 + ip->ihl * 4u;
    } else if (proto == ETH_P_IPV6 && n >= 54) {
      auto* ip6 = reinterpret_cast<const ip6_hdr*>(frame + 14);
      if (ip6->ip6_nxt != IPPROTO_TCP) continue;
      w.src.family = w.dst.family = AF_INET6;
      std::memcpy(w.src.bytes.data(), &ip6->ip6_src, 16);
      std::memcpy(w.dst.bytes.data(), &ip6->ip6_dst, 16);
      l4 = 54;
    } else {
      continue;
    }
    if (static_cast<size_t>(n) < l4 + 20) continue;
    auto* tcp = reinterpret_cast<const tcphdr*>(frame + l4);
    w.src_port = ntohs(tcp->source);
    w.dst_port = ntohs(tcp->dest);
    w.flags = frame[l4 + 13];
    std::lock_guard<std::mutex> lock(mu_);
    packets_.push_back(w);
  }
}

}  // namespace xo::steer::test
