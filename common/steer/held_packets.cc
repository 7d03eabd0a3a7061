#include "common/steer/held_packets.h"

#include <bpf/libbpf.h>

#include <cstring>

#include "bpf/xo_steer.h"

namespace xo::steer {

Result<std::unique_ptr<HeldPackets>> HeldPackets::open(int held_map_fd, int seq_map_fd) {
  std::unique_ptr<HeldPackets> h(new HeldPackets);
  XO_ASSIGN_OR_RETURN(auto fence, IngressFence::open(seq_map_fd));
  h->fence_.emplace(std::move(fence));
  // 8 pages per CPU: a few hundred segments held at once is plenty (a
  // sample the ring has no room for is lost: the client resends it).
  h->buffer_ = perf_buffer__new(held_map_fd, 8, &HeldPackets::on_sample, nullptr, h.get(), nullptr);
  if (!h->buffer_) return sys_error("perf_buffer__new(xo_held)");
  return h;
}

HeldPackets::~HeldPackets() {
  if (buffer_) perf_buffer__free(buffer_);
}

void HeldPackets::on_sample(void* ctx, int, void* data, uint32_t size) {
  auto* self = static_cast<HeldPackets*>(ctx);
  if (size < sizeof(xo_held_meta)) return;
  xo_held_meta meta;
  std::memcpy(&meta, data, sizeof meta);
  // The sample is meta, then the packet's first meta.len bytes (perf pads the end).
  const auto* pkt = static_cast<const char*>(data) + sizeof meta;
  if (meta.len > size - sizeof meta || meta.l3_off >= meta.len) return;
  std::string ip(pkt + meta.l3_off, meta.len - meta.l3_off);
  self->bytes_ += ip.size();
  self->by_owner_[meta.owner].push_back(std::move(ip));
  while (self->bytes_ > kMaxBytes && !self->by_owner_.empty()) {
    for (const auto& p : self->by_owner_.begin()->second) self->bytes_ -= p.size();
    self->by_owner_.erase(self->by_owner_.begin());
  }
}

void HeldPackets::drain() {
  // Non-blocking: whatever the rings hold now. A drop is reported in the
  // same program run that found the BLOCK, so after the fence every drop
  // from before the switch is in a ring.
  // (Past the fence's bound a drop may be missed: it shows as held but not
  // replayed in the counters, and the client resends it.)
  (void)fence_->wait();
  (void)perf_buffer__consume(buffer_);
}

std::vector<std::string> HeldPackets::take(uint64_t owner) {
  std::lock_guard lock(mu_);
  drain();
  auto it = by_owner_.find(owner);
  if (it == by_owner_.end()) return {};
  std::vector<std::string> out = std::move(it->second);
  by_owner_.erase(it);
  for (const auto& p : out) bytes_ -= p.size();
  return out;
}

}  // namespace xo::steer
