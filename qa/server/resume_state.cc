#include "qa/server/resume_state.h"

#include <cstring>

namespace xo::testserver {
namespace {

constexpr uint32_t kMagic = 0x58525332;  // "XRS2" (XRS1 had no stream state)
constexpr size_t kMaxField = 64u << 20;

void put_u64(std::vector<uint8_t>& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void put_bytes(std::vector<uint8_t>& out, const void* p, size_t n) {
  put_u64(out, n);
  auto* b = static_cast<const uint8_t*>(p);
  out.insert(out.end(), b, b + n);
}

struct Reader {
  std::span<const uint8_t> in;
  size_t pos = 0;
  Result<uint64_t> u64() {
    if (in.size() - pos < 8) return error("resume state: truncated");
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= uint64_t{in[pos + i]} << (8 * i);
    pos += 8;
    return v;
  }
  Result<std::vector<uint8_t>> bytes() {
    XO_ASSIGN_OR_RETURN(uint64_t n, u64());
    if (n > kMaxField || in.size() - pos < n) return error("resume state: field length out of range");
    std::vector<uint8_t> v(in.begin() + static_cast<long>(pos), in.begin() + static_cast<long>(pos + n));
    pos += n;
    return v;
  }
};

}  // namespace

std::vector<uint8_t> encode(const ResumeState& s) {
  std::vector<uint8_t> out;
  put_u64(out, kMagic);
  put_bytes(out, s.unread.data(), s.unread.size());
  put_u64(out, s.requests);
  put_u64(out, s.owed ? 1 : 0);
  if (s.owed) {
    put_bytes(out, s.owed->method.data(), s.owed->method.size());
    put_bytes(out, s.owed->target.data(), s.owed->target.size());
    put_u64(out, s.owed->keep_alive);
    put_u64(out, s.owed->seq);
    put_u64(out, s.owed->head_written);
    put_u64(out, s.owed->body_offset);
  }
  put_bytes(out, s.stream.data(), s.stream.size());
  return out;
}

Result<ResumeState> decode_resume_state(std::span<const uint8_t> bytes) {
  Reader r{bytes};
  XO_ASSIGN_OR_RETURN(uint64_t magic, r.u64());
  if (magic != kMagic) return error("resume state: bad magic/version");
  ResumeState s;
  XO_ASSIGN_OR_RETURN(s.unread, r.bytes());
  XO_ASSIGN_OR_RETURN(s.requests, r.u64());
  XO_ASSIGN_OR_RETURN(uint64_t has_owed, r.u64());
  if (has_owed > 1) return error("resume state: bad owed flag");
  if (has_owed) {
    Owed o;
    XO_ASSIGN_OR_RETURN(auto method, r.bytes());
    XO_ASSIGN_OR_RETURN(auto target, r.bytes());
    o.method.assign(method.begin(), method.end());
    o.target.assign(target.begin(), target.end());
    XO_ASSIGN_OR_RETURN(uint64_t ka, r.u64());
    XO_ASSIGN_OR_RETURN(o.seq, r.u64());
    XO_ASSIGN_OR_RETURN(uint64_t hw, r.u64());
    XO_ASSIGN_OR_RETURN(o.body_offset, r.u64());
    o.keep_alive = ka != 0;
    o.head_written = hw != 0;
    s.owed = std::move(o);
  }
  XO_ASSIGN_OR_RETURN(s.stream, r.bytes());
  if (r.pos != bytes.size()) return error("resume state: trailing bytes");
  return s;
}

}  // namespace xo::testserver
