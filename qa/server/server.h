// xo::testserver::Server — the one HTTP/1.1 test server every test reuses.
//
//   GET|HEAD /data/<size>/<seed>  200, <size> bytes of content.h's content
//   POST|PUT <any>                200, body "<sha256 hex of request body>\n"
//   anything else                 404
// Every response carries X-Served-By: <name> and X-Request-Seq: <n> (the
// request's 1-based index on its connection, carried across handovers).
// Keep-alive and pipelining; one blocking thread per connection over a Stream.
//
// Handover: a Hook may take a connection after a request is read (before the
// answer) or at a chosen body offset while answering a GET. The server then
// stops touching the socket and gives the hook the fd and a ResumeState;
// another Server continues exactly there with adopt(fd, state).
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "common/base/fd.h"
#include "common/base/result.h"
#include "qa/server/resume_state.h"
#include "qa/server/stream.h"

namespace xo::testserver {

struct RequestInfo {
  std::string server;   // name of the server asking
  std::string method, target;
  bool keep_alive = true;
  uint64_t seq = 0;
  uint64_t body_size = 0;  // size of the response body that will be written
};

class Hook {
 public:
  virtual ~Hook() = default;
  // After a request was read completely (for a GET: right after its head).
  // true: hand the connection over; the new owner answers this request.
  // Not asked again for a request that arrived through adopt().
  virtual bool hand_over_before_response(const RequestInfo&) { return false; }
  // A body offset at which to hand over while writing this response.
  virtual std::optional<uint64_t> hand_over_at(const RequestInfo&) { return std::nullopt; }
  // After the response head of a GET was written, before its body (a test
  // may set TCP_CORK or block the flow here to shape what is in flight).
  virtual void before_body(int /*fd*/, const RequestInfo&) {}
  // After a response was written completely on a keep-alive connection,
  // before the next request is read: true hands the connection over with
  // nothing owed (e.g. an offload target giving the connection back).
  // `fd` tells connections apart.
  virtual bool hand_over_after_response(int /*fd*/, const RequestInfo&) { return false; }
  // The server is done with a connection it did not hand over (client gone,
  // Connection: close, an error); called just before it closes `fd`.
  virtual void closed(int /*fd*/) {}
  // Takes the connection; runs on the connection's thread after the server
  // let go of the fd.
  virtual void take(UniqueFd fd, ResumeState state) = 0;
};

struct ServerOptions {
  std::string name;             // X-Served-By
  std::string listen = "::";    // "::" is dual-stack
  uint16_t port = 80;           // 0: any
  Hook* hook = nullptr;         // not owned; must outlive the server
  StreamFactory* streams = nullptr;  // not owned; null: plain TCP (e.g. TlsStreamFactory for HTTPS)
};

struct ServerStats {
  uint64_t connections = 0;    // accepted + adopted
  uint64_t requests = 0;       // answered (fully or partly) here
  uint64_t body_bytes = 0;     // response body bytes written here
  uint64_t handed_over = 0;
};

class Server {
 public:
  // The listening socket is created in the calling thread's network namespace.
  static Result<std::unique_ptr<Server>> start(ServerOptions opts);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  uint16_t port() const { return port_; }
  const std::string& name() const { return opts_.name; }
  // Continue serving a handed-over connection.
  void adopt(UniqueFd fd, ResumeState state);
  // Stop accepting, shut down live connections, join every thread.
  void stop();
  ServerStats stats() const;

 private:
  explicit Server(ServerOptions opts) : opts_(std::move(opts)) {}
  void accept_loop();
  void spawn(UniqueFd fd, ResumeState state);
  void serve(UniqueFd fd, ResumeState state);
  void forget(int fd);  // the connection's socket is closed or handed over
  friend class Connection;

  ServerOptions opts_;
  uint16_t port_ = 0;
  UniqueFd listener_;
  std::thread acceptor_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;
  std::list<std::thread> workers_;
  std::set<int> live_fds_;
  ServerStats stats_;
};

}  // namespace xo::testserver
