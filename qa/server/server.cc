#include "qa/server/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <sys/socket.h>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <cstdio>
#include <cstring>

#include "qa/server/beast_stream.h"
#include "qa/server/content.h"
#include "qa/server/stream.h"

namespace xo::testserver {

namespace http = boost::beast::http;

namespace {

constexpr size_t kChunk = 64 * 1024;
constexpr uint64_t kMaxDataSize = 16ull << 30;

// "/data/<size>/<seed>" → size, seed.
bool parse_data_target(std::string_view t, uint64_t* size, uint64_t* seed) {
  constexpr std::string_view prefix = "/data/";
  if (t.substr(0, prefix.size()) != prefix) return false;
  t.remove_prefix(prefix.size());
  auto slash = t.find('/');
  if (slash == std::string_view::npos) return false;
  auto a = t.substr(0, slash), b = t.substr(slash + 1);
  auto r1 = std::from_chars(a.data(), a.data() + a.size(), *size);
  auto r2 = std::from_chars(b.data(), b.data() + b.size(), *seed);
  return r1.ec == std::errc() && r1.ptr == a.data() + a.size() && r2.ec == std::errc() &&
         r2.ptr == b.data() + b.size() && !a.empty() && !b.empty() && *size <= kMaxDataSize;
}

std::string sha256_hex(const std::string& body) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(body.data(), body.size(), md, &len, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

bool write_all(Stream& s, const uint8_t* p, size_t n) {
  while (n > 0) {
    auto w = s.write_some(std::span<const uint8_t>(p, n));
    if (!w.ok() || *w == 0) return false;
    p += *w;
    n -= *w;
  }
  return true;
}

}  // namespace

// One connection on its thread: parse requests from `buf_`, answer them,
// hand the connection over when the hook says so.
class Connection {
 public:
  Connection(Server& server, UniqueFd fd, std::unique_ptr<Stream> stream, ResumeState st)
      : server_(server), fd_(std::move(fd)), stream_(std::move(stream)), beast_(*stream_), st_(std::move(st)) {
    if (!st_.unread.empty()) {
      auto mb = buf_.prepare(st_.unread.size());
      std::memcpy(mb.data(), st_.unread.data(), st_.unread.size());
      buf_.commit(st_.unread.size());
      st_.unread.clear();
    }
  }

  void run() {
    if (st_.owed) {
      Owed owed = *st_.owed;
      st_.owed.reset();
      // Adopted with a request in hand: answer it, never bounce it back at once.
      if (auto o = answer(owed, /*ask_before=*/false); o != Outcome::kContinue) return finish(o);
      if (auto o = after_response(owed); o != Outcome::kContinue) return finish(o);
    }
    while (!server_.stopping_.load()) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(256u << 20);
      boost::beast::error_code ec;
      http::read(beast_, buf_, parser, ec);
      if (ec) return finish(Outcome::kClose, /*client_closed=*/true);  // end_of_stream (client done), reset, or malformed
      auto& req = parser.get();
      uint64_t seq = ++st_.requests;
      if (req.method() == http::verb::post || req.method() == http::verb::put) {
        if (!echo_digest(req, seq) || !req.keep_alive()) break;
        continue;
      }
      Owed owed{std::string(req.method_string()), std::string(req.target()), req.keep_alive(), seq};
      if (auto o = answer(owed, /*ask_before=*/true); o != Outcome::kContinue) return finish(o);
      if (auto o = after_response(owed); o != Outcome::kContinue) return finish(o);
    }
    finish(Outcome::kClose);
  }

 private:
  enum class Outcome { kContinue, kClose, kHandedOver };

  // `client_closed`: the client ended the connection (or broke it); else
  // this server closes first and lingers.
  void finish(Outcome o, bool client_closed = false) {
    if (o == Outcome::kHandedOver) return;
    if (!client_closed) close_gracefully();
    if (server_.opts_.hook) server_.opts_.hook->closed(fd_.get());
    server_.forget(fd_.get());
    fd_.reset();
  }

  // A lingering close, as web servers do: close_notify and FIN, then read
  // until the client's FIN (at most 1 s). Closing with the client's last
  // bytes unread (its own close_notify, a pipelined request) would answer
  // them with an RST, which can also destroy a response still in flight.
  void close_gracefully() {
    if (server_.stopping_.load()) return;
    (void)stream_->close_notify();
    if (::shutdown(fd_.get(), SHUT_WR) != 0) return;  // reset already
    const timeval linger{1, 0};
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &linger, sizeof linger);
    uint8_t sink[4096];
    for (int i = 0; i < 256; ++i) {
      ssize_t n = ::recv(fd_.get(), sink, sizeof sink, 0);
      if (n <= 0) break;  // the client's FIN, a reset, or the 1 s timeout
    }
  }

  RequestInfo info(const Owed& owed, uint64_t body_size) const {
    return {server_.name(), owed.method, owed.target, owed.keep_alive, owed.seq, body_size};
  }

  // The hook may take the connection between two requests (nothing owed).
  Outcome after_response(const Owed& answered) {
    Hook* hook = server_.opts_.hook;
    if (!hook || !hook->hand_over_after_response(fd_.get(), info(answered, 0))) return Outcome::kContinue;
    return hand_over(std::nullopt);
  }

  Outcome hand_over(std::optional<Owed> owed) {
    ResumeState out;
    // The stream stops first (TLS: at a record boundary); if it cannot, the
    // connection cannot move and is closed rather than served half-moved.
    auto carried = stream_->freeze_for_handover();
    if (!carried.ok()) {
      std::fprintf(stderr, "testserver %s: cannot hand over: %s\n", server_.name().c_str(),
                   carried.error().to_string().c_str());
      return Outcome::kClose;
    }
    out.stream = std::move(*carried);
    out.requests = st_.requests;
    out.owed = std::move(owed);
    auto data = buf_.data();
    auto* p = static_cast<const uint8_t*>(data.data());
    out.unread.assign(p, p + data.size());
    server_.forget(fd_.get());
    {
      std::lock_guard lock(server_.mu_);
      ++server_.stats_.handed_over;
    }
    server_.opts_.hook->take(std::move(fd_), std::move(out));
    return Outcome::kHandedOver;
  }

  Outcome answer(Owed& owed, bool ask_before) {
    Hook* hook = server_.opts_.hook;
    uint64_t size = 0, seed = 0;
    bool found = (owed.method == "GET" || owed.method == "HEAD") && parse_data_target(owed.target, &size, &seed);
    if (hook && ask_before && !owed.head_written && hook->hand_over_before_response(info(owed, found ? size : 0)))
      return hand_over(std::move(owed));
    {
      std::lock_guard lock(server_.mu_);
      ++server_.stats_.requests;
    }
    if (!found) return write_small(http::status::not_found, "not found\n", owed.seq, owed.keep_alive);
    if (!owed.head_written) {
      http::response<http::empty_body> res{http::status::ok, 11};
      res.set(http::field::server, "xo-testserver");
      res.set(http::field::content_type, "application/octet-stream");
      res.set("X-Served-By", server_.name());
      res.set("X-Request-Seq", std::to_string(owed.seq));
      res.content_length(size);
      res.keep_alive(owed.keep_alive);
      http::response_serializer<http::empty_body> sr{res};
      boost::beast::error_code ec;
      http::write_header(beast_, sr, ec);
      if (ec) return Outcome::kClose;
      owed.head_written = true;
      owed.body_offset = 0;
    }
    if (owed.method == "HEAD") return owed.keep_alive ? Outcome::kContinue : Outcome::kClose;
    uint64_t stop = size;
    if (hook && owed.body_offset == 0) {
      hook->before_body(fd_.get(), info(owed, size));
      if (auto at = hook->hand_over_at(info(owed, size)); at && *at < size) stop = *at;
    }
    uint8_t chunk[kChunk];
    while (owed.body_offset < stop) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, stop - owed.body_offset));
      content_fill(seed, owed.body_offset, std::span<uint8_t>(chunk, n));
      if (!write_all(*stream_, chunk, n)) return Outcome::kClose;
      owed.body_offset += n;
      std::lock_guard lock(server_.mu_);
      server_.stats_.body_bytes += n;
    }
    if (stop < size) return hand_over(std::move(owed));
    return owed.keep_alive ? Outcome::kContinue : Outcome::kClose;
  }

  bool echo_digest(const http::request<http::string_body>& req, uint64_t seq) {
    {
      std::lock_guard lock(server_.mu_);
      ++server_.stats_.requests;
    }
    return write_small(http::status::ok, sha256_hex(req.body()) + "\n", seq, req.keep_alive()) == Outcome::kContinue;
  }

  Outcome write_small(http::status status, std::string body, uint64_t seq, bool keep_alive) {
    http::response<http::string_body> res{status, 11};
    res.set(http::field::server, "xo-testserver");
    res.set(http::field::content_type, "text/plain");
    res.set("X-Served-By", server_.name());
    res.set("X-Request-Seq", std::to_string(seq));
    res.body() = std::move(body);
    res.keep_alive(keep_alive);
    res.prepare_payload();
    boost::beast::error_code ec;
    http::write(beast_, res, ec);
    if (ec || !keep_alive) return Outcome::kClose;
    return Outcome::kContinue;
  }

  Server& server_;
  UniqueFd fd_;
  std::unique_ptr<Stream> stream_;
  BeastStream beast_;
  boost::beast::flat_buffer buf_;
  ResumeState st_;
};

Result<std::unique_ptr<Server>> Server::start(ServerOptions opts) {
  auto server = std::unique_ptr<Server>(new Server(std::move(opts)));
  sockaddr_storage ss{};
  socklen_t len = 0;
  const std::string& ip = server->opts_.listen;
  int family = ip.find(':') != std::string::npos ? AF_INET6 : AF_INET;
  if (family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(server->opts_.port);
    if (::inet_pton(AF_INET6, ip.c_str(), &a->sin6_addr) != 1) return error("bad listen address " + ip);
    len = sizeof *a;
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(server->opts_.port);
    if (::inet_pton(AF_INET, ip.c_str(), &a->sin_addr) != 1) return error("bad listen address " + ip);
    len = sizeof *a;
  }
  UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return sys_error("socket");
  int on = 1, off = 0;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  if (family == AF_INET6) ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0)
    return sys_error("bind " + ip + " port " + std::to_string(server->opts_.port));
  if (::listen(fd.get(), 128) != 0) return sys_error("listen");
  len = sizeof ss;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len);
  server->port_ = ntohs(family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                           : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  server->listener_ = std::move(fd);
  server->acceptor_ = std::thread([s = server.get()] { s->accept_loop(); });
  return server;
}

Server::~Server() { stop(); }

void Server::accept_loop() {
  while (!stopping_.load()) {
    int c = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      break;  // shutdown() by stop() → EINVAL
    }
    spawn(UniqueFd(c), ResumeState{});
  }
}

void Server::adopt(UniqueFd fd, ResumeState state) { spawn(std::move(fd), std::move(state)); }

void Server::spawn(UniqueFd fd, ResumeState state) {
  std::lock_guard lock(mu_);
  if (stopping_.load()) return;  // fd closes here
  live_fds_.insert(fd.get());
  ++stats_.connections;
  workers_.emplace_back([this, f = fd.release(), st = std::move(state)]() mutable {
    serve(UniqueFd(f), std::move(st));
  });
}

void Server::serve(UniqueFd fd, ResumeState state) {
  auto stream = [&]() -> Result<std::unique_ptr<Stream>> {
    if (!opts_.streams) return std::unique_ptr<Stream>(new FdStream(fd.get()));
    if (state.stream.empty()) return opts_.streams->accept(fd.get());
    return opts_.streams->resume(fd.get(), state.stream);
  }();
  if (!stream.ok()) {
    std::fprintf(stderr, "testserver %s: %s\n", opts_.name.c_str(), stream.error().to_string().c_str());
    forget(fd.get());
    return;  // fd closes here
  }
  state.stream.clear();
  Connection conn(*this, std::move(fd), std::move(*stream), std::move(state));
  conn.run();
}

void Server::forget(int fd) {
  std::lock_guard lock(mu_);
  live_fds_.erase(fd);
}

void Server::stop() {
  if (stopping_.exchange(true)) {
    // Another caller is stopping; still wait for our threads below.
  }
  if (listener_) ::shutdown(listener_.get(), SHUT_RDWR);
  if (acceptor_.joinable()) acceptor_.join();
  for (;;) {
    std::list<std::thread> workers;
    {
      std::lock_guard lock(mu_);
      // Wake blocked readers; a test stops its servers after its clients finished.
      for (int fd : live_fds_) ::shutdown(fd, SHUT_RDWR);
      workers.swap(workers_);
    }
    if (workers.empty()) break;
    for (auto& t : workers) t.join();
  }
  listener_.reset();
}

ServerStats Server::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace xo::testserver
