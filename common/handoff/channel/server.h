// The accepting side of the control channel: listens, runs the TLS 1.3
// handshake with every peer, and keeps one Connection per authenticated peer.
//
// A peer that fails the handshake (no certificate, a certificate from another
// CA, TLS < 1.3, a host id the server does not accept, or too slow) is logged
// with the reason, counted, and dropped; the server keeps serving the others.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/base/result.h"
#include "common/handoff/channel/connection.h"

namespace xo::handoff::channel {

struct ServerOptions {
  asio::ip::tcp::endpoint listen;                     // port 0: any free port
  std::chrono::milliseconds handshake_timeout{5000};
  // Which authenticated host ids may connect; empty: any host with a
  // certificate from the cluster CA.
  std::function<bool(const std::string& host_id)> accept_peer;
  ConnectionHandlers handlers;                        // for every accepted connection
  Logger log;                                         // default: stderr
};

class Server : public std::enable_shared_from_this<Server> {
 public:
  // `tls` must be a Role::kServer context (make_tls_context).
  static Result<std::shared_ptr<Server>> create(asio::io_context& io, std::shared_ptr<asio::ssl::context> tls,
                                                ServerOptions options);
  ~Server();

  void start();  // begins accepting
  // Stop accepting and close every connection cleanly.
  void stop();

  asio::ip::tcp::endpoint local_endpoint() const { return local_; }
  // The live connection from `host_id`, if any (to send it a request).
  ConnectionPtr connection(const std::string& host_id) const;
  size_t connection_count() const;

  uint64_t accepted() const { return accepted_.load(); }
  uint64_t handshake_failures() const { return handshake_failures_.load(); }
  uint64_t established() const { return established_.load(); }

 private:
  Server(asio::io_context& io, std::shared_ptr<asio::ssl::context> tls, ServerOptions options);
  void accept_next();
  void handshake(asio::ip::tcp::socket socket);
  void on_established(std::shared_ptr<TlsStream> stream, const std::string& who);

  asio::io_context& io_;
  std::shared_ptr<asio::ssl::context> tls_;
  ServerOptions options_;
  asio::ip::tcp::acceptor acceptor_;
  asio::ip::tcp::endpoint local_;
  std::atomic<bool> stopped_{false};
  std::atomic<uint64_t> accepted_{0}, handshake_failures_{0}, established_{0};

  mutable std::mutex mu_;  // connections_ is touched from every connection's strand
  std::multimap<std::string, ConnectionPtr> connections_;
};

}  // namespace xo::handoff::channel
