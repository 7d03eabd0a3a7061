// xo::tls::State — a TLS connection's record-layer state, in the Linux kTLS
// uapi form, as it moves between hosts and between record-layer backends.
//
// One value describes everything needed to continue the record protocol of an
// established connection (server side): protocol version, cipher, for each
// direction the kTLS crypto_info (key, salt, iv, rec_seq) plus, for TLS 1.3,
// the current application traffic secret (a KeyUpdate after the move derives
// the next one from it), and every byte already pulled from the kernel that the
// application has not consumed yet.
//
// Field meanings follow <linux/tls.h> exactly, so a State can be installed with
// setsockopt(SOL_TLS, TLS_TX/TLS_RX) unchanged:
//  * TLS 1.3 (all ciphers) and TLS 1.2 ChaCha20-Poly1305: per-record nonce =
//    (salt || iv) XOR rec_seq, left-padded.
//  * TLS 1.2 AES-GCM: nonce = salt || explicit_nonce. On TX, `iv` is the NEXT
//    explicit nonce (continued from the wire, incremented per record, as the
//    kernel does); on RX the peer sends it in each record and `iv` is unused.
//  * rec_seq is big-endian: the sequence number of the NEXT record.
#pragma once

#include <linux/tls.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/base/result.h"

namespace xo::tls {

enum class Version : uint16_t { tls12 = TLS_1_2_VERSION, tls13 = TLS_1_3_VERSION };

enum class Cipher : uint16_t {
  aes128gcm = TLS_CIPHER_AES_GCM_128,
  aes256gcm = TLS_CIPHER_AES_GCM_256,
  chacha20poly1305 = TLS_CIPHER_CHACHA20_POLY1305,
};

// Sizes and algorithm names of one cipher.
struct CipherInfo {
  Cipher cipher;
  const char* name;         // "aes128gcm" (XO's own short name, used in bench lines)
  const char* evp_cipher;   // OpenSSL EVP name
  const char* tls13_hash;   // digest of the TLS 1.3 suite using this AEAD
  size_t key_len, salt_len, iv_len, tag_len, secret_len;  // secret_len: TLS 1.3 hash size
  size_t crypto_info_len;   // sizeof the <linux/tls.h> struct
};
const CipherInfo& cipher_info(Cipher c);
Result<Cipher> cipher_from_int(uint16_t v);
const char* to_string(Version v);

// One direction's kTLS crypto_info plus its TLS 1.3 traffic secret.
struct Direction {
  union {
    tls_crypto_info base;
    tls12_crypto_info_aes_gcm_128 aes128gcm;
    tls12_crypto_info_aes_gcm_256 aes256gcm;
    tls12_crypto_info_chacha20_poly1305 chacha20poly1305;
  } crypto{};
  std::vector<uint8_t> traffic_secret;  // TLS 1.3 only; empty for TLS 1.2

  // Views into `crypto` for the cipher recorded in crypto.base.cipher_type.
  std::span<uint8_t> key();
  std::span<uint8_t> salt();
  std::span<uint8_t> iv();
  std::span<uint8_t> rec_seq();
  std::span<const uint8_t> key() const { return const_cast<Direction*>(this)->key(); }
  std::span<const uint8_t> salt() const { return const_cast<Direction*>(this)->salt(); }
  std::span<const uint8_t> iv() const { return const_cast<Direction*>(this)->iv(); }
  std::span<const uint8_t> rec_seq() const { return const_cast<Direction*>(this)->rec_seq(); }
  uint64_t seq() const;
  void set_seq(uint64_t seq);
  // The explicit nonce as a number (TLS 1.2 AES-GCM).
  uint64_t explicit_nonce() const;
  void set_explicit_nonce(uint64_t n);
  // Fill the header and set key/static IV (salt||iv as one 12-byte array for
  // the implicit-nonce constructions) for `cipher` and `version`.
  void set_keys(Version v, Cipher c, std::span<const uint8_t> key, std::span<const uint8_t> iv12_or_salt);
  // The size of the uapi struct, for setsockopt.
  size_t crypto_len() const;
};

struct State {
  static constexpr uint16_t kFormatVersion = 1;
  static constexpr size_t kMaxBuffered = 64u << 20;  // decoder cap per byte buffer

  Version version = Version::tls13;
  Cipher cipher = Cipher::aes128gcm;
  Direction tx;  // records this side sends (server → client)
  Direction rx;  // records this side receives

  // Plaintext already decrypted but not consumed by the application (e.g. a
  // pipelined request), delivered before anything else after the move.
  std::vector<uint8_t> unread_plaintext;
  // Bytes read from the socket but not yet decrypted: zero or more whole
  // records, then possibly the head of a partial record.
  std::vector<uint8_t> pending_ciphertext;
  // The peer sent close_notify (nothing more will be received).
  bool rx_closed = false;
};

// Versioned, bounds-checked encoding. decode() rejects truncated, oversized,
// trailing or inconsistent input with an error that names the field.
std::vector<uint8_t> encode(const State& s);
Result<State> decode(std::span<const uint8_t> bytes);

// Checks the invariants decode() enforces (sizes, versions, secrets).
Status validate(const State& s);

}  // namespace xo::tls
