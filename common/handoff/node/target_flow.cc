#include "common/handoff/node/target_flow.h"

#include "common/handoff/node/flow_keys.h"

#include <cstdio>

namespace xo::handoff::node {
namespace {

class SocketTargetFlow final : public protocol::TargetFlow {
 public:
  SocketTargetFlow(HostEnv& env, AcceptedConnection conn, steer::IpAddr target_ip, SocketTargetFlowFactory::Serve& serve,
                   SocketTargetFlowFactory::Discarded& discarded)
      : env_(env), conn_(std::move(conn)), target_ip_(target_ip), serve_(serve), discarded_(discarded) {}

  ~SocketTargetFlow() override {
    if (!done_) discard();
  }

  void serve(std::vector<std::string> held) override {
    done_ = true;
    // GO: the commit point. Replies may leave now (SNAT, kept until the
    // connection is given back or closed); then the ingress BLOCK goes.
    // (The SNAT replaces the egress BLOCK in place: one map update.)
    {
      auto st = env_.insert(steer::SteerEntry::snat(target_egress_key(conn_.flow, target_ip_), conn_.flow.service_ip,
                                                    conn_.flow.flow_id, steer::realtime_ns()));
      if (!st.ok())
        std::fprintf(stderr, "xo-handoff[%s]: %s: SNAT at GO failed: %s\n", env_.config().host_id.c_str(),
                     conn_.flow.to_string().c_str(), st.error().to_string().c_str());
    }
    env_.remove(target_ingress_key(conn_.flow, target_ip_), conn_.flow.flow_id);
    // What the BLOCKs dropped meanwhile, the origin's (from GO) and ours,
    // goes into the socket now instead of waiting for the client to resend.
    auto ours = env_.take_held(conn_.flow.flow_id);
    held.insert(held.end(), std::make_move_iterator(ours.begin()), std::make_move_iterator(ours.end()));
    env_.replay_held(held, conn_.flow, target_ip_);
    elicit_ack_if_unacked(conn_.socket.get());
    conn_.trace.mark("serve");
    serve_(std::move(conn_));
  }

  void discard() override {
    done_ = true;
    close_silently(std::move(conn_.socket));
    env_.remove_later(target_ingress_key(conn_.flow, target_ip_), conn_.flow.flow_id);
    env_.remove(target_egress_key(conn_.flow, target_ip_), conn_.flow.flow_id);
    conn_.trace.mark("discard");
    discarded_(conn_.flow, conn_.origin_host, conn_.trace);
  }

 private:
  HostEnv& env_;
  AcceptedConnection conn_;
  steer::IpAddr target_ip_;
  SocketTargetFlowFactory::Serve& serve_;
  SocketTargetFlowFactory::Discarded& discarded_;
  bool done_ = false;
};

}  // namespace

std::variant<std::unique_ptr<protocol::TargetFlow>, protocol::TargetFlowFactory::Refusal>
SocketTargetFlowFactory::prepare(const pb::Offer& offer) {
  using R = Refusal;
  AcceptedConnection conn;  // its trace starts now
  auto flow = flow_from_wire(offer.flow(), offer.flow_id());
  if (!flow.ok()) return R{pb::Refuse::BAD_REQUEST, flow.error().to_string()};
  conn.flow = *flow;
  conn.origin_host = offer.origin_host();
  conn.payload = offer.payload();
  auto target_ip = env_.data_ip(conn.flow.client_ip.family);
  if (!target_ip.ok()) return R{pb::Refuse::UNSUPPORTED, target_ip.error().to_string()};

  const auto& s = offer.tcp_snapshot();
  auto snap = tcp::decode(std::span(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
  if (!snap.ok()) return R{pb::Refuse::UNSUPPORTED, "tcp snapshot: " + snap.error().to_string()};
  if (offer.has_tls_state()) {
    const auto& t = offer.tls_state();
    auto state = tls::decode(std::span(reinterpret_cast<const uint8_t*>(t.data()), t.size()));
    if (!state.ok()) return R{pb::Refuse::UNSUPPORTED, "tls state: " + state.error().to_string()};
    conn.tls = std::move(*state);
  }

  const auto now = steer::realtime_ns();
  const auto in_key = target_ingress_key(conn.flow, *target_ip);
  const auto out_key = target_egress_key(conn.flow, *target_ip);
  // BLOCK first: nothing reaches the restored socket before GO, and (egress
  // BLOCK) nothing leaves it either — not the unsent tail, not a
  // retransmission of unacknowledged bytes: the target writes nothing before
  // GO. serve() turns the egress BLOCK into the SNAT.
  if (auto st = env_.insert(steer::SteerEntry::block(in_key, offer.flow_id(), now)); !st.ok())
    return R{pb::Refuse::STEER_FAILED, "block: " + st.error().to_string()};
  if (auto st = env_.insert(steer::SteerEntry::block(out_key, offer.flow_id(), now)); !st.ok()) {
    env_.remove(in_key, offer.flow_id());
    return R{pb::Refuse::STEER_FAILED, "egress: " + st.error().to_string()};
  }
  tcp::RestoreOptions opts;
  opts.local = to_endpoint(*target_ip, conn.flow.service_port, snap->local.family());  // NAT mode
  opts.window_probe = false;  // blocked now: serve() asks for the ACK once unblocked
  auto fd = tcp::restore(*snap, env_.spare_repair_socket(snap->local.family()), opts);
  if (!fd.ok()) {
    env_.remove(out_key, offer.flow_id());
    env_.remove(in_key, offer.flow_id());
    return R{pb::Refuse::RESTORE_FAILED, fd.error().to_string()};
  }
  conn.socket = std::move(*fd);
  conn.trace.mark("prepare");
  return std::unique_ptr<protocol::TargetFlow>(new SocketTargetFlow(env_, std::move(conn), *target_ip, serve_, discarded_));
}

}  // namespace xo::handoff::node
