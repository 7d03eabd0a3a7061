// The connecting side of the control channel: keeps one authenticated
// connection to one peer host, and reconnects with capped, jittered
// exponential backoff whenever it is lost.
//
// The server must present a certificate from the cluster CA naming
// `peer_host_id`; anything else is a failed attempt (logged, retried).
// Requests made while there is no connection fail at once with ENOTCONN:
// the offload protocol then rolls back and serves locally instead of waiting.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/base/result.h"
#include "common/handoff/channel/backoff.h"
#include "common/handoff/channel/connection.h"

namespace xo::handoff::channel {

struct PeerOptions {
  std::string peer_host_id;                 // who we expect at `endpoint` (checked in its cert)
  asio::ip::tcp::endpoint endpoint;
  BackoffPolicy backoff;
  std::chrono::milliseconds connect_timeout{3000};  // TCP connect + TLS handshake
  std::chrono::milliseconds stable_after{2000};     // a connection up this long resets the backoff
  ConnectionHandlers handlers;              // requests the peer sends us; on_close per connection
  std::function<void(const ConnectionPtr&)> on_connected;
  Logger log;                               // default: stderr
  uint64_t backoff_seed = 0;                // 0: random
};

class PeerClient : public std::enable_shared_from_this<PeerClient> {
 public:
  // `tls` must be a Role::kClient context (make_tls_context).
  static Result<std::shared_ptr<PeerClient>> create(asio::io_context& io, std::shared_ptr<asio::ssl::context> tls,
                                                    PeerOptions options);
  ~PeerClient();

  void start();  // first attempt now, then keep connected until stop()
  void stop();   // no more attempts; the connection is closed cleanly

  // See Connection::request; ENOTCONN at once when not connected.
  uint64_t request(pb::Envelope request, std::chrono::milliseconds timeout, ResponseHandler done);
  Status send(pb::Envelope message);

  ConnectionPtr connection() const;  // null while disconnected
  bool connected() const;
  uint64_t attempts() const { return attempts_.load(); }
  uint64_t connects() const { return connects_.load(); }
  // Every reconnect delay chosen so far, in order (observability, tests).
  std::vector<std::chrono::milliseconds> delays() const;

 private:
  PeerClient(asio::io_context& io, std::shared_ptr<asio::ssl::context> tls, PeerOptions options);
  void attempt();
  void attempt_failed(const std::string& why);
  void schedule_retry();
  void established(std::shared_ptr<TlsStream> stream);

  asio::strand<asio::io_context::executor_type> strand_;  // client state and its connection
  std::shared_ptr<asio::ssl::context> tls_;
  PeerOptions options_;
  Backoff backoff_;
  asio::steady_timer retry_timer_;
  std::chrono::steady_clock::time_point established_at_{};
  std::shared_ptr<TlsStream> attempt_stream_;  // the attempt in flight, closed by stop()
  std::atomic<bool> stopped_{false};
  std::atomic<uint64_t> attempts_{0}, connects_{0};

  mutable std::mutex mu_;
  ConnectionPtr conn_;
  std::vector<std::chrono::milliseconds> delays_;
};

}  // namespace xo::handoff::channel
