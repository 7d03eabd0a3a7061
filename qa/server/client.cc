#include "qa/server/client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include "qa/server/beast_stream.h"
#include "qa/server/stream.h"

namespace xo::testserver {

namespace http = boost::beast::http;

struct Client::Impl {
  boost::beast::flat_buffer buf;
};

Client::Client(UniqueFd fd) : fd_(std::move(fd)), impl_(std::make_unique<Impl>()) {}
Client::Client(Client&&) noexcept = default;
Client::~Client() = default;

Result<Client> Client::connect(const std::string& ip, uint16_t port, int timeout_s) {
  sockaddr_storage ss{};
  socklen_t len;
  int family = ip.find(':') != std::string::npos ? AF_INET6 : AF_INET;
  if (family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    if (::inet_pton(AF_INET6, ip.c_str(), &a->sin6_addr) != 1) return error("bad address " + ip);
    len = sizeof *a;
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    if (::inet_pton(AF_INET, ip.c_str(), &a->sin_addr) != 1) return error("bad address " + ip);
    len = sizeof *a;
  }
  UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return sys_error("socket");
  timeval tv{timeout_s, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) return sys_error("connect " + ip);
  return Client(std::move(fd));
}

Status Client::send_raw(const std::string& bytes) {
  FdStream s(fd_.get());
  size_t off = 0;
  while (off < bytes.size()) {
    XO_ASSIGN_OR_RETURN(size_t n, s.write_some(std::span<const uint8_t>(
                                      reinterpret_cast<const uint8_t*>(bytes.data()) + off, bytes.size() - off)));
    off += n;
  }
  return {};
}

Status Client::send_get(const std::string& target, bool keep_alive, const std::string& method) {
  return send_raw(method + " " + target + " HTTP/1.1\r\nHost: xo-lab\r\n" +
                  (keep_alive ? "" : "Connection: close\r\n") + "\r\n");
}

Result<Response> Client::read_response(bool head_request) {
  FdStream s(fd_.get());
  BeastStream bs(s);
  http::response_parser<http::string_body> parser;
  parser.body_limit(1ull << 31);
  parser.skip(head_request);
  boost::beast::error_code ec;
  http::read(bs, impl_->buf, parser, ec);
  if (ec) return error("read response: " + ec.message(), ec.value());
  auto& res = parser.get();
  Response out;
  out.status = static_cast<int>(res.result_int());
  for (const auto& f : res) {
    std::string name(f.name_string());
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    out.headers[name] = std::string(f.value());
  }
  out.keep_alive = res.keep_alive();
  out.body = std::move(res.body());
  return out;
}

}  // namespace xo::testserver
