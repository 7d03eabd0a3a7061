// The handoff messages: validation, classification and envelope helpers.
//
// The message types themselves are generated from handoff.proto
// (xo::handoff::pb::Offer, ...). Nothing reads a decoded message before
// validate() accepted it; decode_frame() (frame.h) does that for every frame.
#pragma once

#include <string_view>
#include <vector>

#include "common/base/result.h"
#include "common/handoff/wire/handoff.pb.h"

namespace xo::handoff::wire {

// Per-message validation: addresses well formed, ports non-zero, ids set,
// required blobs present, sizes within limits.h. Errors use errc::kInvalidField
// and name the field: "offer.flow.client.port: must be 1..65535".
Status validate(const pb::Endpoint& m, std::string_view field);
Status validate(const pb::Flow& m, std::string_view field);
Status validate(const pb::Offer& m);
Status validate(const pb::Ready& m);
Status validate(const pb::Refuse& m);
Status validate(const pb::Go& m);
Status validate(const pb::Abort& m);
Status validate(const pb::Return& m);
Status validate(const pb::Done& m);
Status validate(const pb::QueryCommitted& m);
Status validate(const pb::Committed& m);
Status validate(const pb::Reconcile& m);
Status validate(const pb::ReconcileAnswer& m);
Status validate(const pb::Closed& m);
Status validate(const pb::Held& m);

// Envelope: version, seq/txn set, type known and equal to the body set, body valid.
Status validate(const pb::Envelope& m);

// A host id as it appears in certificates and messages: 1..64 of [A-Za-z0-9.-_].
Status validate_host_id(std::string_view host_id, std::string_view field);

// How a message travels: a request expects exactly one response with the same
// txn; a notification (GO, ABORT) belongs to an existing transaction and gets
// no answer.
enum class Kind { kRequest, kResponse, kNotification };
Kind kind_of(pb::MessageType type);
// True when `response` is a legal answer to `request` (OFFER → READY|REFUSE, RETURN → DONE|REFUSE, ...).
bool answers(pb::MessageType request, pb::MessageType response);
std::string_view type_name(pb::MessageType type);

// Wrap a body into an envelope of the matching type (version set; seq is set
// by the sender of the frame, txn by the caller).
pb::Envelope wrap(pb::Offer body, uint64_t txn = 0);
pb::Envelope wrap(pb::Ready body, uint64_t txn = 0);
pb::Envelope wrap(pb::Refuse body, uint64_t txn = 0);
pb::Envelope wrap(pb::Go body, uint64_t txn = 0);
pb::Envelope wrap(pb::Abort body, uint64_t txn = 0);
pb::Envelope wrap(pb::Return body, uint64_t txn = 0);
pb::Envelope wrap(pb::Done body, uint64_t txn = 0);
pb::Envelope wrap(pb::QueryCommitted body, uint64_t txn = 0);
pb::Envelope wrap(pb::Committed body, uint64_t txn = 0);
pb::Envelope wrap(pb::Reconcile body, uint64_t txn = 0);
pb::Envelope wrap(pb::ReconcileAnswer body, uint64_t txn = 0);
pb::Envelope wrap(pb::Closed body, uint64_t txn = 0);
pb::Envelope wrap(pb::Held body, uint64_t txn = 0);

// Appends client segments a BLOCK dropped (IP packets) to GO.held or
// HELD.packets within the wire limits; what does not fit is left out (the
// client resends it).
void add_held_packets(google::protobuf::RepeatedPtrField<std::string>* out, std::vector<std::string> packets);

}  // namespace xo::handoff::wire
