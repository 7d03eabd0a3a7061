#include "common/handoff/wire/endpoint.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

#include "common/handoff/wire/errors.h"
#include "common/handoff/wire/messages.h"

namespace xo::handoff::wire {

Result<pb::Endpoint> endpoint_to_wire(const sockaddr_storage& addr) {
  pb::Endpoint e;
  if (addr.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(addr);
    e.set_ip(&in.sin_addr, 4);
    e.set_port(ntohs(in.sin_port));
  } else if (addr.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(addr);
    e.set_ip(&in6.sin6_addr, 16);
    e.set_port(ntohs(in6.sin6_port));
  } else {
    return error("endpoint: address family " + std::to_string(addr.ss_family) + " is not IPv4 or IPv6",
                 errc::kInvalidField);
  }
  XO_TRY(validate(e, "endpoint"));
  return e;
}

Result<sockaddr_storage> endpoint_from_wire(const pb::Endpoint& endpoint) {
  XO_TRY(validate(endpoint, "endpoint"));
  sockaddr_storage addr{};
  if (endpoint.ip().size() == 4) {
    auto& in = reinterpret_cast<sockaddr_in&>(addr);
    in.sin_family = AF_INET;
    std::memcpy(&in.sin_addr, endpoint.ip().data(), 4);
    in.sin_port = htons(static_cast<uint16_t>(endpoint.port()));
  } else {
    auto& in6 = reinterpret_cast<sockaddr_in6&>(addr);
    in6.sin6_family = AF_INET6;
    std::memcpy(&in6.sin6_addr, endpoint.ip().data(), 16);
    in6.sin6_port = htons(static_cast<uint16_t>(endpoint.port()));
  }
  return addr;
}

}  // namespace xo::handoff::wire
