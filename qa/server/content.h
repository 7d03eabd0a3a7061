// Deterministic response content: byte i of /data/<size>/<seed> is a pure
// function of (seed, i), so any client can verify every byte it got without
// the server's help. content.py is the Python twin; keep them identical.
//
// Bytes come in 8-byte blocks: block j = splitmix64(splitmix64(seed) + j),
// stored little-endian.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace xo::testserver {

constexpr uint64_t splitmix64(uint64_t x) {
  uint64_t z = x + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Fill `out` with the content bytes [offset, offset + out.size()) of `seed`.
inline void content_fill(uint64_t seed, uint64_t offset, std::span<uint8_t> out) {
  const uint64_t base = splitmix64(seed);
  uint64_t pos = offset;
  for (size_t i = 0; i < out.size();) {
    uint64_t block = splitmix64(base + pos / 8);
    for (unsigned b = static_cast<unsigned>(pos % 8); b < 8 && i < out.size(); ++b, ++i, ++pos)
      out[i] = static_cast<uint8_t>(block >> (8 * b));
  }
}

// Offset of the first byte of `got` that differs from the content at
// `offset`; -1 if all match.
inline int64_t content_mismatch(uint64_t seed, uint64_t offset, std::span<const uint8_t> got) {
  uint8_t want[4096];
  for (size_t done = 0; done < got.size();) {
    size_t n = got.size() - done < sizeof want ? got.size() - done : sizeof want;
    content_fill(seed, offset + done, std::span<uint8_t>(want, n));
    for (size_t i = 0; i < n; ++i)
      if (want[i] != got[done + i]) return static_cast<int64_t>(offset + done + i);
    done += n;
  }
  return -1;
}

}  // namespace xo::testserver
