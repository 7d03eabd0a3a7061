#include "common/handoff/wire/messages.h"

#include <string>

#include "common/handoff/wire/errors.h"
#include "common/handoff/wire/limits.h"

namespace xo::handoff::wire {
namespace {

Error invalid(std::string_view field, std::string_view why) {
  return error(std::string(field) + ": " + std::string(why), errc::kInvalidField);
}

Status require_flow_id(uint64_t flow_id, std::string_view field) {
  if (flow_id == 0) return invalid(field, "flow id must be non-zero");
  return {};
}

Status check_size(size_t size, size_t max, std::string_view field) {
  if (size > max)
    return invalid(field, std::to_string(size) + " bytes exceeds the limit of " + std::to_string(max));
  return {};
}

Status check_blob(const std::string& blob, size_t max, std::string_view field) {
  if (blob.empty()) return invalid(field, "required, but empty");
  return check_size(blob.size(), max, field);
}

// The body a type names, as the oneof case number of Envelope.
pb::Envelope::BodyCase body_of(pb::MessageType type) {
  switch (type) {
    case pb::TYPE_OFFER: return pb::Envelope::kOffer;
    case pb::TYPE_READY: return pb::Envelope::kReady;
    case pb::TYPE_REFUSE: return pb::Envelope::kRefuse;
    case pb::TYPE_GO: return pb::Envelope::kGo;
    case pb::TYPE_ABORT: return pb::Envelope::kAbort;
    case pb::TYPE_RETURN: return pb::Envelope::kReturn;
    case pb::TYPE_DONE: return pb::Envelope::kDone;
    case pb::TYPE_QUERY_COMMITTED: return pb::Envelope::kQueryCommitted;
    case pb::TYPE_COMMITTED: return pb::Envelope::kCommitted;
    case pb::TYPE_RECONCILE: return pb::Envelope::kReconcile;
    case pb::TYPE_RECONCILE_ANSWER: return pb::Envelope::kReconcileAnswer;
    case pb::TYPE_CLOSED: return pb::Envelope::kClosed;
    case pb::TYPE_HELD: return pb::Envelope::kHeld;
    default: return pb::Envelope::BODY_NOT_SET;
  }
}

pb::Envelope envelope(pb::MessageType type, uint64_t txn) {
  pb::Envelope e;
  e.set_version(kProtocolVersion);
  e.set_type(type);
  e.set_txn(txn);
  return e;
}

}  // namespace

Status validate_host_id(std::string_view host_id, std::string_view field) {
  if (host_id.empty()) return invalid(field, "host id required");
  if (host_id.size() > kMaxHostIdBytes) return invalid(field, "host id longer than 64 bytes");
  for (char c : host_id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_';
    if (!ok) return invalid(field, "host id may hold only [A-Za-z0-9._-]");
  }
  return {};
}

Status validate(const pb::Endpoint& m, std::string_view field) {
  const std::string f(field);
  if (m.ip().size() != 4 && m.ip().size() != 16)
    return invalid(f + ".ip", "must be 4 (IPv4) or 16 (IPv6) bytes, got " + std::to_string(m.ip().size()));
  if (m.port() == 0 || m.port() > 65535) return invalid(f + ".port", "must be 1..65535");
  return {};
}

Status validate(const pb::Flow& m, std::string_view field) {
  const std::string f(field);
  if (!m.has_client()) return invalid(f + ".client", "required");
  if (!m.has_service()) return invalid(f + ".service", "required");
  XO_TRY(validate(m.client(), f + ".client"));
  XO_TRY(validate(m.service(), f + ".service"));
  if (m.client().ip().size() != m.service().ip().size())
    return invalid(f, "client and service address families differ");
  return {};
}

Status validate(const pb::Offer& m) {
  if (!m.has_flow()) return invalid("offer.flow", "required");
  XO_TRY(validate(m.flow(), "offer.flow"));
  XO_TRY(require_flow_id(m.flow_id(), "offer.flow_id"));
  XO_TRY(check_blob(m.tcp_snapshot(), kMaxTcpSnapshotBytes, "offer.tcp_snapshot"));
  if (m.has_tls_state()) XO_TRY(check_blob(m.tls_state(), kMaxTlsStateBytes, "offer.tls_state"));
  XO_TRY(check_size(m.payload().size(), kMaxPayloadBytes, "offer.payload"));
  XO_TRY(validate_host_id(m.origin_host(), "offer.origin_host"));
  if (m.ready_timeout_ms() == 0 || m.ready_timeout_ms() > kMaxReadyTimeoutMs)
    return invalid("offer.ready_timeout_ms", "must be 1.." + std::to_string(kMaxReadyTimeoutMs));
  return {};
}

Status validate(const pb::Ready& m) { return require_flow_id(m.flow_id(), "ready.flow_id"); }

Status validate(const pb::Refuse& m) {
  XO_TRY(require_flow_id(m.flow_id(), "refuse.flow_id"));
  // Unknown reasons from a newer peer are kept as numbers by proto3; refuse
  // them here so a caller's switch never sees a value it does not know.
  if (!pb::Refuse::Reason_IsValid(m.reason()) || m.reason() == pb::Refuse::REASON_UNSPECIFIED)
    return invalid("refuse.reason", "unknown or unspecified reason " + std::to_string(m.reason()));
  return check_size(m.detail().size(), kMaxTextBytes, "refuse.detail");
}

static Status check_held(const google::protobuf::RepeatedPtrField<std::string>& packets, std::string_view field) {
  if (static_cast<size_t>(packets.size()) > kMaxHeldPackets) return invalid(field, "too many packets");
  for (const auto& p : packets) XO_TRY(check_blob(p, kMaxHeldPacketBytes, field));
  return {};
}

Status validate(const pb::Go& m) {
  XO_TRY(require_flow_id(m.flow_id(), "go.flow_id"));
  return check_held(m.held(), "go.held");
}

Status validate(const pb::Held& m) {
  XO_TRY(require_flow_id(m.flow_id(), "held.flow_id"));
  return check_held(m.packets(), "held.packets");
}

Status validate(const pb::Abort& m) {
  XO_TRY(require_flow_id(m.flow_id(), "abort.flow_id"));
  return check_size(m.reason().size(), kMaxTextBytes, "abort.reason");
}

Status validate(const pb::Return& m) {
  if (!m.has_flow()) return invalid("return.flow", "required");
  XO_TRY(validate(m.flow(), "return.flow"));
  XO_TRY(require_flow_id(m.flow_id(), "return.flow_id"));
  XO_TRY(check_blob(m.tcp_snapshot(), kMaxTcpSnapshotBytes, "return.tcp_snapshot"));
  if (m.has_tls_state()) XO_TRY(check_blob(m.tls_state(), kMaxTlsStateBytes, "return.tls_state"));
  XO_TRY(check_size(m.client_bytes().size(), kMaxClientBytes, "return.client_bytes"));
  return validate_host_id(m.origin_host(), "return.origin_host");
}

Status validate(const pb::Done& m) { return require_flow_id(m.flow_id(), "done.flow_id"); }
Status validate(const pb::Closed& m) { return require_flow_id(m.flow_id(), "closed.flow_id"); }
Status validate(const pb::QueryCommitted& m) {
  return require_flow_id(m.flow_id(), "query_committed.flow_id");
}
Status validate(const pb::Committed& m) { return require_flow_id(m.flow_id(), "committed.flow_id"); }

Status validate(const pb::Reconcile& m) {
  XO_TRY(check_size(static_cast<size_t>(m.flow_ids_size()), kMaxReconcileFlows, "reconcile.flow_ids"));
  for (uint64_t id : m.flow_ids()) XO_TRY(require_flow_id(id, "reconcile.flow_ids[]"));
  return {};
}

Status validate(const pb::ReconcileAnswer& m) {
  XO_TRY(check_size(static_cast<size_t>(m.held_flow_ids_size()), kMaxReconcileFlows,
                    "reconcile_answer.held_flow_ids"));
  for (uint64_t id : m.held_flow_ids()) XO_TRY(require_flow_id(id, "reconcile_answer.held_flow_ids[]"));
  return {};
}

Status validate(const pb::Envelope& m) {
  if (m.version() != kProtocolVersion)
    return error("envelope.version: peer speaks version " + std::to_string(m.version()) +
                     ", this host speaks " + std::to_string(kProtocolVersion),
                 errc::kBadVersion);
  if (m.seq() == 0) return invalid("envelope.seq", "must be non-zero");
  if (m.txn() == 0) return invalid("envelope.txn", "must be non-zero");
  const auto expected = body_of(m.type());
  if (expected == pb::Envelope::BODY_NOT_SET)
    return error("envelope.type: unknown message type " + std::to_string(m.type()), errc::kBadType);
  if (m.body_case() != expected)
    return error("envelope.type: says " + std::string(type_name(m.type())) +
                     " but the body is " + (m.body_case() == pb::Envelope::BODY_NOT_SET
                                                ? std::string("missing or unknown")
                                                : "field " + std::to_string(m.body_case())),
                 errc::kBadType);
  switch (m.body_case()) {
    case pb::Envelope::kOffer: return validate(m.offer());
    case pb::Envelope::kReady: return validate(m.ready());
    case pb::Envelope::kRefuse: return validate(m.refuse());
    case pb::Envelope::kGo: return validate(m.go());
    case pb::Envelope::kAbort: return validate(m.abort());
    case pb::Envelope::kReturn: return validate(m.return_());
    case pb::Envelope::kDone: return validate(m.done());
    case pb::Envelope::kQueryCommitted: return validate(m.query_committed());
    case pb::Envelope::kCommitted: return validate(m.committed());
    case pb::Envelope::kReconcile: return validate(m.reconcile());
    case pb::Envelope::kReconcileAnswer: return validate(m.reconcile_answer());
    case pb::Envelope::kClosed: return validate(m.closed());
    case pb::Envelope::kHeld: return validate(m.held());
    case pb::Envelope::BODY_NOT_SET: break;
  }
  return error("envelope: no body", errc::kBadType);
}

Kind kind_of(pb::MessageType type) {
  switch (type) {
    case pb::TYPE_OFFER:
    case pb::TYPE_RETURN:
    case pb::TYPE_QUERY_COMMITTED:
    case pb::TYPE_RECONCILE:
      return Kind::kRequest;
    case pb::TYPE_READY:
    case pb::TYPE_REFUSE:
    case pb::TYPE_DONE:
    case pb::TYPE_COMMITTED:
    case pb::TYPE_RECONCILE_ANSWER:
      return Kind::kResponse;
    default:
      return Kind::kNotification;  // GO, ABORT, CLOSED, HELD (unknown types never pass validate())
  }
}

bool answers(pb::MessageType request, pb::MessageType response) {
  switch (request) {
    case pb::TYPE_OFFER: return response == pb::TYPE_READY || response == pb::TYPE_REFUSE;
    // REFUSE: the frontend cannot take it back; the target still owns it.
    case pb::TYPE_RETURN: return response == pb::TYPE_DONE || response == pb::TYPE_REFUSE;
    case pb::TYPE_QUERY_COMMITTED: return response == pb::TYPE_COMMITTED;
    case pb::TYPE_RECONCILE: return response == pb::TYPE_RECONCILE_ANSWER;
    default: return false;
  }
}

std::string_view type_name(pb::MessageType type) {
  switch (type) {
    case pb::TYPE_OFFER: return "OFFER";
    case pb::TYPE_READY: return "READY";
    case pb::TYPE_REFUSE: return "REFUSE";
    case pb::TYPE_GO: return "GO";
    case pb::TYPE_ABORT: return "ABORT";
    case pb::TYPE_RETURN: return "RETURN";
    case pb::TYPE_DONE: return "DONE";
    case pb::TYPE_QUERY_COMMITTED: return "QUERY_COMMITTED";
    case pb::TYPE_COMMITTED: return "COMMITTED";
    case pb::TYPE_RECONCILE: return "RECONCILE";
    case pb::TYPE_RECONCILE_ANSWER: return "RECONCILE_ANSWER";
    case pb::TYPE_CLOSED: return "CLOSED";
    case pb::TYPE_HELD: return "HELD";
    default: return "UNKNOWN";
  }
}

#define XO_WRAP(Body, TYPE, mutable_body)                  \
  pb::Envelope wrap(pb::Body body, uint64_t txn) {         \
    pb::Envelope e = envelope(pb::TYPE, txn);              \
    *e.mutable_body() = std::move(body);                   \
    return e;                                              \
  }
XO_WRAP(Offer, TYPE_OFFER, mutable_offer)
XO_WRAP(Ready, TYPE_READY, mutable_ready)
XO_WRAP(Refuse, TYPE_REFUSE, mutable_refuse)
XO_WRAP(Go, TYPE_GO, mutable_go)
XO_WRAP(Abort, TYPE_ABORT, mutable_abort)
XO_WRAP(Return, TYPE_RETURN, mutable_return_)
XO_WRAP(Done, TYPE_DONE, mutable_done)
XO_WRAP(QueryCommitted, TYPE_QUERY_COMMITTED, mutable_query_committed)
XO_WRAP(Committed, TYPE_COMMITTED, mutable_committed)
XO_WRAP(Reconcile, TYPE_RECONCILE, mutable_reconcile)
XO_WRAP(ReconcileAnswer, TYPE_RECONCILE_ANSWER, mutable_reconcile_answer)
XO_WRAP(Closed, TYPE_CLOSED, mutable_closed)
XO_WRAP(Held, TYPE_HELD, mutable_held)
#undef XO_WRAP

void add_held_packets(google::protobuf::RepeatedPtrField<std::string>* out, std::vector<std::string> packets) {
  for (auto& packet : packets) {
    if (static_cast<size_t>(out->size()) == kMaxHeldPackets) return;
    if (!packet.empty() && packet.size() <= kMaxHeldPacketBytes) *out->Add() = std::move(packet);
  }
}

}  // namespace xo::handoff::wire
