#include "common/handoff/node/flow_keys.h"

#include <arpa/inet.h>
#include <linux/sockios.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cstring>

#include "common/handoff/wire/endpoint.h"
#include "common/tcp/repair.h"

namespace xo::handoff::node {
namespace {

// sockaddr → address + port; v4-mapped IPv6 becomes IPv4 (the wire sees IPv4).
void split(const sockaddr_storage& ss, steer::IpAddr* ip, uint16_t* port) {
  *ip = {};
  if (ss.ss_family == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6&>(ss);
    *port = ntohs(a.sin6_port);
    if (IN6_IS_ADDR_V4MAPPED(&a.sin6_addr)) {
      ip->family = AF_INET;
      std::memcpy(ip->bytes.data(), &a.sin6_addr.s6_addr[12], 4);
    } else {
      ip->family = AF_INET6;
      std::memcpy(ip->bytes.data(), &a.sin6_addr, 16);
    }
  } else {
    const auto& a = reinterpret_cast<const sockaddr_in&>(ss);
    *port = ntohs(a.sin_port);
    ip->family = AF_INET;
    std::memcpy(ip->bytes.data(), &a.sin_addr, 4);
  }
}

pb::Endpoint wire_endpoint(const steer::IpAddr& ip, uint16_t port) {
  pb::Endpoint e;
  e.set_ip(std::string(reinterpret_cast<const char*>(ip.bytes.data()), ip.size()));
  e.set_port(port);
  return e;
}

Result<void> read_endpoint(const pb::Endpoint& e, steer::IpAddr* ip, uint16_t* port) {
  XO_ASSIGN_OR_RETURN(sockaddr_storage ss, wire::endpoint_from_wire(e));
  split(ss, ip, port);
  return {};
}

}  // namespace

std::string FlowInfo::to_string() const {
  return "flow " + std::to_string(flow_id) + " " + client_ip.to_string() + ":" + std::to_string(client_port) +
         " -> " + service_ip.to_string() + ":" + std::to_string(service_port);
}

Result<FlowInfo> flow_of_socket(int fd) {
  sockaddr_storage local{}, peer{};
  socklen_t len = sizeof local;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) return sys_error("getsockname");
  len = sizeof peer;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0) return sys_error("getpeername");
  FlowInfo f;
  split(local, &f.service_ip, &f.service_port);
  split(peer, &f.client_ip, &f.client_port);
  if (f.service_ip.family != f.client_ip.family) return error("socket mixes address families", EAFNOSUPPORT);
  return f;
}

Result<FlowInfo> flow_from_wire(const pb::Flow& flow, uint64_t flow_id) {
  FlowInfo f;
  f.flow_id = flow_id;
  XO_TRY(read_endpoint(flow.client(), &f.client_ip, &f.client_port));
  XO_TRY(read_endpoint(flow.service(), &f.service_ip, &f.service_port));
  if (f.service_ip.family != f.client_ip.family) return error("flow mixes address families", EAFNOSUPPORT);
  return f;
}

Result<pb::Flow> flow_to_wire(const FlowInfo& f) {
  pb::Flow w;
  *w.mutable_client() = wire_endpoint(f.client_ip, f.client_port);
  *w.mutable_service() = wire_endpoint(f.service_ip, f.service_port);
  return w;
}

steer::FlowKey frontend_ingress_key(const FlowInfo& f) {
  return {f.client_ip, f.client_port, f.service_ip, f.service_port};
}
steer::FlowKey frontend_egress_key(const FlowInfo& f) {
  return {f.service_ip, f.service_port, f.client_ip, f.client_port};
}
steer::FlowKey target_ingress_key(const FlowInfo& f, const steer::IpAddr& target_ip) {
  return {f.client_ip, f.client_port, target_ip, f.service_port};
}
steer::FlowKey target_egress_key(const FlowInfo& f, const steer::IpAddr& target_ip) {
  return {target_ip, f.service_port, f.client_ip, f.client_port};
}

tcp::Endpoint to_endpoint(const steer::IpAddr& ip, uint16_t port, int family) {
  tcp::Endpoint e;
  if (ip.family == AF_INET6) {
    auto& a = reinterpret_cast<sockaddr_in6&>(e.addr);
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(port);
    std::memcpy(&a.sin6_addr, ip.bytes.data(), 16);
  } else if (family == AF_INET6) {
    auto& a = reinterpret_cast<sockaddr_in6&>(e.addr);
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(port);
    a.sin6_addr.s6_addr[10] = 0xff;
    a.sin6_addr.s6_addr[11] = 0xff;
    std::memcpy(&a.sin6_addr.s6_addr[12], ip.bytes.data(), 4);
  } else {
    auto& a = reinterpret_cast<sockaddr_in&>(e.addr);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    std::memcpy(&a.sin_addr, ip.bytes.data(), 4);
  }
  return e;
}

void close_silently(UniqueFd fd) {
  if (!fd) return;
  // Already in repair mode after capture(); a restored socket is not: put it
  // back so close() sends neither FIN nor RST.
  (void)tcp::repair::set_mode(fd.get(), TCP_REPAIR_ON);
  fd.reset();
}

void elicit_ack(int fd) {
  if (fd < 0) return;
  // Leaving repair mode resets SO_REUSEADDR (repair forces sk_reuse): put it back.
  int reuse = 0;
  socklen_t len = sizeof reuse;
  (void)::getsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse, &len);
  if (tcp::repair::set_mode(fd, TCP_REPAIR_ON).ok()) (void)tcp::repair::set_mode(fd, TCP_REPAIR_OFF);
  if (reuse) (void)::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse, sizeof reuse);
}

void elicit_ack_if_unacked(int fd) {
  int outq = 0;
  if (::ioctl(fd, SIOCOUTQ, &outq) == 0 && outq == 0) return;
  elicit_ack(fd);
}

uint16_t tag_of_host(const std::string& host_id) {
  uint32_t h = 2166136261u;  // FNV-1a
  for (unsigned char c : host_id) h = (h ^ c) * 16777619u;
  uint16_t tag = static_cast<uint16_t>(h ^ (h >> 16));
  return tag ? tag : 1;
}

}  // namespace xo::handoff::node
