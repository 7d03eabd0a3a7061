// OpenSSL EVP building blocks of the TLS record state: pre-fetched algorithms,
// the TLS 1.3 key schedule pieces XO needs after a handshake (HKDF-Expand-Label,
// traffic key/iv, KeyUpdate), the TLS 1.2 key block, and one AEAD context.
#pragma once

#include <openssl/evp.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.h"
#include "common/tls/state.h"

namespace xo::tls {

// "what: <first OpenSSL error>" (and clears OpenSSL's error queue).
std::string openssl_error(const char* what);

// Fetch every EVP_CIPHER/EVP_MD/EVP_KDF XO uses once, up front: the first
// implicit fetch in a cold process costs milliseconds (provider lookups).
// Idempotent and thread-safe; everything below calls it.
Status warm_up();

const EVP_CIPHER* fetched_cipher(Cipher c);
const EVP_MD* fetched_md(const char* name);  // "SHA256" or "SHA384"

// RFC 8446 7.1: HKDF-Expand-Label(secret, label, context, length), "tls13 " prefix added here.
Result<std::vector<uint8_t>> hkdf_expand_label(const char* hash, std::span<const uint8_t> secret,
                                               std::string_view label, std::span<const uint8_t> context,
                                               size_t length);

struct TrafficKeys {
  std::vector<uint8_t> key;  // cipher key
  std::vector<uint8_t> iv;   // 12-byte static IV
};
// RFC 8446 7.3: [sender]_write_key / _iv from a traffic secret.
Result<TrafficKeys> traffic_keys(Cipher c, std::span<const uint8_t> secret);
// RFC 8446 7.2: application_traffic_secret_N+1.
Result<std::vector<uint8_t>> next_traffic_secret(Cipher c, std::span<const uint8_t> secret);

// Set `d` to the keys of a TLS 1.3 traffic secret, sequence 0.
Status set_tls13_direction(Direction& d, Cipher c, std::span<const uint8_t> secret);

// RFC 5246 6.3 (AEAD suites: no MAC keys): the key block from the master secret.
struct Tls12KeyBlock {
  std::vector<uint8_t> client_key, server_key, client_iv, server_iv;  // iv: 4 (GCM) or 12 (ChaCha) bytes
};
Result<Tls12KeyBlock> tls12_key_block(Cipher c, std::span<const uint8_t> master_secret,
                                      std::span<const uint8_t> client_random,
                                      std::span<const uint8_t> server_random);

// One AEAD key: seal/open with an explicit nonce and AAD. Not thread-safe.
class Aead {
 public:
  static Result<Aead> create(Cipher c, std::span<const uint8_t> key, bool encrypt);
  Aead() = default;
  Aead(Aead&& o) noexcept : ctx_(o.ctx_), encrypt_(o.encrypt_), bulk_stride_(o.bulk_stride_) { o.ctx_ = nullptr; }
  Aead& operator=(Aead&& o) noexcept;
  ~Aead();

  static constexpr size_t kTagLen = 16;
  // out receives in.size() + tail.size() + 16 bytes: the ciphertext of
  // in || tail, then the tag. `tail` lets TLS 1.3 add its inner content type
  // without copying the payload. out may equal in.data().
  Status seal(std::span<const uint8_t, 12> nonce, std::span<const uint8_t> aad,
              std::span<const uint8_t> in, uint8_t* out, std::span<const uint8_t> tail = {});
  // in = ciphertext || tag; out receives in.size() - 16 bytes. Fails on a bad tag.
  Status open(std::span<const uint8_t, 12> nonce, std::span<const uint8_t> aad,
              std::span<const uint8_t> in, uint8_t* out);

 private:
  EVP_CIPHER_CTX* ctx_ = nullptr;
  bool encrypt_ = true;
  // ChaCha20-Poly1305: 128, see Aead::create(); AES-GCM: 0 (no constraint).
  size_t bulk_stride_ = 0;
};

}  // namespace xo::tls
