// Well-formed messages for the control-channel tests and benchmarks
// (loopback addresses; the channel never looks inside a snapshot).
#pragma once

#include <cstdint>
#include <string>

#include "common/handoff/wire/handoff.pb.h"

namespace xo::handoff::test {

inline pb::Offer loopback_offer(uint64_t flow_id, std::string tcp_snapshot, uint32_t ready_timeout_ms) {
  pb::Offer o;
  auto* f = o.mutable_flow();
  f->mutable_client()->set_ip(std::string("\x7f\x00\x00\x01", 4));
  f->mutable_client()->set_port(40000);
  f->mutable_service()->set_ip(std::string("\x7f\x00\x00\x01", 4));
  f->mutable_service()->set_port(443);
  o.set_flow_id(flow_id);
  o.set_tcp_snapshot(std::move(tcp_snapshot));
  o.set_origin_host("rgw-1");
  o.set_ready_timeout_ms(ready_timeout_ms);
  return o;
}

}  // namespace xo::handoff::test
