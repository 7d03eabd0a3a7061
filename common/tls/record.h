// TLS record protection for one direction (sans I/O): TLS 1.3 (RFC 8446 5.2:
// inner content type, zero padding, nonce = static IV XOR sequence) and TLS 1.2
// AEAD (RFC 5288 explicit nonce for AES-GCM, RFC 7905 implicit nonce for
// ChaCha20-Poly1305). The state lives in a kTLS-form Direction and advances
// with every record, so it can be exported at any record boundary.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/base/result.h"
#include "common/tls/crypto.h"
#include "common/tls/state.h"

namespace xo::tls {

enum ContentType : uint8_t {
  kChangeCipherSpec = 20,
  kAlert = 21,
  kHandshake = 22,
  kApplicationData = 23,
};
enum AlertDescription : uint8_t {
  kCloseNotify = 0,
  kUnexpectedMessage = 10,
  kBadRecordMac = 20,
  kRecordOverflow = 22,
  kDecodeError = 50,
  kInternalError = 80,
  kNoRenegotiation = 100,
};
constexpr uint8_t kHandshakeKeyUpdate = 24;
constexpr size_t kRecordHeaderLen = 5;
constexpr size_t kMaxPlaintext = 16384;
constexpr size_t kMaxCiphertext = kMaxPlaintext + 2048;  // RFC 5246 limit; TLS 1.3's (+256) is smaller

// The length of the first record in `buf` (header included) once it is whole,
// 0 while incomplete; an error when the header cannot be a TLS record.
Result<size_t> whole_record_length(std::span<const uint8_t> buf);

class RecordProtection {
 public:
  // A sealing or opening context for the keys and sequence in `d`.
  static Result<RecordProtection> create(Version v, const Direction& d, bool seal);

  // Append one protected record carrying `plaintext` (at most kMaxPlaintext
  // bytes) of content type `type`; `padding` zero bytes are added in TLS 1.3.
  Status seal(uint8_t type, std::span<const uint8_t> plaintext, std::vector<uint8_t>& out, size_t padding = 0);
  // The same into caller memory of at least sealed_size() bytes (no
  // allocation, no zero-fill: the hot path); returns the record's size.
  Result<size_t> seal_into(uint8_t type, std::span<const uint8_t> plaintext, std::span<uint8_t> out,
                           size_t padding = 0);
  size_t sealed_size(size_t plaintext_len, size_t padding = 0) const;

  // Open one whole record (header included): append its plaintext to `out`
  // and return its content type. A failed tag returns an error with code EBADMSG.
  Result<uint8_t> open(std::span<const uint8_t> record, std::vector<uint8_t>& out);
  // The same into caller memory of at least record.size() bytes.
  struct Opened {
    uint8_t type;
    size_t len;
  };
  Result<Opened> open_into(std::span<const uint8_t> record, std::span<uint8_t> out);

  // TLS 1.3 KeyUpdate: the next traffic secret, its key and IV, sequence 0.
  Status update_key();

  // The current state (next sequence number, next TLS 1.2 explicit nonce).
  const Direction& direction() const { return dir_; }
  Version version() const { return version_; }

 private:
  Status rekey();
  void nonce_for_seq(uint8_t (&nonce)[12]) const;

  Version version_ = Version::tls13;
  Cipher cipher_ = Cipher::aes128gcm;
  bool seal_ = true;
  Direction dir_;
  Aead aead_;
  // salt || iv (TLS 1.3 and ChaCha20-Poly1305's static IV), cached by rekey():
  // the per-record nonce is built without walking the Direction's layout.
  uint8_t static_iv_[12] = {};
};

}  // namespace xo::tls
