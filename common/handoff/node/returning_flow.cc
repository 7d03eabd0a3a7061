#include "common/handoff/node/returning_flow.h"

#include "common/handoff/node/flow_keys.h"

namespace xo::handoff::node {

SocketReturningFlow::SocketReturningFlow(HostEnv& env, AcceptedConnection conn, std::string unread,
                                         std::shared_ptr<AcceptedSlot> slot)
    : env_(env), conn_(std::move(conn)), unread_(std::move(unread)), slot_(std::move(slot)) {
  if (auto ip = env_.data_ip(conn_.flow.client_ip.family); ip.ok()) target_ip_ = *ip;
}

SocketReturningFlow::~SocketReturningFlow() {
  if (!done_) (void)thaw();
}

steer::FlowKey SocketReturningFlow::in_key() const { return target_ingress_key(conn_.flow, *target_ip_); }
steer::FlowKey SocketReturningFlow::out_key() const { return target_egress_key(conn_.flow, *target_ip_); }

Result<protocol::ReturnState> SocketReturningFlow::freeze() {
  // (A failed freeze is not followed by thaw(): undo here and hand back.)
  auto fail = [&](Error e) -> Error {
    (void)thaw();
    return e;
  };
  if (!target_ip_) return fail(error("no data address for this flow's family", EAFNOSUPPORT));
  // BLOCK before TCP_REPAIR (a repair-mode socket still ACKs). Egress too: a
  // repair-mode socket still transmits from its send queue, and once the
  // frontend restored the connection only it may send.
  const auto now = steer::realtime_ns();
  if (auto st = env_.insert(steer::SteerEntry::block(in_key(), conn_.flow.flow_id, now)); !st.ok())
    return fail(annotate(st.take_error(), "block"));
  blocked_ = true;
  if (auto st = env_.insert(steer::SteerEntry::block(out_key(), conn_.flow.flow_id, now)); !st.ok())
    return fail(annotate(st.take_error(), "block egress"));
  egress_blocked_ = true;
  auto snap = tcp::capture(conn_.socket.get());
  if (!snap.ok()) return fail(annotate(snap.take_error(), "capture"));
  snapshot_ = std::move(*snap);

  protocol::ReturnState out;
  auto bytes = tcp::encode(*snapshot_);
  out.frozen.tcp_snapshot = std::string(bytes.begin(), bytes.end());
  if (conn_.tls) {
    tls::State st = *conn_.tls;
    st.unread_plaintext.insert(st.unread_plaintext.begin(), unread_.begin(), unread_.end());
    auto t = tls::encode(st);
    out.frozen.tls_state = std::string(t.begin(), t.end());
  } else {
    out.client_bytes = unread_;
  }
  return out;
}

void SocketReturningFlow::release() {
  done_ = true;
  conn_.socket.reset();  // repair mode: no FIN, no RST
  if (target_ip_) {
    // Segments already redirected here before the frontend took the flow
    // back would meet this host's listener and draw an RST: keep dropping
    // them a while.
    env_.remove_later(in_key(), conn_.flow.flow_id);
    env_.remove(out_key(), conn_.flow.flow_id);
  }
}

Status SocketReturningFlow::thaw() {
  if (done_) return {};
  done_ = true;
  Status result;
  if (snapshot_) {
    if (auto st = tcp::resume(conn_.socket.get(), *snapshot_); !st.ok()) {
      close_silently(std::move(conn_.socket));
      result = annotate(st.take_error(), "resume");
    }
    snapshot_.reset();
  }
  if (egress_blocked_ && result.ok()) {
    // Serving here again: replies need their SNAT back.
    if (auto st = env_.insert(steer::SteerEntry::snat(out_key(), conn_.flow.service_ip, conn_.flow.flow_id,
                                                      steer::realtime_ns()));
        !st.ok())
      result = annotate(st.take_error(), "snat");
    egress_blocked_ = false;
  }
  if (blocked_) {
    env_.remove(in_key(), conn_.flow.flow_id);
    blocked_ = false;
    if (result.ok()) {
      env_.replay_held(env_.take_held(conn_.flow.flow_id), conn_.flow, *target_ip_);  // what the BLOCK dropped
      elicit_ack(conn_.socket.get());
    }
  }
  if (!result.ok()) {
    close_silently(std::move(conn_.socket));  // lost: vanish without a word
    if (target_ip_) env_.remove(out_key(), conn_.flow.flow_id);
    return result;
  }
  slot_->conn = std::move(conn_);
  slot_->unread = std::move(unread_);
  return {};
}

}  // namespace xo::handoff::node
