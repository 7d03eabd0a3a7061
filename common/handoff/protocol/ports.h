// What the handoff state machines need from the rest of XO, as interfaces.
//
// The TCP (common/tcp), TLS (common/tls) and steering (common/steer) libraries
// are wired in by the daemons through these; the state machines only decide
// the order and the rollback. Each implementation owns exactly the steering
// entries it creates, tagged with its owner tag (SteerEntry::owner).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>
#include <variant>

#include "common/base/result.h"
#include "common/handoff/wire/handoff.pb.h"

namespace xo::handoff::protocol {

// The bytes of a frozen connection, as they travel in OFFER / RETURN.
struct FrozenState {
  std::string tcp_snapshot;              // xo::tcp::encode()
  std::optional<std::string> tls_state;  // absent for plain HTTP
};

// Origin side of one connection (the frontend's live socket).
class OriginFlow {
 public:
  virtual ~OriginFlow() = default;
  // Block the flow's ingress (BEFORE TCP_REPAIR: a repair-mode socket still
  // ACKs), then capture TCP and freeze TLS at a record boundary. On failure
  // everything is undone and the socket is usable again.
  virtual Result<FrozenState> freeze() = 0;
  // Steer the flow to the target (REDIRECT replaces this host's BLOCK entry).
  virtual Status redirect(const std::string& target_host) = 0;
  // After redirect(): client segments this host's BLOCK dropped meanwhile
  // (IP packets), for the target to replay. They travel in GO.
  virtual std::vector<std::string> take_held() { return {}; }
  // Close the repair-mode socket: no FIN, no RST, the connection lives on the target.
  virtual void release() = 0;
  // Roll back before GO: leave repair mode, remove the BLOCK (and a REDIRECT
  // if redirect() had succeeded); the caller serves the request itself.
  virtual Status thaw() = 0;
};

// Target side of one offered connection.
class TargetFlow {
 public:
  virtual ~TargetFlow() = default;
  // GO arrived (or the origin confirmed the commit): unblock and serve.
  // `held`: client segments the origin's BLOCK dropped (GO.held), to replay
  // along with those this host's BLOCK dropped.
  virtual void serve(std::vector<std::string> held) = 0;
  // Not committed: drop the restored socket silently (repair mode, no FIN or
  // RST) and remove this host's BLOCK and SNAT entries.
  virtual void discard() = 0;
};

class TargetFlowFactory {
 public:
  virtual ~TargetFlowFactory() = default;
  // Block the flow, restore TCP + TLS, install the egress source rewrite;
  // write nothing to the client. An error becomes a REFUSE with `reason`.
  struct Refusal {
    pb::Refuse::Reason reason;
    std::string detail;
  };
  virtual std::variant<std::unique_ptr<TargetFlow>, Refusal> prepare(const pb::Offer& offer) = 0;
};

// The host serving an offloaded connection, handing it back (RETURN).
struct ReturnState {
  FrozenState frozen;
  std::string client_bytes;  // read from the client, not consumed (a pipelined request)
};
class ReturningFlow {
 public:
  virtual ~ReturningFlow() = default;
  // Block this host's ingress for the flow, then capture TCP + TLS and collect
  // every byte read but not consumed. On failure everything is undone.
  virtual Result<ReturnState> freeze() = 0;
  // DONE, or the RETURN's fate is unknown: close the repair-mode socket
  // silently and remove this host's BLOCK and SNAT entries.
  virtual void release() = 0;
  // DONE arrived: client segments this host's BLOCK dropped while the flow
  // went back (IP packets). They go to the frontend in HELD.
  virtual std::vector<std::string> take_held() { return {}; }
  // The RETURN was refused or never sent: this host still owns the
  // connection (the frontend's REDIRECT still points here); remove the BLOCK.
  virtual Status thaw() = 0;
};

// The frontend taking a connection back: restore TCP + TLS (XO's record
// layer), replace its REDIRECT entry by local delivery, and resume serving
// with `client_bytes` first. All or nothing: on error nothing has changed.
class ReturnAcceptor {
 public:
  virtual ~ReturnAcceptor() = default;
  virtual Status take_back(const pb::Return& returned, const std::string& from_host) = 0;
};

// The control connection the machines talk over (channel::Connection or
// channel::PeerClient, see link.h; a fake in the tests).
class ControlLink {
 public:
  using ResponseHandler = std::function<void(Result<pb::Envelope>)>;
  virtual ~ControlLink() = default;
  virtual uint64_t request(pb::Envelope request, std::chrono::milliseconds timeout, ResponseHandler done) = 0;
  virtual Status send(pb::Envelope message) = 0;
  virtual std::string peer_host_id() const = 0;
};

// Target without GO in time: ask the origin, over a fresh connection, whether
// it committed the flow. true: committed; false or error: not committed.
class CommitQuery {
 public:
  virtual ~CommitQuery() = default;
  virtual void query(const std::string& origin_host, uint64_t flow_id, std::function<void(Result<bool>)> done) = 0;
};

}  // namespace xo::handoff::protocol
