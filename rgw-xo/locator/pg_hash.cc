#include "rgw-xo/locator/pg_hash.h"

namespace xo::rgw {
namespace {

// Jenkins' lookup2 mixing step (public domain, burtleburtle.net/bob/hash/doobs.html).
inline void mix(uint32_t& a, uint32_t& b, uint32_t& c) {
  a -= b; a -= c; a ^= (c >> 13);
  b -= c; b -= a; b ^= (a << 8);
  c -= a; c -= b; c ^= (b >> 13);
  a -= b; a -= c; a ^= (c >> 12);
  b -= c; b -= a; b ^= (a << 16);
  c -= a; c -= b; c ^= (b >> 5);
  a -= b; a -= c; a ^= (c >> 3);
  b -= c; b -= a; b ^= (a << 10);
  c -= a; c -= b; c ^= (b >> 15);
}

inline uint32_t le32(const unsigned char* k) {
  return k[0] | (uint32_t{k[1]} << 8) | (uint32_t{k[2]} << 16) | (uint32_t{k[3]} << 24);
}

}  // namespace

uint32_t rjenkins_hash(std::string_view key) {
  auto k = reinterpret_cast<const unsigned char*>(key.data());
  uint32_t len = static_cast<uint32_t>(key.size());
  uint32_t a = 0x9e3779b9, b = 0x9e3779b9, c = 0;  // golden ratio; initval 0 as in Ceph
  while (len >= 12) {
    a += le32(k);
    b += le32(k + 4);
    c += le32(k + 8);
    mix(a, b, c);
    k += 12;
    len -= 12;
  }
  c += static_cast<uint32_t>(key.size());
  // The low byte of c is reserved for the length: the tail's bytes 8..10 go above it.
  switch (len) {
    case 11: c += uint32_t{k[10]} << 24; [[fallthrough]];
    case 10: c += uint32_t{k[9]} << 16; [[fallthrough]];
    case 9: c += uint32_t{k[8]} << 8; [[fallthrough]];
    case 8: b += uint32_t{k[7]} << 24; [[fallthrough]];
    case 7: b += uint32_t{k[6]} << 16; [[fallthrough]];
    case 6: b += uint32_t{k[5]} << 8; [[fallthrough]];
    case 5: b += k[4]; [[fallthrough]];
    case 4: a += uint32_t{k[3]} << 24; [[fallthrough]];
    case 3: a += uint32_t{k[2]} << 16; [[fallthrough]];
    case 2: a += uint32_t{k[1]} << 8; [[fallthrough]];
    case 1: a += k[0]; [[fallthrough]];
    default: break;
  }
  mix(a, b, c);
  return c;
}

}  // namespace xo::rgw
