#include "qa/ceph/s3_get.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace xo::ceph_lab {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;

std::string uri_encode(const std::string& s, bool keep_slash) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

Result<GetResponse> s3_get(uint16_t port, const std::string& bucket, const std::string& key,
                           const std::string& version_id, std::optional<std::pair<uint64_t, uint64_t>> range) {
  boost::asio::io_context io;
  tcp::socket sock(io);
  beast::error_code ec;
  sock.connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port), ec);
  if (ec) return error("connect to radosgw: " + ec.message());
  std::string target = "/" + bucket + "/" + uri_encode(key);
  if (!version_id.empty()) target += "?versionId=" + uri_encode(version_id, false);
  http::request<http::empty_body> req{http::verb::get, target, 11};
  req.set(http::field::host, "127.0.0.1");
  if (range) req.set(http::field::range, "bytes=" + std::to_string(range->first) + "-" + std::to_string(range->second));
  http::write(sock, req, ec);
  if (ec) return error("send GET " + target + ": " + ec.message());
  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(uint64_t{1} << 31);
  http::read(sock, buf, parser, ec);
  if (ec) return error("read response to GET " + target + ": " + ec.message());
  auto res = parser.release();
  GetResponse out;
  out.status = res.result_int();
  out.body = std::move(res.body());
  out.etag = std::string(res[http::field::etag]);
  return out;
}

}  // namespace xo::ceph_lab
