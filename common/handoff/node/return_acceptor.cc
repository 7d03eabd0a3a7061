#include "common/handoff/node/return_acceptor.h"

#include "common/handoff/node/flow_keys.h"

namespace xo::handoff::node {

Status SocketReturnAcceptor::take_back(const pb::Return& ret, const std::string& from_host) {
  ReturnedConnection conn;  // its trace starts now
  XO_ASSIGN_OR_RETURN(conn.flow, flow_from_wire(ret.flow(), ret.flow_id()));
  conn.from_host = from_host;
  // Only the host this flow was offloaded to may give it back.
  if (!owned_(ret.flow_id(), from_host))
    return error("flow " + std::to_string(ret.flow_id()) + " is not offloaded to " + from_host, EPERM);
  conn.unread = ret.client_bytes();
  XO_ASSIGN_OR_RETURN(const Peer* peer, env_.peer(from_host));
  XO_ASSIGN_OR_RETURN(steer::IpAddr target_ip, env_.peer_ip(*peer, conn.flow.client_ip.family));

  const auto& s = ret.tcp_snapshot();
  XO_ASSIGN_OR_RETURN(tcp::Snapshot snap,
                      tcp::decode(std::span(reinterpret_cast<const uint8_t*>(s.data()), s.size())));
  if (ret.has_tls_state()) {
    const auto& t = ret.tls_state();
    XO_ASSIGN_OR_RETURN(conn.tls, tls::decode(std::span(reinterpret_cast<const uint8_t*>(t.data()), t.size())));
  }

  const auto key = frontend_ingress_key(conn.flow);
  // Put back on failure: the REDIRECT to the target that still holds it.
  const auto redirect = steer::SteerEntry::redirect(key, target_ip, peer->mac, env_.config().mac, conn.flow.flow_id,
                                                    steer::realtime_ns(), env_.config().ifindex);
  XO_TRY(env_.insert(steer::SteerEntry::block(key, conn.flow.flow_id, steer::realtime_ns())));
  tcp::RestoreOptions opts;
  opts.local = to_endpoint(conn.flow.service_ip, conn.flow.service_port, snap.local.family());
  opts.window_probe = false;  // blocked now: probe once unblocked (below)
  auto fd = tcp::restore(snap, env_.spare_repair_socket(snap.local.family()), opts);
  if (!fd.ok()) {
    if (auto st = env_.insert(redirect); !st.ok()) env_.remove(key, conn.flow.flow_id);  // cannot steer back: at worst a reset
    return annotate(fd.take_error(), "restore");
  }
  conn.socket = std::move(*fd);
  conn.trace.mark("restore");
  env_.remove(key, conn.flow.flow_id);  // local delivery again
  // Client segments our BLOCK dropped during the restore (the target sends
  // what its own BLOCK dropped after DONE: HELD).
  env_.replay_held(env_.take_held(conn.flow.flow_id), conn.flow, conn.flow.service_ip);
  elicit_ack_if_unacked(conn.socket.get());
  conn.trace.mark("unsteer");
  deliver_(std::move(conn));
  return {};
}

}  // namespace xo::handoff::node
