#include "common/tcp/test/loopback.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cstdio>
#include <cstring>
#include <regex>

namespace xo::tcp::testing {

Status enter_private_netns() {
  if (::unshare(CLONE_NEWNET) != 0) return sys_error("unshare(CLONE_NEWNET) (needs root)");
  UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!s) return sys_error("socket for SIOCSIFFLAGS");
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (::ioctl(s.get(), SIOCGIFFLAGS, &ifr) != 0) return sys_error("SIOCGIFFLAGS lo");
  ifr.ifr_flags |= IFF_UP;
  if (::ioctl(s.get(), SIOCSIFFLAGS, &ifr) != 0) return sys_error("SIOCSIFFLAGS lo up");
  return {};
}

Result<Pair> loopback_pair(int family, int client_rcvbuf) {
  sockaddr_storage ss{};
  socklen_t len;
  if (family == AF_INET6) {
    auto& a = reinterpret_cast<sockaddr_in6&>(ss);
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    len = sizeof(a);
  } else {
    auto& a = reinterpret_cast<sockaddr_in&>(ss);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof(a);
  }
  UniqueFd lst(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!lst) return sys_error("socket(listen)");
  if (::bind(lst.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) return sys_error("bind");
  if (::listen(lst.get(), 4) != 0) return sys_error("listen");
  if (::getsockname(lst.get(), reinterpret_cast<sockaddr*>(&ss), &len) != 0)
    return sys_error("getsockname");
  Pair p;
  p.client.reset(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!p.client) return sys_error("socket(client)");
  if (client_rcvbuf &&
      ::setsockopt(p.client.get(), SOL_SOCKET, SO_RCVBUF, &client_rcvbuf, sizeof(client_rcvbuf)) != 0)
    return sys_error("setsockopt(SO_RCVBUF)");
  if (::connect(p.client.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) return sys_error("connect");
  p.server.reset(::accept4(lst.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!p.server) return sys_error("accept");
  sockaddr_storage cs{};
  socklen_t clen = sizeof(cs);
  ::getsockname(p.client.get(), reinterpret_cast<sockaddr*>(&cs), &clen);
  auto port = [](const sockaddr_storage& a) {
    return ntohs(a.ss_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6&>(a).sin6_port
                                         : reinterpret_cast<const sockaddr_in&>(a).sin_port);
  };
  p.client_port = port(cs);
  p.server_port = port(ss);
  return p;
}

Status nft(const std::string& script) {
  FILE* f = ::popen("nft -f - 2>&1 1>/dev/null", "w");
  if (!f) return sys_error("popen(nft)");
  std::fwrite(script.data(), 1, script.size(), f);
  int rc = ::pclose(f);
  if (rc != 0) return error("nft failed (status " + std::to_string(rc) + ") on:\n" + script);
  return {};
}

Status drop_flow(const std::string& table, uint16_t src_port, uint16_t dst_port) {
  return nft("table inet " + table + " {\n chain in {\n  type filter hook input priority 0;\n" +
             "  meta mark != 0xc114 tcp sport " + std::to_string(src_port) + " tcp dport " + std::to_string(dst_port) +
             " drop\n }\n}\n");
}

Status delete_table(const std::string& table) { return nft("delete table inet " + table + "\n"); }

Status install_rst_counter() {
  return nft(
      "table inet xo_rst {\n counter rsts { }\n chain out {\n  type filter hook output priority 0;\n"
      "  tcp flags & rst == rst counter name rsts\n }\n}\n");
}

Result<long> rst_count() {
  FILE* f = ::popen("nft list counter inet xo_rst rsts", "r");
  if (!f) return sys_error("popen(nft list counter)");
  std::string out;
  char buf[512];
  while (size_t n = std::fread(buf, 1, sizeof(buf), f)) out.append(buf, n);
  if (::pclose(f) != 0) return error("nft list counter failed: " + out);
  std::smatch m;
  if (!std::regex_search(out, m, std::regex("packets ([0-9]+)")))
    return error("no packet count in: " + out);
  return std::stol(m[1]);
}

Result<std::vector<uint8_t>> read_exactly(int fd, size_t n, int timeout_ms) {
  std::vector<uint8_t> out(n);
  size_t got = 0;
  while (got < n) {
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, timeout_ms);
    if (r == 0) return error("timeout after " + std::to_string(got) + " of " + std::to_string(n) + " bytes");
    if (r < 0) return sys_error("poll");
    ssize_t k = ::recv(fd, out.data() + got, n - got, MSG_DONTWAIT);
    if (k == 0) return error("EOF after " + std::to_string(got) + " of " + std::to_string(n) + " bytes");
    if (k < 0) {
      if (errno == EAGAIN) continue;
      return sys_error("recv");
    }
    got += static_cast<size_t>(k);
  }
  return out;
}

Status write_all(int fd, const std::vector<uint8_t>& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t k = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (k <= 0) return sys_error("send");
    off += static_cast<size_t>(k);
  }
  return {};
}

std::vector<uint8_t> pattern(size_t n, uint32_t seed) {
  std::vector<uint8_t> v(n);
  uint32_t x = seed * 2654435761u + 1;
  for (auto& b : v) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b = static_cast<uint8_t>(x);
  }
  return v;
}

int tcp_state(int fd) {
  tcp_info ti{};
  socklen_t len = sizeof(ti);
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) return -1;
  return ti.tcpi_state;
}

void close_silently(UniqueFd& fd) {
  int on = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_REPAIR, &on, sizeof(on));
  fd.reset();
}

}  // namespace xo::tcp::testing
