// Test helpers of common/tls/test: two ends of one made-up TLS connection
// (fixed keys, both versions, every cipher), patterned data, exact reads.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "common/tls/crypto.h"
#include "common/tls/record_layer.h"
#include "common/tls/state.h"

namespace xo::tls::test {

struct StatePair {
  State server, client;  // client = server with tx/rx swapped
};

// Fixed secrets (TLS 1.3) or keys and IVs (TLS 1.2); the sequence numbers and
// the TLS 1.2 GCM explicit nonce are the test's choice (e.g. near a wrap).
inline StatePair make_state_pair(Version v, Cipher c, uint64_t server_tx_seq, uint64_t server_rx_seq,
                                 uint64_t explicit_nonce) {
  const auto& ci = cipher_info(c);
  StatePair p;
  p.server.version = v;
  p.server.cipher = c;
  if (v == Version::tls13) {
    std::vector<uint8_t> a(ci.secret_len, 0x5a), b(ci.secret_len, 0xa5);
    EXPECT_TRUE(set_tls13_direction(p.server.tx, c, a).ok());
    EXPECT_TRUE(set_tls13_direction(p.server.rx, c, b).ok());
  } else {
    std::vector<uint8_t> k1(ci.key_len, 1), k2(ci.key_len, 2);
    std::vector<uint8_t> iv1(ci.salt_len ? 4 : 12, 3), iv2(ci.salt_len ? 4 : 12, 4);
    p.server.tx.set_keys(v, c, k1, iv1);
    p.server.rx.set_keys(v, c, k2, iv2);
    if (c != Cipher::chacha20poly1305) p.server.tx.set_explicit_nonce(explicit_nonce);
  }
  p.server.tx.set_seq(server_tx_seq);
  p.server.rx.set_seq(server_rx_seq);
  p.client = p.server;
  std::swap(p.client.tx, p.client.rx);
  return p;
}

// n bytes that differ with position and seed (a shifted copy would not match).
inline std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = uint8_t(i * 31 + seed);
  return v;
}

// Reads until n bytes (fewer if the stream ends or fails: the test then
// compares and fails). `chunk` bounds each read_some.
inline std::vector<uint8_t> read_exactly(RecordLayer& l, size_t n, size_t chunk = 16384) {
  std::vector<uint8_t> got;
  std::vector<uint8_t> buf(chunk);
  while (got.size() < n) {
    auto r = l.read_some(std::span(buf.data(), std::min(buf.size(), n - got.size())));
    EXPECT_TRUE(r.ok()) << r.error().to_string();
    if (!r.ok() || *r == 0) break;
    got.insert(got.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(*r));
  }
  return got;
}

}  // namespace xo::tls::test
