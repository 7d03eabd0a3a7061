#include "common/handoff/node/origin_flow.h"

#include "common/handoff/node/flow_keys.h"

namespace xo::handoff::node {

SocketOriginFlow::SocketOriginFlow(HostEnv& env, FlowInfo flow, Connection conn, std::shared_ptr<ConnectionSlot> slot)
    : env_(env), flow_(std::move(flow)), conn_(std::move(conn)), slot_(std::move(slot)) {}

SocketOriginFlow::~SocketOriginFlow() {
  // The state machine always ends in release() or thaw(); if neither ran (a
  // bug), the connection is still ours and must not leak blocked.
  if (!released_ && conn_.socket) (void)thaw();
}

Result<protocol::FrozenState> SocketOriginFlow::freeze() {
  const auto now = steer::realtime_ns();
  // BLOCK before TCP_REPAIR: a repair-mode socket still ACKs new data, and
  // those bytes would be lost. Egress too: a repair-mode socket still
  // transmits from its send queue (retransmit timer) while the target takes over.
  // (A failed freeze is not followed by thaw(): every path below undoes what
  // it did and hands the connection back itself.)
  if (auto st = env_.insert(steer::SteerEntry::block(frontend_ingress_key(flow_), flow_.flow_id, now)); !st.ok()) {
    (void)thaw();
    return annotate(st.take_error(), "block ingress");
  }
  blocked_ = true;
  if (auto st = env_.insert(steer::SteerEntry::block(frontend_egress_key(flow_), flow_.flow_id, now)); !st.ok()) {
    (void)thaw();
    return annotate(st.take_error(), "block egress");
  }
  auto snap = tcp::capture(conn_.socket.get());
  if (!snap.ok()) {
    (void)thaw();  // capture() already left repair mode
    return annotate(snap.take_error(), "capture");
  }
  snapshot_ = std::move(*snap);

  protocol::FrozenState frozen;
  tcp::Snapshot carried = *snapshot_;
  if (conn_.tls) {
    // Plaintext the caller read but did not consume goes first.
    tls::State st = *conn_.tls;
    st.unread_plaintext.insert(st.unread_plaintext.begin(), conn_.unread.begin(), conn_.unread.end());
    auto bytes = tls::encode(st);
    frozen.tls_state = std::string(bytes.begin(), bytes.end());
  } else if (!conn_.unread.empty()) {
    // Plain TCP: bytes read but not consumed go back in front of the receive
    // queue; the restored socket's queue then starts that much earlier
    // (restore() sets its sequence to recv_seq - queue length).
    carried.recv_queue.insert(carried.recv_queue.begin(), conn_.unread.begin(), conn_.unread.end());
  }
  if (auto st = tcp::validate(carried); !st.ok()) {
    (void)thaw();
    return annotate(st.take_error(), "snapshot");
  }
  auto bytes = tcp::encode(carried);
  frozen.tcp_snapshot = std::string(bytes.begin(), bytes.end());
  return frozen;
}

Status SocketOriginFlow::redirect(const std::string& target_host) {
  XO_ASSIGN_OR_RETURN(const Peer* peer, env_.peer(target_host));
  XO_ASSIGN_OR_RETURN(steer::IpAddr to, env_.peer_ip(*peer, flow_.client_ip.family));
  // Replaces this host's BLOCK entry for the ingress key in one map write.
  return env_.insert(steer::SteerEntry::redirect(frontend_ingress_key(flow_), to, peer->mac, env_.config().mac,
                                                 flow_.flow_id, steer::realtime_ns(), env_.config().ifindex));
}

void SocketOriginFlow::release() {
  released_ = true;
  // Still in repair mode: close() sends neither FIN nor RST.
  conn_.socket.reset();
  env_.remove(frontend_egress_key(flow_), flow_.flow_id);
  // The ingress key now holds the REDIRECT: the frontend owns it until RETURN.
}

Status SocketOriginFlow::thaw() {
  if (released_) return {};
  if (snapshot_) {
    // Leave repair mode before unblocking: new segments must meet a live socket.
    if (auto st = tcp::resume(conn_.socket.get(), *snapshot_); !st.ok()) {
      close_silently(std::move(conn_.socket));
      if (blocked_) {
        env_.remove(frontend_egress_key(flow_), flow_.flow_id);
        env_.remove(frontend_ingress_key(flow_), flow_.flow_id);
        blocked_ = false;
      }
      released_ = true;
      return annotate(st.take_error(), "resume");
    }
    snapshot_.reset();
  }
  if (blocked_) {
    env_.remove(frontend_ingress_key(flow_), flow_.flow_id);  // BLOCK, or the REDIRECT of a failed commit
    env_.remove(frontend_egress_key(flow_), flow_.flow_id);
    blocked_ = false;
    env_.replay_held(env_.take_held(flow_.flow_id), flow_, flow_.service_ip);  // what the BLOCK dropped
    elicit_ack(conn_.socket.get());
  }
  released_ = true;
  slot_->conn = std::move(conn_);
  return {};
}

}  // namespace xo::handoff::node
