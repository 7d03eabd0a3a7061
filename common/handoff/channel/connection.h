// One authenticated control connection to a peer host: framed handoff
// messages over TLS 1.3, both directions, request/response correlation.
//
// Both ends may send requests (OFFER, RETURN, QUERY_COMMITTED, RECONCILE).
// A request gets a transaction id; the peer's response carries it back and
// completes the request, or the request's timer completes it with ETIMEDOUT.
// A response that matches no pending request (a READY that arrives after the
// OFFER timed out) is not dropped: it goes to on_message, so the protocol can
// refuse it explicitly (ABORT).
//
// Threading: every handler runs on the connection's strand; the public
// methods may be called from any thread. Any protocol error (bad frame,
// replay, oversize) closes the connection: a peer that sends garbage is not
// trusted with the next frame either.
#pragma once

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/base/result.h"
#include "common/handoff/wire/frame.h"
#include "common/handoff/wire/handoff.pb.h"

namespace xo::handoff::channel {

namespace asio = boost::asio;
using TlsStream = asio::ssl::stream<asio::ip::tcp::socket>;
using Logger = std::function<void(const std::string&)>;

// Writes "xo-handoff[<who>]: <line>" to stderr.
Logger stderr_logger(std::string who);

class Connection;
using ConnectionPtr = std::shared_ptr<Connection>;
using ResponseHandler = std::function<void(Result<pb::Envelope>)>;

struct ConnectionHandlers {
  // Incoming requests, notifications, and responses nobody waits for any more.
  // Answer a request with conn->respond(request, response).
  std::function<void(const ConnectionPtr&, pb::Envelope)> on_message;
  // Called once when the connection is gone, with the reason.
  std::function<void(const ConnectionPtr&, const Error&)> on_close;
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  // `stream` has completed its TLS handshake; `peer_host_id` comes from the
  // verified certificate.
  static ConnectionPtr create(TlsStream stream, std::string peer_host_id, ConnectionHandlers handlers,
                              Logger log);
  ~Connection();

  void start();  // begins reading

  // Send a request; `done` gets its response (validated, and a legal answer to
  // the request's type) or an error: ETIMEDOUT after `timeout`; ECONNRESET when
  // the connection closed while the request was pending (it may have been
  // delivered); ENOTCONN or EINVAL when it was never sent (closed before, or
  // the request itself is invalid).
  // Assigns and returns the transaction id unless request.txn() is set.
  uint64_t request(pb::Envelope request, std::chrono::milliseconds timeout, ResponseHandler done);

  // Send a notification (GO, ABORT) or a response. Fails at once when the
  // message is invalid or the connection is closed.
  Status send(pb::Envelope message);
  Status respond(const pb::Envelope& request, pb::Envelope response);

  // Clean shutdown: queued frames are written, close_notify is sent, the
  // socket is closed; pending requests fail with ECONNRESET.
  void close();

  const std::string& peer_host_id() const { return peer_host_id_; }
  bool is_open() const { return !closed_.load(); }
  uint64_t next_txn() { return ++txn_counter_; }
  asio::ip::tcp::endpoint remote_endpoint() const { return remote_; }

 private:
  struct Pending {
    pb::MessageType type;
    ResponseHandler done;
    std::unique_ptr<asio::steady_timer> timer;
  };

  Connection(TlsStream stream, std::string peer_host_id, ConnectionHandlers handlers, Logger log);
  Status check_sendable(pb::Envelope& message) const;
  void enqueue(pb::Envelope message);  // on the strand
  void write_next();
  void read_more();
  // Dispatches every complete frame in in_; false when the connection failed.
  bool take_frames();
  void compact_input();  // moves the unread bytes to the front of in_
  void dispatch(pb::Envelope envelope);
  void fail(Error why);  // close at once because of an error (on the strand)
  // Close (on the strand): fail pending requests, report on_close once; a
  // graceful close flushes queued frames and exchanges close_notify.
  void finish(Error why, bool graceful);
  void shutdown_stream();

  TlsStream stream_;
  std::string peer_host_id_;
  ConnectionHandlers handlers_;
  Logger log_;
  asio::ip::tcp::endpoint remote_;

  std::atomic<bool> closed_{false};
  std::atomic<uint64_t> txn_counter_{0};
  bool close_reported_ = false;
  bool closing_ = false;  // close() asked: flush, then shut down
  bool writing_ = false;
  bool shutting_down_ = false;
  wire::SequenceCounter send_seq_;
  wire::SequenceGuard recv_seq_;
  std::deque<std::vector<uint8_t>> write_queue_;
  // Bytes read, not yet dispatched: [in_begin_, in_end_) of in_. One read
  // usually brings one whole frame (a frame is one TLS record up to 16 KiB).
  std::vector<uint8_t> in_;
  size_t in_begin_ = 0, in_end_ = 0;
  std::unordered_map<uint64_t, Pending> pending_;
  asio::steady_timer shutdown_timer_;
};

}  // namespace xo::handoff::channel
