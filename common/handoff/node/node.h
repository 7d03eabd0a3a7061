// API: stable
//
// xo::handoff::node::Node — the offload protocol as the daemons use it: one
// Node per host, wiring the state machines of common/handoff/protocol to the
// real TCP (common/tcp), TLS (common/tls) and steering (common/steer)
// libraries and to the mutual-TLS control channel (common/handoff/channel).
//
//   frontend (xo-rgw)                          target (xo-osd)
//   node.offer(conn, payload, "osd-2", cb)  →  on_accepted(AcceptedConnection)
//   cb(kOffloaded)                             ... writes the response ...
//   on_returned(ReturnedConnection)         ←  node.give_back(std::move(conn), unread, cb)
//
// Contract with the caller:
//  * TLS travels as xo::tls::State. Freeze your record layer yourself at a
//    record boundary (RecordLayer::freeze(unconsumed)) and pass the state;
//    continue one you receive with xo::tls::make_best_layer(fd, state) (kTLS
//    where the kernel has it, XO's userspace layer otherwise).
//  * `unread` is what the caller read from the client but did not consume
//    (plaintext for TLS). It travels with the connection: for TLS inside the
//    State (ahead of its unread_plaintext), for plain TCP in front of the
//    kernel receive queue of the restored socket (offer) or as RETURN's
//    client_bytes (give_back). An accepted connection's unread bytes are thus
//    already in its socket / TLS state; a returned one's are in `unread`.
//  * Ownership: offer() and give_back() take the socket. If the connection
//    stays here (served locally, kept), the callback hands it back, unchanged.
//  * Callbacks run on the Node's own thread: do not block in them (hand the
//    connection to a worker, or do short non-blocking I/O right there). They
//    may call back into the Node; offer(), give_back() and close() called on
//    that thread (executor()) start at once instead of being posted.
//  * Steering: NAT mode (design.md "Addresses"). The frontend's NIC has the
//    steering programs on tc ingress + egress; targets on tc ingress + egress.
//    A restored socket on a target is bound to the target's own data address
//    (same port as the service); the frontend REDIRECTs the client's packets
//    there, the target SNATs its replies back to the service address.
//  * Owner tags: every steering entry a Node inserts carries the flow id as
//    its owner tag. Flow ids are (origin's node tag << 48 | sequence), so the
//    entries of one flow are found, and removed, exactly — also after a
//    restart (reconcile()).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/base/fd.h"
#include "common/base/result.h"
#include "common/handoff/channel/tls_config.h"
#include "common/handoff/protocol/reconcile.h"
#include "common/handoff/protocol/return.h"
#include "common/handoff/protocol/trace.h"
#include "common/steer/backend.h"
#include "common/steer/flow.h"
#include "common/tls/state.h"

namespace xo::handoff::node {

// Another host of the cluster: where its control server listens and where its
// data path is (the REDIRECT target in NAT mode).
struct Peer {
  boost::asio::ip::tcp::endpoint control;
  std::optional<steer::IpAddr> data_ip4, data_ip6;  // its NIC addresses
  steer::MacAddr mac{};                             // its NIC's MAC (next hop of the REDIRECT)
};

struct NodeConfig {
  std::string host_id;                 // as in this host's certificate
  channel::TlsIdentity identity;       // TlsIdentity::from_pki_dir(dir, host_id) (qa/pki/xo-pki)
  boost::asio::ip::tcp::endpoint listen;  // control server; port 0 = any (see Node::control_endpoint)
  std::map<std::string, Peer> peers;   // by host id; offers go only to these

  // This host's NIC: the steering backend attached to it (not owned; must
  // outlive the Node), its addresses and MAC. The caller opens the backend
  // (e.g. steer::EbpfSteer::open in the host's namespace) with the hooks its
  // role needs.
  steer::SteerBackend* steer = nullptr;
  std::optional<steer::IpAddr> data_ip4, data_ip6;
  steer::MacAddr mac{};
  uint32_t ifindex = 0;                // REDIRECT out of this interface; 0 = the one packets came in on

  uint16_t node_tag = 0;               // high 16 bits of this node's flow ids; 0 = derived from host_id

  std::chrono::milliseconds ready_timeout{200};  // origin: OFFER → READY
  std::chrono::milliseconds done_timeout{500};   // target: RETURN → DONE
  std::chrono::milliseconds go_slack{1000};      // target: wait for GO beyond ready_timeout
  std::chrono::milliseconds commit_query_deadline{1000};
  std::chrono::milliseconds close_linger{2000};  // target: entries kept after close() so the FIN gets out
  // give_back waits (at most this long) until the client acknowledged every
  // byte sent, so no unacknowledged data has to travel (it would wait for a
  // retransmission timeout on the frontend).
  std::chrono::milliseconds return_drain{100};
  // frontend: how long a taken-back socket is kept open (a dup) for the
  // target's HELD, sent right after DONE (node.cc, AwaitingHeld).
  std::chrono::milliseconds held_timeout{50};
  // After each piece of work the Node's thread keeps polling this long
  // before it sleeps (io_loop.h): the next control message of a handoff
  // then meets an awake thread instead of a ~25 µs wake-up per hop. Empty
  // polls yield the CPU. 0 = always sleep in epoll.
  std::chrono::microseconds busy_poll{200};
};

// The endpoints of a connection as the client sees them.
struct FlowInfo {
  uint64_t flow_id = 0;
  steer::IpAddr client_ip, service_ip;
  uint16_t client_port = 0, service_port = 0;
  std::string to_string() const;
};

// ---- frontend: offer -------------------------------------------------------

struct Connection {
  UniqueFd socket;                 // connected TCP socket, blocking, nothing pending to write
  std::optional<tls::State> tls;   // frozen TLS state; nullopt for plain HTTP
  std::string unread;              // read from the client, not consumed
};

struct OfferRequest {
  Connection conn;
  std::string payload;             // opaque: the response plan (≤ 1 MiB)
  std::string target_host;         // a key of NodeConfig::peers
};

enum class OfferOutcome {
  kOffloaded,       // committed (GO sent): the target serves; the socket is gone from here
  kServedLocally,   // refused / timed out / failed before GO: `conn` is back, serve it here
  kLost,            // rollback itself failed: the connection is gone (client sees a reset)
};
const char* offer_outcome_name(OfferOutcome o);

struct OfferResult {
  OfferOutcome outcome = OfferOutcome::kLost;
  std::optional<Error> why;        // set unless kOffloaded
  FlowInfo flow;
  Connection conn;                 // kServedLocally: the connection, exactly as given
  protocol::Trace trace;           // freeze, offer_sent, answer, redirect, go_sent, release | thaw (µs)
};
using OfferDone = std::function<void(OfferResult)>;

// ---- target: accepted connections and give_back ---------------------------

struct AcceptedConnection {
  FlowInfo flow;
  std::string origin_host;
  UniqueFd socket;                 // restored, bound to this host's data address
  std::optional<tls::State> tls;   // continue with tls::make_best_layer(socket, *tls)
  std::string payload;
  protocol::Trace trace;           // prepare, serve (µs since the OFFER arrived)
};
using AcceptHandler = std::function<void(AcceptedConnection)>;

// The protocol's outcomes of a give_back (common/handoff/protocol/return.h):
//   kReturned  DONE: the frontend has it
//   kKept      refused or not sent: `conn` is back, still served here (or close() it)
//   kDropped   fate unknown (no DONE): dropped silently here; never two senders
//   kLost      thaw after a refusal failed
using protocol::ReturnOutcome;
using protocol::return_outcome_name;

struct GiveBackResult {
  ReturnOutcome outcome = ReturnOutcome::kLost;
  std::optional<Error> why;
  AcceptedConnection conn;         // kKept: the connection (tls = the state given to give_back)
  std::string unread;              // kKept: the unread bytes given to give_back
  protocol::Trace trace;           // freeze, return_sent, answer, release | thaw (µs)
};
using GiveBackDone = std::function<void(GiveBackResult)>;

// ---- frontend: returned connections ---------------------------------------

struct ReturnedConnection {
  FlowInfo flow;
  std::string from_host;
  UniqueFd socket;                 // restored on the service address
  std::optional<tls::State> tls;   // continue with tls::make_best_layer (XO's record layer)
  std::string unread;              // client bytes the target read but did not consume
  protocol::Trace trace;           // restore, unsteer (µs since the RETURN arrived)
};
using ReturnHandler = std::function<void(ReturnedConnection)>;
// A connection offloaded from here ended at its target (the target called
// close(): the client went away, or it could not be given back). Its
// REDIRECT goes after close_linger, so the last FIN/ACKs still reach the target.
using EndedHandler = std::function<void(const FlowInfo& flow, const std::string& target_host)>;

// ---- observability ---------------------------------------------------------

// One finished handoff step, for tests, benchmarks and debugging.
struct HandoffRecord {
  enum class Kind { kOffer, kAccept, kDiscard, kGiveBack, kTakeBack, kClose, kEnded };
  Kind kind;
  FlowInfo flow;
  std::string peer_host;
  std::string outcome;             // offer_outcome_name / return_outcome_name / "accepted" / ...
  std::optional<Error> why;
  protocol::Trace trace;
};
const char* handoff_kind_name(HandoffRecord::Kind k);
using RecordObserver = std::function<void(const HandoffRecord&)>;

struct NodeStats {
  uint64_t offers = 0, accepts = 0, refusals = 0, rollbacks = 0, late_ready = 0;
  uint64_t served = 0, discarded = 0, returns = 0;
  uint64_t flows_out = 0;   // offloaded from here, not yet returned (REDIRECT entries)
  uint64_t flows_in = 0;    // accepted here, not yet given back or closed
  uint64_t steer_errors = 0;  // entries that could not be removed (left to reconcile)
  uint64_t closed = 0;        // target: accepted connections that ended here (close())
  uint64_t ended = 0;         // frontend: offloaded connections that ended at their target (CLOSED)
  uint64_t replayed = 0;      // client segments a BLOCK dropped, replayed into the socket (held_packets.h)
};

class Node {
 public:
  // Opens the control server and a peer connection to every peer. Call
  // set_*_handler before peers start offering. BLOCK and SNAT entries found
  // in the steering map belonged to a previous (crashed) process's sockets
  // and are removed; REDIRECTs stay for reconcile().
  static Result<std::unique_ptr<Node>> create(NodeConfig config);
  ~Node();  // stop()
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Target role: every committed connection offered to this host.
  void set_accept_handler(AcceptHandler handler);
  // Frontend role: every connection a target gives back.
  void set_return_handler(ReturnHandler handler);
  // Frontend role: every offloaded connection that ended at its target.
  void set_ended_handler(EndedHandler handler);
  // Tests/benchmarks: every finished offer, accept, give_back, take_back,
  // close (target) and end (frontend).
  void set_record_observer(RecordObserver observer);

  // The Node's own thread. A daemon may run its client I/O here: offer(),
  // give_back() and close() called on this thread start at once (no thread
  // hop: ~1–20 µs on a loaded host), and their `done` may then run before
  // they return. Called from any other thread they are posted.
  boost::asio::any_io_executor executor();

  // Frontend: offer the connection to `target_host`. `done` runs exactly once.
  void offer(OfferRequest request, OfferDone done);
  // Target: hand an accepted connection back to its frontend. `conn.tls`
  // must be the state frozen NOW (RecordLayer::freeze(unconsumed)), not the
  // one it arrived with; `unread` is plain-TCP client bytes read but not
  // consumed (for TLS pass them to freeze()). `done` runs exactly once.
  void give_back(AcceptedConnection conn, std::string unread, GiveBackDone done);
  // Target: the connection ends here (client gone, or no frontend to return
  // to). Closes the socket normally (FIN; send TLS close_notify first),
  // removes this host's entries after close_linger and tells the frontend
  // (CLOSED), which drops its REDIRECT after its own close_linger.
  // `conn.socket` may be empty when the caller closed it already.
  void close(AcceptedConnection conn);

  // Frontend after a restart: ask every target which of the REDIRECT entries
  // of this node (found by owner tag) it still holds; remove the stale ones.
  void reconcile(std::chrono::milliseconds timeout, std::function<void(protocol::ReconcileResult)> done);

  // True once a control connection to `host_id` is up (offers before that
  // are served locally with ENOTCONN).
  bool connected(const std::string& host_id) const;
  boost::asio::ip::tcp::endpoint control_endpoint() const;
  const std::string& host_id() const;
  uint16_t node_tag() const;

  NodeStats stats() const;
  const protocol::Counters& counters() const;
  // This host's steering entries (the backend's listing).
  Result<std::vector<steer::ListedEntry>> steering_entries() const;

  // Stop: close control connections, drop flows still prepared (not served).
  void stop();

  class Impl;

 private:
  explicit Node(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace xo::handoff::node
