// handoff_bench: the offload protocol's latency between lab namespaces
// (run by qa/benchmarks/handoff). JSON lines on stdout, diagnostics on stderr:
//
//   handoff.http, handoff.https   request in hand at the frontend → the target
//                                 may send (its accept handler runs after GO)
//   return.http, return.https     target's give_back() → the frontend may send
//                                 (its return handler runs); give_back first
//                                 waits for the client's ACK of the response,
//                                 so the client ACKs at once (TCP_QUICKACK)
//   handoff.step.<step>[.https]   each step of the per-handoff Traces (origin:
//                                 freeze … go_sent; target.*: prepare …
//                                 serve), µs since the previous step
//   return.step.<step>[.https]    the same for give_back / take_back
//
// One process, three lab hosts: the client, the frontend and backend0 each
// run on threads setns()'d into their namespace, with a real Node (eBPF
// steering on eth0, mutual-TLS control channel) on the frontend and on
// backend0 — exactly what the daemons use. The frontend waits for and reads
// each request on its Node's own thread (Node::executor()) and offers it
// there, so the offer starts without a thread hop; the target answers and
// gives the connection back from its accept handler. (With worker threads
// instead, the lab's two vCPUs carry four busy threads: a worker's wake-up
// then lands in the middle of the next handoff, and each run's p50 moved by
// ±15 µs with where the scheduler put them.) Timestamps come from one
// steady_clock, so no cross-host clock guess is involved. The client sends
// the next request only once the frontend holds the connection again, so
// iterations do not overlap — but for the tail of a return (the frontend may
// send before its DONE is out; the target's HELD follows), which the next
// OFFER sometimes meets, as a keep-alive client's next offloaded request would.
//
// Usage: handoff_bench [--iterations N] [--busy-poll-us U]
//   N: default 2000, after 100 warm-ups. U: NodeConfig::busy_poll of both
//   Nodes (default: the Node's default); 0 compares with Nodes that sleep
//   in epoll between events.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/base/bench_report.h"
#include "common/handoff/node/node.h"
#include "common/handoff/test/pki.h"
#include "common/steer/ebpf_backend.h"
#include "common/tls/openssl_layer.h"
#include "common/tls/record_layer.h"
#include "qa/lab/lab.h"
#include "qa/lab/netns.h"
#include "qa/system/steer/steer_lab.h"

namespace {

using xo::bench::print_latency;

using namespace xo;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
namespace node = handoff::node;
namespace asio = boost::asio;

constexpr int kWarmUp = 100;
constexpr uint16_t kControlPort = 7710;
constexpr size_t kBodyBytes = 64;

double us_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::micro>(b - a).count();
}



int fail(const std::string& why) {
  std::fprintf(stderr, "handoff_bench: %s\n", why.c_str());
  return 1;
}

// A small blocking queue from a Node's thread (whose callbacks must not
// block) to a thread that may: here, to the client.
template <class T>
class Queue {
 public:
  void push(T v) {
    {
      std::lock_guard lock(mu_);
      items_.push_back(std::move(v));
    }
    cv_.notify_one();
  }
  std::optional<T> pop(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return !items_.empty(); })) return std::nullopt;
    T v = std::move(items_.front());
    items_.pop_front();
    return v;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<T> items_;
};

// The step durations of one Trace by name: prefix + step + suffix (µs since
// the previous step).
void add_steps(const handoff::protocol::Trace& t, const std::string& prefix, const std::string& suffix,
               std::map<std::string, std::vector<double>>& out) {
  int64_t prev = 0;
  for (const auto& s : t.steps()) {
    out[prefix + s.name + suffix].push_back(static_cast<double>(s.at_us - prev));
    prev = s.at_us;
  }
}

struct Sample {
  Clock::time_point request_in_hand, target_may_send, give_back_called, frontend_may_send;
};

// Runs `fn` on the Node's own thread and waits for it: also a barrier (what
// was queued there before has run).
void on_thread_of(node::Node& n, const std::function<void()>& fn) {
  std::promise<void> done;
  asio::post(n.executor(), [&] {
    fn();
    done.set_value();
  });
  done.get_future().wait();
}

// One host's Node with its steering backend, created on a thread inside the
// host's namespace (the Node's own thread inherits it).
struct HostNode {
  std::unique_ptr<steer::EbpfSteer> steer;
  std::unique_ptr<node::Node> node;
};

Result<HostNode> make_node(const lab::Lab& lab, const std::string& host, const std::string& peer,
                           const std::string& pin_dir, const std::string& pki_dir,
                           std::optional<std::chrono::microseconds> busy_poll) {
  const lab::Host* me = lab.find(host);
  const lab::Host* other = lab.find(peer);
  XO_ASSIGN_OR_RETURN(auto scope, lab::NetnsScope::enter(me->ns));
  HostNode h;
  XO_ASSIGN_OR_RETURN(h.steer, steer::EbpfSteer::open({pin_dir, "eth0", {steer::Hook::kTcIngress, steer::Hook::kTcEgress},
                                                       /*hold_blocked=*/true}));
  node::NodeConfig cfg;
  cfg.host_id = host;
  cfg.identity = handoff::channel::TlsIdentity::from_pki_dir(pki_dir, host);
  cfg.listen = boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address(me->ip), kControlPort);
  node::Peer p;
  p.control = boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address(other->ip), kControlPort);
  XO_ASSIGN_OR_RETURN(auto pip, steer::IpAddr::parse(other->ip));
  p.data_ip4 = pip;
  XO_ASSIGN_OR_RETURN(p.mac, steer::parse_mac(other->mac));
  cfg.peers[peer] = p;
  XO_ASSIGN_OR_RETURN(auto ip, steer::IpAddr::parse(me->ip));
  cfg.data_ip4 = ip;
  XO_ASSIGN_OR_RETURN(cfg.mac, steer::parse_mac(me->mac));
  cfg.steer = h.steer.get();
  if (busy_poll) cfg.busy_poll = *busy_poll;
  XO_ASSIGN_OR_RETURN(h.node, node::Node::create(std::move(cfg)));
  return h;
}

// The client's side of one keep-alive connection, plain or TLS (OpenSSL).
class BenchClient {
 public:
  ~BenchClient() {
    if (ssl_) SSL_free(ssl_);
    if (ctx_) SSL_CTX_free(ctx_);
  }
  Status connect(const std::string& ns, const std::string& ip, uint16_t port, bool tls) {
    // A stalled connection fails the bench instead of hanging it.
    XO_ASSIGN_OR_RETURN(fd_, lab::connect_from(ns, ip, port, std::chrono::seconds(10)));
    int one = 1;
    ::setsockopt(fd_.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (!tls) return {};
    ctx_ = SSL_CTX_new(TLS_client_method());
    if (!ctx_) return error("SSL_CTX_new");
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);  // the lab's self-signed certificate
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_.get());
    if (SSL_connect(ssl_) != 1) return error("SSL_connect failed");
    return {};
  }
  Status write(const std::string& s) {
    if (ssl_) {
      if (SSL_write(ssl_, s.data(), static_cast<int>(s.size())) != static_cast<int>(s.size())) return error("SSL_write");
      return {};
    }
    if (::send(fd_.get(), s.data(), s.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(s.size())) return sys_error("send");
    return {};
  }
  // One response: head + Content-Length body.
  Result<std::string> read_response() {
    for (;;) {
      auto end = buf_.find("\r\n\r\n");
      if (end != std::string::npos) {
        auto cl = buf_.find("Content-Length: ");
        if (cl == std::string::npos || cl > end) return error("response without Content-Length");
        size_t len = std::strtoul(buf_.c_str() + cl + 16, nullptr, 10);
        if (buf_.size() >= end + 4 + len) {
          std::string r = buf_.substr(0, end + 4 + len);
          buf_.erase(0, end + 4 + len);
          return r;
        }
      }
      char tmp[4096];
      int n = ssl_ ? SSL_read(ssl_, tmp, sizeof tmp) : static_cast<int>(::recv(fd_.get(), tmp, sizeof tmp, 0));
      if (n <= 0) return error("connection ended or stalled while reading a response", EPIPE);
      // ACK at once, not after the delayed-ACK timer (40 ms): give_back
      // waits for the client's ACK of the response (NodeConfig::return_drain),
      // and that wait would otherwise be the whole return. Quick ACK mode
      // ends by itself, so it is asked for again after every read.
      int one = 1;
      ::setsockopt(fd_.get(), IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
      buf_.append(tmp, static_cast<size_t>(n));
    }
  }

 private:
  UniqueFd fd_;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  std::string buf_;
};

// The connection as the frontend holds it between handoffs.
struct FrontendConn {
  UniqueFd socket;
  std::unique_ptr<tls::RecordLayer> layer;  // TLS only
  std::string unread;                       // plaintext read, not consumed
};

// Consumes one whole request head (ends with an empty line) from `unread`;
// false when none is in yet.
bool take_request(std::string& unread) {
  auto end = unread.find("\r\n\r\n");
  if (end == std::string::npos) return false;
  unread.erase(0, end + 4);
  return true;
}

// One read from the client (the socket is readable).
Status read_once(FrontendConn& c) {
  uint8_t tmp[4096];
  size_t n = 0;
  if (c.layer) {
    XO_ASSIGN_OR_RETURN(n, c.layer->read_some(tmp));
  } else {
    ssize_t r = ::recv(c.socket.get(), tmp, sizeof tmp, MSG_DONTWAIT);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return {};
    if (r < 0) return sys_error("recv");
    n = static_cast<size_t>(r);
  }
  if (n == 0) return error("client closed", EPIPE);
  c.unread.append(reinterpret_cast<char*>(tmp), n);
  return {};
}

const std::string kResponse = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(kBodyBytes) +
                              "\r\nX-Served-By: backend0\r\n\r\n" + std::string(kBodyBytes, 'x');
const std::string kLocalResponse = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(kBodyBytes) +
                                   "\r\nX-Served-By: frontend\r\n\r\n" + std::string(kBodyBytes, 'x');

Status write_plain_or_tls(int fd, tls::RecordLayer* layer, const std::string& s) {
  if (layer) return layer->write_all(std::span(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
  if (::send(fd, s.data(), s.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(s.size())) return sys_error("send");
  return {};
}

using Steps = std::map<std::string, std::vector<double>>;

struct RunResult {
  std::vector<double> handoff, ret;
  Steps steps;
  int served_locally = 0, not_returned = 0;
};

// The frontend, on the frontend Node's own thread — as a daemon doing its
// client I/O on Node::executor() would: it waits for each request with the
// Node's reactor, reads it there and offers it at once (offer() then starts
// inline: no thread hop between the request and the freeze). Its return
// handler goes on with the next request.
class FrontendLoop : public std::enable_shared_from_this<FrontendLoop> {
 public:
  struct Run {
    int total;
    std::string suffix;
    std::vector<Sample>& samples;
    Queue<int>& ready;             // the client may send request i
    std::atomic<int>& current;     // the iteration being offered (the target's handler reads it)
    std::function<void(const std::string&)> fail;
  };
  FrontendLoop(node::Node& fe, FrontendConn conn, Run run)
      : fe_(fe),
        exec_(fe.executor()),
        conn_(std::move(conn)),
        run_(std::move(run)),
        ended_future_(ended_promise_.get_future()) {}

  void start() {
    fe_.set_return_handler([self = shared_from_this()](node::ReturnedConnection c) {
      const auto at = Clock::now();  // the frontend may send from here
      self->on_returned(std::move(c), at);
    });
    asio::post(exec_, [self = shared_from_this()] { self->next(); });
  }
  // From any thread: wait (bounded) until every iteration ran, then end the
  // loop (at once when it failed, or the client did) and wait until it has.
  void stop(std::chrono::milliseconds grace) {
    (void)ended_future_.wait_for(grace);
    asio::post(exec_, [self = shared_from_this()] { self->finish(); });
    ended_future_.wait();
  }
  // After stop():
  Steps steps() const { return steps_; }
  int completed() const { return i_; }
  int served_locally() const { return served_locally_; }

 private:
  void next() {
    if (ended_) return;
    if (i_ == run_.total) return finish();
    run_.ready.push(i_);
    wait_request();
  }

  void wait_request() {
    if (take_request(conn_.unread)) return on_request();
    if (!desc_) desc_.emplace(exec_, conn_.socket.get());
    auto readable = [self = shared_from_this()](boost::system::error_code ec) {
      if (self->ended_) return;
      if (ec) return self->fail("frontend wait: " + ec.message());
      if (auto st = read_once(self->conn_); !st.ok()) return self->fail("frontend read: " + st.error().to_string());
      self->wait_request();
    };
    desc_->async_wait(asio::posix::descriptor_base::wait_read, std::move(readable));
  }

  void on_request() {
    run_.samples[static_cast<size_t>(i_)].request_in_hand = Clock::now();
    run_.current = i_;
    node::OfferRequest offer;
    if (conn_.layer) {
      auto unconsumed = std::span(reinterpret_cast<const uint8_t*>(conn_.unread.data()), conn_.unread.size());
      auto st = conn_.layer->freeze(unconsumed);
      if (!st.ok()) return fail("frontend freeze: " + st.error().to_string());
      offer.conn.tls = std::move(*st);
      conn_.layer.reset();
    } else {
      offer.conn.unread = std::move(conn_.unread);
    }
    conn_.unread.clear();
    offer.conn.socket = std::move(conn_.socket);
    offer.payload = "GET /bench";
    offer.target_host = "backend0";
    // The result is handled from a post: offer() may finish inline (served
    // locally), and the descriptor goes first.
    fe_.offer(std::move(offer), [self = shared_from_this()](node::OfferResult r) {
      asio::post(self->exec_, [self, r = std::move(r)]() mutable { self->on_offered(std::move(r)); });
    });
    // Only now out of the reactor: the OFFER is on its way, this epoll_ctl is
    // off its path. (The socket is still open: the origin holds it.)
    drop_descriptor();
  }

  void on_offered(node::OfferResult r) {
    if (ended_) return;
    if (r.outcome == node::OfferOutcome::kServedLocally) {
      // Rolled back: answer here, keep the connection (not measured).
      ++served_locally_;
      std::fprintf(stderr, "handoff_bench: served locally: %s\n", r.why ? r.why->to_string().c_str() : "?");
      conn_.socket = std::move(r.conn.socket);
      conn_.unread = std::move(r.conn.unread);
      if (r.conn.tls) {
        auto l = tls::make_best_layer(conn_.socket.get(), *r.conn.tls);
        if (!l.ok()) return fail("frontend resume: " + l.error().to_string());
        conn_.layer = std::move(*l);
      }
      if (auto st = write_plain_or_tls(conn_.socket.get(), conn_.layer.get(), kLocalResponse); !st.ok())
        return fail("frontend write: " + st.error().to_string());
      run_.samples[static_cast<size_t>(i_)] = {};
      ++i_;
      return next();
    }
    if (r.outcome != node::OfferOutcome::kOffloaded)
      return fail(std::string("offer lost: ") + (r.why ? r.why->to_string() : "?"));
    if (i_ >= kWarmUp) add_steps(r.trace, "handoff.step.", run_.suffix, steps_);
    offloaded_ = true;  // the return handler goes on
  }

  void on_returned(node::ReturnedConnection back, Clock::time_point at) {
    if (ended_) return;
    if (!offloaded_) return fail("frontend: connection returned before its offer finished");
    offloaded_ = false;
    run_.samples[static_cast<size_t>(i_)].frontend_may_send = at;
    if (i_ >= kWarmUp) add_steps(back.trace, "return.step.frontend.", run_.suffix, steps_);
    conn_.socket = std::move(back.socket);
    conn_.unread = std::move(back.unread);
    if (back.tls) {
      auto l = tls::make_best_layer(conn_.socket.get(), *back.tls);
      if (!l.ok()) return fail("frontend resume: " + l.error().to_string());
      conn_.layer = std::move(*l);
    }
    ++i_;
    next();
  }

  void drop_descriptor() {
    if (!desc_) return;
    (void)desc_->release();  // the fd stays open: conn_ (or the origin) owns it
    desc_.reset();
  }
  void fail(const std::string& why) {
    run_.fail(why);
    finish();
  }
  void finish() {
    if (ended_) return;
    ended_ = true;
    drop_descriptor();
    fe_.set_return_handler(nullptr);
    ended_promise_.set_value();
  }

  node::Node& fe_;
  asio::any_io_executor exec_;
  FrontendConn conn_;
  Run run_;
  std::optional<asio::posix::stream_descriptor> desc_;
  int i_ = 0;
  bool offloaded_ = false, ended_ = false;
  int served_locally_ = 0;
  Steps steps_;
  std::promise<void> ended_promise_;
  std::future<void> ended_future_;
};

// `iterations` measured offers + returns of one keep-alive connection.
Result<RunResult> run(const lab::Lab& lab, node::Node& fe, node::Node& be, int listen_fd, uint16_t port, bool tls,
                      std::shared_ptr<tls::ServerContext> tls_ctx, int iterations) {
  const std::string suffix = tls ? ".https" : "";
  const int total = iterations + kWarmUp;
  std::vector<Sample> samples(static_cast<size_t>(total));
  RunResult out;
  std::atomic<bool> failed{false};
  std::string failure;
  std::mutex failure_mu;
  auto set_failure = [&](const std::string& why) {
    std::lock_guard lock(failure_mu);
    if (failure.empty()) failure = why;
    failed = true;
  };
  // The client may send request i+1 once the frontend holds the connection again.
  Queue<int> frontend_ready;
  std::atomic<int> current{0};  // the iteration being offered

  // Target: on backend0's Node thread, like the frontend on its own: the
  // accept handler runs right after serve() — the instant the target may
  // send — answers the owed request and gives the connection back at once.
  // (No worker thread: on the lab's two vCPUs its wake-ups would land in the
  // middle of the next handoff, which separate hosts never see.)
  // What give_back()'s results record, shared with them: the last one may
  // come after run() gave up waiting.
  struct TargetSide {
    Steps steps;                    // touched on backend0's Node thread only
    std::atomic<int> accepted{0}, given_back{0}, not_returned{0};
  };
  auto target = std::make_shared<TargetSide>();
  be.set_accept_handler([&](node::AcceptedConnection c) {
    const auto at = Clock::now();
    const int i = current.load();
    ++target->accepted;
    samples[static_cast<size_t>(i)].target_may_send = at;
    std::unique_ptr<tls::RecordLayer> layer;
    if (c.tls) {
      auto l = tls::make_best_layer(c.socket.get(), *c.tls);
      if (!l.ok()) return set_failure("target: " + l.error().to_string());
      layer = std::move(*l);
    }
    if (auto st = write_plain_or_tls(c.socket.get(), layer.get(), kResponse); !st.ok())
      return set_failure("target write: " + st.error().to_string());
    if (layer) {
      auto st = layer->freeze();
      if (!st.ok()) return set_failure("target freeze: " + st.error().to_string());
      c.tls = std::move(*st);
    }
    // Target steps (since the OFFER arrived): prepare, ready_sent, serve.
    if (i >= kWarmUp) add_steps(c.trace, "handoff.step.target.", suffix, target->steps);
    samples[static_cast<size_t>(i)].give_back_called = Clock::now();
    be.give_back(std::move(c), "", [target, i, suffix](node::GiveBackResult r) {
      if (r.outcome != node::ReturnOutcome::kReturned) {
        std::fprintf(stderr, "handoff_bench: give_back %s: %s\n", node::return_outcome_name(r.outcome),
                     r.why ? r.why->to_string().c_str() : "?");
        ++target->not_returned;
      } else if (i >= kWarmUp) {
        add_steps(r.trace, "return.step.target.", suffix, target->steps);
      }
      ++target->given_back;
    });
  });

  // Frontend: accept and handshake here (blocking), then run on the Node's thread.
  std::shared_ptr<FrontendLoop> loop;
  std::thread acceptor([&] {
    auto a = [&]() -> Result<UniqueFd> {
      pollfd p{listen_fd, POLLIN, 0};
      if (::poll(&p, 1, 10000) != 1) return error("no client connection", ETIMEDOUT);
      UniqueFd fd(::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC));
      if (!fd) return sys_error("accept");
      return fd;
    }();
    if (!a.ok()) return set_failure("frontend: " + a.error().to_string());
    FrontendConn conn;
    conn.socket = std::move(*a);
    int one = 1;
    ::setsockopt(conn.socket.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (tls) {
      auto l = tls::accept_openssl(tls_ctx, conn.socket.get());
      if (!l.ok()) return set_failure("frontend TLS accept: " + l.error().to_string());
      conn.layer = std::move(*l);
    }
    loop = std::make_shared<FrontendLoop>(fe, std::move(conn), FrontendLoop::Run{total, suffix, samples, frontend_ready,
                                                                                   current, set_failure});
    loop->start();
  });
  // Client: one keep-alive connection to the service address.
  BenchClient client;
  Status cst = client.connect(lab.client().ns, lab.service_ip(), port, tls);
  acceptor.join();
  if (!loop) cst = error("the frontend did not start");
  for (int i = 0; cst.ok() && i < total && !failed; ++i) {
    auto ready = frontend_ready.pop(10s);
    if (!ready) {
      cst = error("the frontend did not get the connection back in time");
      break;
    }
    if (auto st = client.write("GET /bench/" + std::to_string(i) + " HTTP/1.1\r\nHost: xo\r\n\r\n"); !st.ok()) {
      cst = st;
      break;
    }
    auto resp = client.read_response();
    if (!resp.ok()) {
      cst = resp.error();
      break;
    }
    if (resp->size() != kResponse.size() || resp->substr(resp->size() - kBodyBytes) != std::string(kBodyBytes, 'x')) {
      cst = error("wrong response bytes in iteration " + std::to_string(i));
      break;
    }
  }
  if (!cst.ok()) set_failure("client: " + cst.error().to_string());
  // The last return follows the client's last response.
  if (loop) loop->stop(failed ? 0ms : 10000ms);
  if (loop) out.served_locally = loop->served_locally();
  be.set_accept_handler(nullptr);
  on_thread_of(be, [] {});  // no accept handler of ours runs on after this
  // The target's last give_back() result follows the frontend's take-back (DONE).
  for (int k = 0; k < 2000 && target->given_back < target->accepted; ++k) std::this_thread::sleep_for(1ms);
  out.not_returned = target->not_returned;
  if (out.not_returned) set_failure(std::to_string(out.not_returned) + " give_back() calls did not return");
  if (target->given_back < target->accepted) set_failure("give_back() results missing");
  if (failed) return error(failure);
  if (loop->completed() != total)
    return error("the frontend finished " + std::to_string(loop->completed()) + " of " + std::to_string(total) +
                 " iterations");
  for (auto& [name, v] : loop->steps()) out.steps[name].insert(out.steps[name].end(), v.begin(), v.end());
  for (auto& [name, v] : target->steps) out.steps[name].insert(out.steps[name].end(), v.begin(), v.end());

  for (int i = kWarmUp; i < total; ++i) {
    const auto& s = samples[static_cast<size_t>(i)];
    if (s.request_in_hand == Clock::time_point{}) continue;  // served locally
    out.handoff.push_back(us_between(s.request_in_hand, s.target_may_send));
    out.ret.push_back(us_between(s.give_back_called, s.frontend_may_send));
  }
  return out;
}

Result<UniqueFd> listen_on(const std::string& ns, const std::string& ip, uint16_t port) {
  XO_ASSIGN_OR_RETURN(auto scope, lab::NetnsScope::enter(ns));
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return sys_error("socket");
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  ::inet_pton(AF_INET, ip.c_str(), &sa.sin_addr);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) return sys_error("bind " + ip);
  if (::listen(fd.get(), 16) != 0) return sys_error("listen");
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  int iterations = 2000;
  std::optional<std::chrono::microseconds> busy_poll;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--iterations") iterations = std::atoi(argv[i + 1]);
    else if (flag == "--busy-poll-us") busy_poll = std::chrono::microseconds(std::atoi(argv[i + 1]));
    else return fail("unknown flag " + flag);
  }
  if (iterations < 10) return fail("usage: handoff_bench [--iterations N>=10] [--busy-poll-us U]");
  const auto polling = busy_poll.value_or(node::NodeConfig{}.busy_poll);

  auto lab = lab::Lab::up({.backends = 1});
  if (!lab.ok()) return fail("lab: " + lab.error().to_string());
  auto bpffs = steer::test::BpffsMount::create(lab->name());
  if (!bpffs.ok()) return fail("bpffs: " + bpffs.error().to_string());
  handoff::test::TempPki pki({"frontend", "backend0"});
  if (!pki.ok()) return fail("xo-pki failed");

  auto fe = make_node(*lab, "frontend", "backend0", (*bpffs)->pin_dir("frontend"), pki.dir(), busy_poll);
  if (!fe.ok()) return fail("frontend node: " + fe.error().to_string());
  auto be = make_node(*lab, "backend0", "frontend", (*bpffs)->pin_dir("backend0"), pki.dir(), busy_poll);
  if (!be.ok()) return fail("backend0 node: " + be.error().to_string());
  const auto until = Clock::now() + 10s;
  while (!(fe->node->connected("backend0") && be->node->connected("frontend")) && Clock::now() < until)
    std::this_thread::sleep_for(10ms);
  if (!fe->node->connected("backend0") || !be->node->connected("frontend")) return fail("no control connections");

  auto pem = tls::make_self_signed("xo-bench");
  if (!pem.ok()) return fail(pem.error().to_string());
  auto ctx = tls::ServerContext::create({.cert_pem = pem->cert_pem, .key_pem = pem->key_pem});
  if (!ctx.ok()) return fail(ctx.error().to_string());

  int status = 0;
  for (bool tls : {false, true}) {
    const uint16_t port = tls ? 443 : 80;
    const char* proto = tls ? "https" : "http";
    auto listener = listen_on(lab->frontend().ns, lab->service_ip(), port);
    if (!listener.ok()) return fail(listener.error().to_string());
    auto r = run(*lab, *fe->node, *be->node, listener->get(), port, tls, *ctx, iterations);
    if (!r.ok()) {
      std::fprintf(stderr, "handoff_bench: %s run failed: %s\n", proto, r.error().to_string().c_str());
      status = 1;
      continue;
    }
    if (r->served_locally)
      std::fprintf(stderr, "handoff_bench: %s: %d of %d offers rolled back (not measured)\n", proto, r->served_locally,
                   iterations + kWarmUp);
    const std::string where = std::string(" between lab namespaces (client, frontend, backend0; eBPF steering, "
                                          "mutual-TLS 1.3 control channel, Nodes busy-polling " +
                                          std::to_string(polling.count()) + " us after work; the frontend reads "
                                          "requests and the target answers on the Nodes' own threads), one "
                                          "keep-alive ") +
                              proto + " connection, " + std::to_string(kBodyBytes) + "-byte responses";
    print_latency(std::string("handoff.") + proto, "us", r->handoff,
               std::string("request in hand at the frontend (head read") + (tls ? ", TLS not yet frozen" : "") +
                   ") to the target's accept handler (GO received, BLOCK removed: the target may send)" + where);
    print_latency(std::string("return.") + proto, "us", r->ret,
               std::string("target calls give_back()") + (tls ? " (TLS already frozen)" : "") +
                   ", which first waits for the client's ACK of the response (the client ACKs at once: TCP_QUICKACK)," +
                   " to the frontend's return handler (connection restored, REDIRECT removed: the frontend may send)" +
                   where);
    // Origin steps count from OriginHandoff's start, target steps from the
    // OFFER's (RETURN's) arrival; each line is the time since the step before.
    for (const auto& [name, v] : r->steps)
      print_latency(name, "us", v,
                 std::string("one step of the per-handoff Trace (time since the previous step), same ") + proto +
                     " runs as handoff." + proto + "/return." + proto);
  }
  fe->node->stop();
  be->node->stop();
  return status;
}
