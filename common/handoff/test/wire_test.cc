// Handoff wire format: round trips of every message, and rejection of forged,
// truncated, replayed, oversized and invalid frames with the right error.
#include <arpa/inet.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <set>

#include "common/handoff/wire/endpoint.h"
#include "common/handoff/wire/errors.h"
#include "common/handoff/wire/frame.h"
#include "common/handoff/wire/limits.h"
#include "common/handoff/wire/messages.h"

namespace xo::handoff::wire {
namespace {

using google::protobuf::util::MessageDifferencer;

pb::Flow sample_flow() {
  pb::Flow f;
  f.mutable_client()->set_ip(std::string("\xc6\x12\x00\x0a", 4));   // 198.18.0.10
  f.mutable_client()->set_port(51234);
  f.mutable_service()->set_ip(std::string("\xc6\x12\x00\x01", 4));  // 198.18.0.1
  f.mutable_service()->set_port(443);
  return f;
}

std::string blob(size_t n, char seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i * 7);
  return s;
}

pb::Offer sample_offer() {
  pb::Offer m;
  *m.mutable_flow() = sample_flow();
  m.set_flow_id(0x1122334455667788ull);
  m.set_tcp_snapshot(blob(3000, 1));
  m.set_tls_state(blob(120, 2));
  m.set_payload("GET /bucket/key plan");
  m.set_origin_host("rgw-1");
  m.set_ready_timeout_ms(200);
  return m;
}

pb::Return sample_return() {
  pb::Return m;
  *m.mutable_flow() = sample_flow();
  m.set_flow_id(7);
  m.set_tcp_snapshot(blob(100, 3));
  m.set_tls_state(blob(80, 4));
  m.set_client_bytes("GET /next HTTP/1.1\r\nHost: s3\r\n\r\n");
  m.set_origin_host("osd-3");
  return m;
}

// One valid envelope of every type.
std::vector<pb::Envelope> every_message() {
  std::vector<pb::Envelope> all;
  all.push_back(wrap(sample_offer(), 1));
  pb::Ready ready;
  ready.set_flow_id(9);
  all.push_back(wrap(ready, 2));
  pb::Refuse refuse;
  refuse.set_flow_id(9);
  refuse.set_reason(pb::Refuse::BUSY);
  refuse.set_detail("256 flows held");
  all.push_back(wrap(refuse, 3));
  pb::Go go;
  go.set_flow_id(9);
  all.push_back(wrap(go, 4));
  pb::Abort abort;
  abort.set_flow_id(9);
  abort.set_reason("READY after rollback");
  all.push_back(wrap(abort, 5));
  all.push_back(wrap(sample_return(), 6));
  pb::Done done;
  done.set_flow_id(9);
  all.push_back(wrap(done, 7));
  pb::QueryCommitted q;
  q.set_flow_id(9);
  all.push_back(wrap(q, 8));
  pb::Committed c;
  c.set_flow_id(9);
  c.set_committed(true);
  all.push_back(wrap(c, 9));
  pb::Reconcile r;
  for (uint64_t id = 1; id <= 100; ++id) r.add_flow_ids(id * 1000);
  all.push_back(wrap(r, 10));
  pb::ReconcileAnswer ra;
  ra.add_held_flow_ids(2000);
  ra.add_held_flow_ids(5000);
  all.push_back(wrap(ra, 11));
  pb::Closed closed;
  closed.set_flow_id(12);
  all.push_back(wrap(closed, 12));
  pb::Held held;
  held.set_flow_id(13);
  held.add_packets(blob(1500, 7));
  all.push_back(wrap(held, 13));
  for (auto& e : all) e.set_seq(1);
  return all;
}

// A frame around arbitrary (unvalidated) envelope bytes: what a forger sends.
std::vector<uint8_t> raw_frame(const std::string& body) {
  std::vector<uint8_t> f(kFrameHeaderBytes + body.size());
  const uint32_t n = static_cast<uint32_t>(body.size());
  f[0] = static_cast<uint8_t>(n >> 24);
  f[1] = static_cast<uint8_t>(n >> 16);
  f[2] = static_cast<uint8_t>(n >> 8);
  f[3] = static_cast<uint8_t>(n);
  std::copy(body.begin(), body.end(), f.begin() + kFrameHeaderBytes);
  return f;
}
std::vector<uint8_t> raw_frame(const pb::Envelope& e) { return raw_frame(e.SerializeAsString()); }

std::vector<uint8_t> good_frame(pb::Envelope e, uint64_t seq = 1) {
  e.set_seq(seq);
  auto f = encode_frame(e);
  EXPECT_TRUE(f.ok()) << f.error().to_string();
  return f.ok() ? *f : std::vector<uint8_t>{};
}

TEST(HandoffWire, EveryMessageRoundTrips) {
  auto all = every_message();
  ASSERT_EQ(all.size(), 13u);
  std::set<int> types;
  for (const auto& e : all) {
    auto frame = encode_frame(e);
    ASSERT_TRUE(frame.ok()) << type_name(e.type()) << ": " << frame.error().to_string();
    ASSERT_EQ(frame->size(), kFrameHeaderBytes + e.ByteSizeLong());
    auto back = decode_frame(*frame);
    ASSERT_TRUE(back.ok()) << type_name(e.type()) << ": " << back.error().to_string();
    EXPECT_TRUE(MessageDifferencer::Equals(e, *back)) << type_name(e.type());
    EXPECT_EQ(back->version(), kProtocolVersion);
    types.insert(back->type());
  }
  EXPECT_EQ(types.size(), 13u);
}

TEST(HandoffWire, OfferBlobsSurviveByteForByte) {
  pb::Offer o = sample_offer();
  o.set_tcp_snapshot(blob(1 << 20, 5));  // a 1 MiB send queue
  std::string bin;
  for (int i = 0; i < 256; ++i) bin.push_back(static_cast<char>(i));
  o.set_payload(bin);  // every byte value, NULs included
  auto back = decode_frame(good_frame(wrap(o, 3)));
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  EXPECT_EQ(back->offer().tcp_snapshot(), o.tcp_snapshot());
  EXPECT_EQ(back->offer().payload(), bin);
  EXPECT_EQ(back->offer().tls_state(), o.tls_state());
  EXPECT_EQ(back->txn(), 3u);
}

TEST(HandoffWire, TlsStateIsOptional) {
  pb::Offer o = sample_offer();
  o.clear_tls_state();
  auto back = decode_frame(good_frame(wrap(o, 1)));
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  EXPECT_FALSE(back->offer().has_tls_state());  // plain HTTP: absent, not empty

  o.set_tls_state("");  // present but empty is a bug on the sender
  auto st = validate(wrap(o, 1));
  EXPECT_FALSE(st.ok());
}

TEST(HandoffWire, Ipv6FlowRoundTrips) {
  pb::Offer o = sample_offer();
  o.mutable_flow()->mutable_client()->set_ip(std::string(16, '\x20'));
  o.mutable_flow()->mutable_service()->set_ip(std::string(16, '\xfd'));
  auto back = decode_frame(good_frame(wrap(o, 1)));
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  EXPECT_EQ(back->offer().flow().client().ip(), std::string(16, '\x20'));
}

struct BadField {
  const char* name;
  std::function<void(pb::Envelope&)> mutate;
  const char* field;  // must appear in the error message
};

TEST(HandoffWire, InvalidFieldsAreRejectedByName) {
  const std::vector<BadField> cases = {
      {"client port 0", [](pb::Envelope& e) { e.mutable_offer()->mutable_flow()->mutable_client()->set_port(0); },
       "offer.flow.client.port"},
      {"service port > 65535",
       [](pb::Envelope& e) { e.mutable_offer()->mutable_flow()->mutable_service()->set_port(70000); },
       "offer.flow.service.port"},
      {"5-byte address", [](pb::Envelope& e) { e.mutable_offer()->mutable_flow()->mutable_client()->set_ip("12345"); },
       "offer.flow.client.ip"},
      {"empty address", [](pb::Envelope& e) { e.mutable_offer()->mutable_flow()->mutable_service()->clear_ip(); },
       "offer.flow.service.ip"},
      {"mixed families",
       [](pb::Envelope& e) { e.mutable_offer()->mutable_flow()->mutable_client()->set_ip(std::string(16, 'x')); },
       "offer.flow"},
      {"no flow", [](pb::Envelope& e) { e.mutable_offer()->clear_flow(); }, "offer.flow"},
      {"no client", [](pb::Envelope& e) { e.mutable_offer()->mutable_flow()->clear_client(); }, "offer.flow.client"},
      {"flow id 0", [](pb::Envelope& e) { e.mutable_offer()->set_flow_id(0); }, "offer.flow_id"},
      {"no snapshot", [](pb::Envelope& e) { e.mutable_offer()->clear_tcp_snapshot(); }, "offer.tcp_snapshot"},
      {"snapshot too big",
       [](pb::Envelope& e) { e.mutable_offer()->set_tcp_snapshot(std::string(kMaxTcpSnapshotBytes + 1, 's')); },
       "offer.tcp_snapshot"},
      {"tls state too big",
       [](pb::Envelope& e) { e.mutable_offer()->set_tls_state(std::string(kMaxTlsStateBytes + 1, 't')); },
       "offer.tls_state"},
      {"payload too big", [](pb::Envelope& e) { e.mutable_offer()->set_payload(std::string(kMaxPayloadBytes + 1, 'p')); },
       "offer.payload"},
      {"no origin host", [](pb::Envelope& e) { e.mutable_offer()->clear_origin_host(); }, "offer.origin_host"},
      {"origin host with a slash", [](pb::Envelope& e) { e.mutable_offer()->set_origin_host("rgw/1"); },
       "offer.origin_host"},
      {"origin host too long", [](pb::Envelope& e) { e.mutable_offer()->set_origin_host(std::string(65, 'h')); },
       "offer.origin_host"},
      {"no ready timeout", [](pb::Envelope& e) { e.mutable_offer()->set_ready_timeout_ms(0); },
       "offer.ready_timeout_ms"},
      {"ready timeout too long", [](pb::Envelope& e) { e.mutable_offer()->set_ready_timeout_ms(kMaxReadyTimeoutMs + 1); },
       "offer.ready_timeout_ms"},
      {"seq 0", [](pb::Envelope& e) { e.set_seq(0); }, "envelope.seq"},
      {"txn 0", [](pb::Envelope& e) { e.set_txn(0); }, "envelope.txn"},
  };
  for (const auto& c : cases) {
    pb::Envelope e = wrap(sample_offer(), 1);
    e.set_seq(1);
    c.mutate(e);
    auto decoded = decode_frame(raw_frame(e));
    ASSERT_FALSE(decoded.ok()) << c.name;
    EXPECT_EQ(decoded.error().code, errc::kInvalidField) << c.name << ": " << decoded.error().to_string();
    EXPECT_NE(decoded.error().message.find(c.field), std::string::npos) << c.name << ": " << decoded.error().message;
    // The sender refuses to put it on the wire in the first place.
    EXPECT_FALSE(encode_frame(e).ok()) << c.name;
  }
}

TEST(HandoffWire, InvalidBodiesOfOtherMessagesAreRejected) {
  auto check = [](pb::Envelope e, const char* field) {
    e.set_seq(1);
    auto d = decode_frame(raw_frame(e));
    ASSERT_FALSE(d.ok()) << field;
    EXPECT_EQ(d.error().code, errc::kInvalidField) << d.error().to_string();
    EXPECT_NE(d.error().message.find(field), std::string::npos) << d.error().message;
  };
  check(wrap(pb::Ready{}, 1), "ready.flow_id");
  check(wrap(pb::Go{}, 1), "go.flow_id");
  check(wrap(pb::Done{}, 1), "done.flow_id");
  check(wrap(pb::QueryCommitted{}, 1), "query_committed.flow_id");
  check(wrap(pb::Committed{}, 1), "committed.flow_id");
  check(wrap(pb::Closed{}, 1), "closed.flow_id");
  pb::Held h;
  h.set_flow_id(1);
  h.add_packets("");
  check(wrap(h, 1), "held.packets");  // an empty packet
  h.clear_packets();
  for (size_t i = 0; i <= kMaxHeldPackets; ++i) h.add_packets("p");
  check(wrap(h, 1), "held.packets");  // too many
  pb::Go g;
  g.set_flow_id(1);
  g.add_held(std::string(kMaxHeldPacketBytes + 1, 'x'));
  check(wrap(g, 1), "go.held");
  pb::Refuse r;
  r.set_flow_id(1);
  check(wrap(r, 1), "refuse.reason");  // unspecified
  r.set_reason(static_cast<pb::Refuse::Reason>(99));
  check(wrap(r, 1), "refuse.reason");  // unknown to this version
  pb::Return ret = sample_return();
  ret.set_client_bytes(std::string(kMaxClientBytes + 1, 'c'));
  check(wrap(ret, 1), "return.client_bytes");
  ret = sample_return();
  ret.clear_tcp_snapshot();
  check(wrap(ret, 1), "return.tcp_snapshot");
  pb::Reconcile rc;
  rc.add_flow_ids(5);
  rc.add_flow_ids(0);
  check(wrap(rc, 1), "reconcile.flow_ids");
  pb::Abort a;
  a.set_flow_id(1);
  a.set_reason(std::string(kMaxTextBytes + 1, 'r'));
  check(wrap(a, 1), "abort.reason");
}

TEST(HandoffWire, WrongVersionIsRejected) {
  for (uint32_t v : {0u, kProtocolVersion + 1, 0xffffffffu}) {
    pb::Envelope e = wrap(sample_offer(), 1);
    e.set_seq(1);
    e.set_version(v);
    auto d = decode_frame(raw_frame(e));
    ASSERT_FALSE(d.ok());
    EXPECT_EQ(d.error().code, errc::kBadVersion) << d.error().to_string();
    EXPECT_NE(d.error().message.find("version"), std::string::npos);
  }
}

TEST(HandoffWire, ForgedTypesAreRejected) {
  pb::Envelope e = wrap(sample_offer(), 1);
  e.set_seq(1);

  pb::Envelope unknown = e;  // a type this version does not know
  unknown.set_type(static_cast<pb::MessageType>(42));
  auto d = decode_frame(raw_frame(unknown));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code, errc::kBadType) << d.error().to_string();

  pb::Envelope unspecified = e;
  unspecified.set_type(pb::TYPE_UNSPECIFIED);
  d = decode_frame(raw_frame(unspecified));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code, errc::kBadType);

  pb::Envelope mismatch = e;  // says GO, carries an OFFER
  mismatch.set_type(pb::TYPE_GO);
  d = decode_frame(raw_frame(mismatch));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code, errc::kBadType);
  EXPECT_NE(d.error().message.find("GO"), std::string::npos) << d.error().message;

  pb::Envelope nobody = e;
  nobody.clear_body();
  d = decode_frame(raw_frame(nobody));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code, errc::kBadType);

  // A body in a oneof field this version does not know (field 30, bytes):
  // protobuf keeps it as an unknown field, and no known body is set.
  pb::Envelope header_only = e;
  header_only.clear_body();
  std::string bytes = header_only.SerializeAsString();
  bytes += std::string("\xf2\x01\x03" "abc", 6);  // tag (30 << 3 | 2), len 3
  d = decode_frame(raw_frame(bytes));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code, errc::kBadType) << d.error().to_string();
}

TEST(HandoffWire, GarbageAndTrailingBytesAreRejected) {
  auto d = decode_frame(raw_frame(std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11)));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code, errc::kMalformed) << d.error().to_string();

  auto frame = good_frame(wrap(sample_offer(), 1));
  frame.push_back(0);
  d = decode_frame(frame);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code, errc::kMalformed) << d.error().to_string();
}

TEST(HandoffWire, TruncatedAtEveryLengthIsRejected) {
  for (const auto& e : every_message()) {
    const auto frame = good_frame(e);
    ASSERT_FALSE(frame.empty());
    for (size_t n = 0; n < frame.size(); ++n) {
      auto d = decode_frame(std::span<const uint8_t>(frame.data(), n));
      ASSERT_FALSE(d.ok()) << type_name(e.type()) << " cut at " << n;
      ASSERT_EQ(d.error().code, errc::kTruncated)
          << type_name(e.type()) << " cut at " << n << ": " << d.error().to_string();
    }
    // Cutting the body (not the frame) at every length: the header says the
    // truth about a shorter body. Never accepted as the original message.
    for (size_t n = 1; n + kFrameHeaderBytes < frame.size(); ++n) {
      std::string body(frame.begin() + kFrameHeaderBytes, frame.begin() + kFrameHeaderBytes + n);
      auto d = decode_frame(raw_frame(body));
      if (d.ok()) ADD_FAILURE() << type_name(e.type()) << " body cut at " << n << " decoded";
    }
  }
}

TEST(HandoffWire, OversizedFramesAreRejectedBeforeAllocating) {
  const uint32_t too_big = kMaxFrameBytes + 1;
  const uint8_t header[4] = {static_cast<uint8_t>(too_big >> 24), static_cast<uint8_t>(too_big >> 16),
                             static_cast<uint8_t>(too_big >> 8), static_cast<uint8_t>(too_big)};
  auto len = decode_frame_length(header);
  ASSERT_FALSE(len.ok());
  EXPECT_EQ(len.error().code, errc::kOversized);
  // With a few body bytes only: oversized wins over truncated, i.e. the length
  // is judged before anything is read or allocated for the body.
  std::vector<uint8_t> frame(header, header + 4);
  frame.resize(64, 0);
  auto d = decode_frame(frame);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code, errc::kOversized) << d.error().to_string();

  const uint8_t huge[4] = {0xff, 0xff, 0xff, 0xff};
  EXPECT_EQ(decode_frame_length(huge).error().code, errc::kOversized);
  const uint8_t zero[4] = {0, 0, 0, 0};
  EXPECT_EQ(decode_frame_length(zero).error().code, errc::kOversized);
  // The limit itself is allowed.
  const uint8_t at_limit[4] = {static_cast<uint8_t>(kMaxFrameBytes >> 24), static_cast<uint8_t>(kMaxFrameBytes >> 16),
                               static_cast<uint8_t>(kMaxFrameBytes >> 8), static_cast<uint8_t>(kMaxFrameBytes)};
  ASSERT_TRUE(decode_frame_length(at_limit).ok());
  EXPECT_EQ(*decode_frame_length(at_limit), kMaxFrameBytes);
}

TEST(HandoffWire, ReplayedAndReorderedFramesAreRejected) {
  pb::Ready ready;
  ready.set_flow_id(1);
  const auto f1 = good_frame(wrap(ready, 1), 1);
  const auto f2 = good_frame(wrap(ready, 2), 2);
  const auto f3 = good_frame(wrap(ready, 3), 3);

  SequenceGuard guard;
  ASSERT_TRUE(decode_frame(f1, guard).ok());
  ASSERT_TRUE(decode_frame(f2, guard).ok());
  auto replay = decode_frame(f2, guard);  // the same frame again
  ASSERT_FALSE(replay.ok());
  EXPECT_EQ(replay.error().code, errc::kReplay);
  EXPECT_NE(replay.error().message.find("replayed"), std::string::npos) << replay.error().message;
  auto old = decode_frame(f1, guard);
  ASSERT_FALSE(old.ok());
  EXPECT_EQ(old.error().code, errc::kReplay);
  ASSERT_TRUE(decode_frame(f3, guard).ok());  // the guard did not move on rejects
  EXPECT_EQ(guard.last(), 3u);

  SequenceGuard fresh;
  auto skipped = decode_frame(f2, fresh);  // frame 1 never arrived
  ASSERT_FALSE(skipped.ok());
  EXPECT_EQ(skipped.error().code, errc::kReplay);
  EXPECT_NE(skipped.error().message.find("out of order"), std::string::npos);

  SequenceCounter counter;
  EXPECT_EQ(counter.next(), 1u);
  EXPECT_EQ(counter.next(), 2u);
}

TEST(HandoffWire, KindsAndAnswers) {
  EXPECT_EQ(kind_of(pb::TYPE_OFFER), Kind::kRequest);
  EXPECT_EQ(kind_of(pb::TYPE_RETURN), Kind::kRequest);
  EXPECT_EQ(kind_of(pb::TYPE_QUERY_COMMITTED), Kind::kRequest);
  EXPECT_EQ(kind_of(pb::TYPE_RECONCILE), Kind::kRequest);
  EXPECT_EQ(kind_of(pb::TYPE_READY), Kind::kResponse);
  EXPECT_EQ(kind_of(pb::TYPE_GO), Kind::kNotification);
  EXPECT_EQ(kind_of(pb::TYPE_ABORT), Kind::kNotification);
  EXPECT_EQ(kind_of(pb::TYPE_CLOSED), Kind::kNotification);
  EXPECT_TRUE(answers(pb::TYPE_OFFER, pb::TYPE_READY));
  EXPECT_TRUE(answers(pb::TYPE_OFFER, pb::TYPE_REFUSE));
  EXPECT_FALSE(answers(pb::TYPE_OFFER, pb::TYPE_DONE));
  EXPECT_TRUE(answers(pb::TYPE_RETURN, pb::TYPE_DONE));
  EXPECT_TRUE(answers(pb::TYPE_RETURN, pb::TYPE_REFUSE));
  EXPECT_FALSE(answers(pb::TYPE_RETURN, pb::TYPE_READY));
  EXPECT_TRUE(answers(pb::TYPE_QUERY_COMMITTED, pb::TYPE_COMMITTED));
  EXPECT_TRUE(answers(pb::TYPE_RECONCILE, pb::TYPE_RECONCILE_ANSWER));
  EXPECT_FALSE(answers(pb::TYPE_GO, pb::TYPE_READY));
}

}  // namespace
}  // namespace xo::handoff::wire

namespace xo::handoff::wire {
namespace {

TEST(HandoffWire, EndpointsConvertBothWays) {
  sockaddr_storage v4{};
  auto& in = reinterpret_cast<sockaddr_in&>(v4);
  in.sin_family = AF_INET;
  in.sin_port = htons(443);
  ASSERT_EQ(inet_pton(AF_INET, "198.18.0.1", &in.sin_addr), 1);
  auto e = endpoint_to_wire(v4);
  ASSERT_TRUE(e.ok()) << e.error().to_string();
  EXPECT_EQ(e->ip(), std::string("\xc6\x12\x00\x01", 4));
  EXPECT_EQ(e->port(), 443u);
  auto back = endpoint_from_wire(*e);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(std::memcmp(&*back, &v4, sizeof(sockaddr_in)), 0);

  sockaddr_storage v6{};
  auto& in6 = reinterpret_cast<sockaddr_in6&>(v6);
  in6.sin6_family = AF_INET6;
  in6.sin6_port = htons(8443);
  ASSERT_EQ(inet_pton(AF_INET6, "2001:db8::7", &in6.sin6_addr), 1);
  auto e6 = endpoint_to_wire(v6);
  ASSERT_TRUE(e6.ok());
  EXPECT_EQ(e6->ip().size(), 16u);
  auto back6 = endpoint_from_wire(*e6);
  ASSERT_TRUE(back6.ok());
  EXPECT_EQ(std::memcmp(&*back6, &v6, sizeof(sockaddr_in6)), 0);

  in.sin_port = 0;  // not a connection's endpoint
  EXPECT_EQ(endpoint_to_wire(v4).error().code, errc::kInvalidField);
  sockaddr_storage unix_addr{};
  unix_addr.ss_family = AF_UNIX;
  EXPECT_FALSE(endpoint_to_wire(unix_addr).ok());
}

}  // namespace
}  // namespace xo::handoff::wire
