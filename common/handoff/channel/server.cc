#include "common/handoff/channel/server.h"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "common/handoff/channel/socket_tuning.h"
#include "common/handoff/channel/tls_config.h"

namespace xo::handoff::channel {
using asio::ip::tcp;

Result<std::shared_ptr<Server>> Server::create(asio::io_context& io, std::shared_ptr<asio::ssl::context> tls,
                                               ServerOptions options) {
  if (!tls) return error("control server: no TLS context (there is no plaintext mode)", EINVAL);
  if (!options.log) options.log = stderr_logger("server");
  std::shared_ptr<Server> server(new Server(io, std::move(tls), std::move(options)));
  boost::system::error_code ec;
  auto& a = server->acceptor_;
  const auto& at = server->options_.listen;
  a.open(at.protocol(), ec);
  if (!ec) a.set_option(tcp::acceptor::reuse_address(true), ec);  // restart on the same port
  if (!ec) a.bind(at, ec);
  if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return error("control server: listen on " + at.address().to_string() + ":" + std::to_string(at.port()) +
                           ": " + ec.message(),
                       ec.value());
  server->local_ = a.local_endpoint(ec);
  return server;
}

Server::Server(asio::io_context& io, std::shared_ptr<asio::ssl::context> tls, ServerOptions options)
    : io_(io), tls_(std::move(tls)), options_(std::move(options)), acceptor_(io) {}

Server::~Server() {
  boost::system::error_code ec;
  acceptor_.close(ec);
}

void Server::start() {
  asio::post(acceptor_.get_executor(), [self = shared_from_this()] { self->accept_next(); });
}

void Server::accept_next() {
  // Each connection gets its own strand; the acceptor runs on the io_context.
  acceptor_.async_accept(asio::make_strand(io_), [self = shared_from_this()](boost::system::error_code ec,
                                                                             tcp::socket socket) {
    if (self->stopped_.load()) return;
    if (ec) {
      self->options_.log("accept: " + ec.message());
      if (ec == asio::error::operation_aborted) return;
    } else {
      ++self->accepted_;
      self->handshake(std::move(socket));
    }
    self->accept_next();
  });
}

void Server::handshake(tcp::socket socket) {
  boost::system::error_code ec;
  const auto remote = socket.remote_endpoint(ec);
  const std::string who = remote.address().to_string() + ":" + std::to_string(remote.port());
  tune_control_socket(socket);
  auto stream = std::make_shared<TlsStream>(std::move(socket), *tls_);
  // A peer that connects and says nothing must not hold a slot forever.
  auto timer = std::make_shared<asio::steady_timer>(stream->get_executor(), options_.handshake_timeout);
  auto timed_out = std::make_shared<bool>(false);
  timer->async_wait([stream, timed_out](boost::system::error_code ec) {
    if (ec) return;
    *timed_out = true;
    boost::system::error_code ignored;
    stream->lowest_layer().close(ignored);
  });
  stream->async_handshake(asio::ssl::stream_base::server, [self = shared_from_this(), stream, timer, timed_out,
                                                           who](boost::system::error_code ec) {
    timer->cancel();
    if (ec) {
      std::string why = *timed_out ? "no TLS handshake within " +
                                         std::to_string(self->options_.handshake_timeout.count()) + " ms"
                                   : ec.message();
      const long verify = SSL_get_verify_result(stream->native_handle());
      if (verify != X509_V_OK) why += std::string(" (certificate: ") + X509_verify_cert_error_string(verify) + ")";
      self->options_.log("TLS handshake with " + who + " refused: " + why);
      ++self->handshake_failures_;  // after the log line: a counted refusal has been explained
      boost::system::error_code ignored;
      stream->lowest_layer().close(ignored);
      return;
    }
    self->on_established(stream, who);
  });
}

void Server::on_established(std::shared_ptr<TlsStream> stream, const std::string& who) {
  auto refuse = [&](const std::string& why) {
    options_.log("peer " + who + " refused: " + why);
    ++handshake_failures_;
    boost::system::error_code ignored;
    stream->lowest_layer().close(ignored);
  };
  if (stopped_.load()) return refuse("server stopping");
  auto host_id = peer_host_id(stream->native_handle());
  if (!host_id.ok()) return refuse(host_id.error().to_string());
  if (options_.accept_peer && !options_.accept_peer(*host_id))
    return refuse("host id " + *host_id + " is not allowed to connect");

  ConnectionHandlers handlers = options_.handlers;
  handlers.on_close = [weak = weak_from_this(), user = options_.handlers.on_close](const ConnectionPtr& conn,
                                                                                   const Error& why) {
    if (auto self = weak.lock()) {
      std::lock_guard lock(self->mu_);
      for (auto it = self->connections_.begin(); it != self->connections_.end(); ++it)
        if (it->second == conn) {
          self->connections_.erase(it);
          break;
        }
    }
    if (user) user(conn, why);
  };
  auto conn = Connection::create(std::move(*stream), *host_id, std::move(handlers), options_.log);
  {
    std::lock_guard lock(mu_);
    connections_.emplace(*host_id, conn);
  }
  ++established_;
  options_.log("peer " + *host_id + " connected from " + who);
  conn->start();
}

ConnectionPtr Server::connection(const std::string& host_id) const {
  std::lock_guard lock(mu_);
  // The newest open connection from that host (an old one may be dying).
  ConnectionPtr found;
  auto [begin, end] = connections_.equal_range(host_id);
  for (auto it = begin; it != end; ++it)
    if (it->second->is_open()) found = it->second;
  return found;
}

size_t Server::connection_count() const {
  std::lock_guard lock(mu_);
  return connections_.size();
}

void Server::stop() {
  if (stopped_.exchange(true)) return;
  asio::post(acceptor_.get_executor(), [self = shared_from_this()] {
    boost::system::error_code ec;
    self->acceptor_.close(ec);
  });
  std::multimap<std::string, ConnectionPtr> conns;
  {
    std::lock_guard lock(mu_);
    conns.swap(connections_);
  }
  for (auto& [id, conn] : conns) conn->close();
}

}  // namespace xo::handoff::channel
