#include "common/tls/record.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace xo::tls {

Result<size_t> whole_record_length(std::span<const uint8_t> buf) {
  if (buf.size() < kRecordHeaderLen) return size_t{0};
  uint8_t type = buf[0];
  if (type < kChangeCipherSpec || type > kApplicationData || buf[1] != 3)
    return error("not a TLS record (type " + std::to_string(type) + ", version " + std::to_string(buf[1]) + "." +
                 std::to_string(buf[2]) + ")");
  size_t len = size_t(buf[3]) << 8 | buf[4];
  if (len > kMaxCiphertext) return error("TLS record length " + std::to_string(len) + " exceeds the limit");
  if (buf.size() < kRecordHeaderLen + len) return size_t{0};
  return kRecordHeaderLen + len;
}

Result<RecordProtection> RecordProtection::create(Version v, const Direction& d, bool seal) {
  XO_TRY(warm_up());
  RecordProtection p;
  p.version_ = v;
  XO_ASSIGN_OR_RETURN(p.cipher_, cipher_from_int(d.crypto.base.cipher_type));
  p.seal_ = seal;
  p.dir_ = d;
  XO_TRY(p.rekey());
  return p;
}

Status RecordProtection::rekey() {
  XO_ASSIGN_OR_RETURN(aead_, Aead::create(cipher_, dir_.key(), seal_));
  auto salt = dir_.salt();
  auto iv = dir_.iv();
  // 4 + 8 or 0 + 12 bytes for every cipher. (TLS 1.2 AES-GCM's iv is the
  // explicit nonce, which changes per record; that construction never uses it.)
  if (salt.size() + iv.size() != sizeof static_iv_) return error("rekey: salt and iv are not 12 bytes");
  std::copy(salt.begin(), salt.end(), static_iv_);
  std::copy(iv.begin(), iv.end(), static_iv_ + salt.size());
  return {};
}

void RecordProtection::nonce_for_seq(uint8_t (&nonce)[12]) const {
  // salt || iv is the 12-byte static IV; XOR the sequence into its low 8 bytes.
  std::memcpy(nonce, static_iv_, sizeof static_iv_);
  auto seq = dir_.rec_seq();
  for (size_t i = 0; i < 8; ++i) nonce[4 + i] ^= seq[i];
}

size_t RecordProtection::sealed_size(size_t n, size_t padding) const {
  if (version_ == Version::tls13) return kRecordHeaderLen + n + 1 + padding + Aead::kTagLen;
  return kRecordHeaderLen + (cipher_ != Cipher::chacha20poly1305 ? 8 : 0) + n + Aead::kTagLen;
}

Status RecordProtection::seal(uint8_t type, std::span<const uint8_t> plaintext, std::vector<uint8_t>& out,
                              size_t padding) {
  size_t at = out.size();
  out.resize(at + sealed_size(plaintext.size(), padding));
  auto n = seal_into(type, plaintext, std::span(out).subspan(at), padding);
  if (!n) {
    out.resize(at);
    return n.take_error();
  }
  return {};
}

Result<size_t> RecordProtection::seal_into(uint8_t type, std::span<const uint8_t> plaintext, std::span<uint8_t> out,
                                           size_t padding) {
  if (!seal_) return error("seal on an opening context");
  if (plaintext.size() > kMaxPlaintext) return error("seal: plaintext larger than one record");
  if (version_ == Version::tls13 && padding > kMaxPlaintext - plaintext.size()) return error("seal: padding too large");
  if (dir_.seq() == ~uint64_t{0}) return error("seal: sequence number exhausted");
  size_t total = sealed_size(plaintext.size(), padding);
  if (out.size() < total) return error("seal: output buffer too small");
  uint8_t nonce[12];
  uint8_t* h = out.data();
  size_t body = total - kRecordHeaderLen;
  h[1] = 3;
  h[2] = 3;
  h[3] = uint8_t(body >> 8);
  h[4] = uint8_t(body);
  if (version_ == Version::tls13) {
    h[0] = kApplicationData;  // opaque_type
    uint8_t tail_buf[256];
    std::vector<uint8_t> big_tail;
    uint8_t* tail = tail_buf;
    if (1 + padding > sizeof tail_buf) {
      big_tail.resize(1 + padding);
      tail = big_tail.data();
    }
    tail[0] = type;
    std::memset(tail + 1, 0, padding);
    nonce_for_seq(nonce);
    XO_TRY(aead_.seal(nonce, std::span(h, kRecordHeaderLen), plaintext, h + kRecordHeaderLen,
                      std::span<const uint8_t>(tail, 1 + padding)));
  } else {
    h[0] = type;
    bool gcm = cipher_ != Cipher::chacha20poly1305;
    size_t explicit_len = gcm ? 8 : 0;
    uint8_t aad[13];
    auto seq = dir_.rec_seq();
    std::copy(seq.begin(), seq.end(), aad);
    aad[8] = type;
    aad[9] = 3;
    aad[10] = 3;
    aad[11] = uint8_t(plaintext.size() >> 8);
    aad[12] = uint8_t(plaintext.size());
    if (gcm) {
      auto salt = dir_.salt();
      auto iv = dir_.iv();  // the next explicit nonce
      std::copy(salt.begin(), salt.end(), nonce);
      std::copy(iv.begin(), iv.end(), nonce + 4);
      std::copy(iv.begin(), iv.end(), h + kRecordHeaderLen);
    } else {
      nonce_for_seq(nonce);
    }
    XO_TRY(aead_.seal(nonce, aad, plaintext, h + kRecordHeaderLen + explicit_len));
    if (gcm) dir_.set_explicit_nonce(dir_.explicit_nonce() + 1);
  }
  dir_.set_seq(dir_.seq() + 1);
  return total;
}

Result<uint8_t> RecordProtection::open(std::span<const uint8_t> record, std::vector<uint8_t>& out) {
  size_t at = out.size();
  out.resize(at + record.size());
  auto r = open_into(record, std::span(out).subspan(at));
  if (!r) {
    out.resize(at);
    return r.take_error();
  }
  out.resize(at + r->len);
  return r->type;
}

Result<RecordProtection::Opened> RecordProtection::open_into(std::span<const uint8_t> record, std::span<uint8_t> out) {
  if (seal_) return error("open on a sealing context");
  XO_ASSIGN_OR_RETURN(size_t whole, whole_record_length(record));
  if (whole == 0 || whole != record.size()) return error("open: not exactly one whole record");
  if (out.size() < record.size()) return error("open: output buffer too small");
  uint8_t type = record[0];
  auto body = record.subspan(kRecordHeaderLen);
  uint8_t nonce[12];
  size_t len = 0;
  if (version_ == Version::tls13) {
    if (type != kApplicationData)
      return error("TLS 1.3 protected record with outer type " + std::to_string(type) + " (unexpected_message)");
    if (body.size() < Aead::kTagLen + 1 || body.size() > kMaxPlaintext + 256)
      return error("TLS 1.3 record length out of range");
    nonce_for_seq(nonce);
    XO_TRY(aead_.open(nonce, record.first(kRecordHeaderLen), body, out.data()));
    // Strip the zero padding; the last non-zero byte is the real content type.
    size_t end = body.size() - Aead::kTagLen;
    while (end > 0 && out[end - 1] == 0) --end;
    if (end == 0) return error("TLS 1.3 record without a content type (unexpected_message)");
    type = out[end - 1];
    len = end - 1;
    if (len > kMaxPlaintext) return error("TLS 1.3 record plaintext too long (record_overflow)");
  } else {
    bool gcm = cipher_ != Cipher::chacha20poly1305;
    size_t explicit_len = gcm ? 8 : 0;
    if (body.size() < explicit_len + Aead::kTagLen) return error("TLS 1.2 record too short");
    len = body.size() - explicit_len - Aead::kTagLen;
    if (len > kMaxPlaintext) return error("TLS 1.2 record plaintext too long (record_overflow)");
    uint8_t aad[13];
    auto seq = dir_.rec_seq();
    std::copy(seq.begin(), seq.end(), aad);
    aad[8] = type;
    aad[9] = 3;
    aad[10] = 3;
    aad[11] = uint8_t(len >> 8);
    aad[12] = uint8_t(len);
    if (gcm) {
      auto salt = dir_.salt();
      std::copy(salt.begin(), salt.end(), nonce);
      std::copy(body.begin(), body.begin() + 8, nonce + 4);
    } else {
      nonce_for_seq(nonce);
    }
    XO_TRY(aead_.open(nonce, aad, body.subspan(explicit_len), out.data()));
    if (gcm) std::copy(body.begin(), body.begin() + 8, dir_.iv().begin());  // last explicit nonce seen
  }
  dir_.set_seq(dir_.seq() + 1);
  return Opened{type, len};
}

Status RecordProtection::update_key() {
  if (version_ != Version::tls13) return error("KeyUpdate exists only in TLS 1.3");
  XO_ASSIGN_OR_RETURN(auto next, next_traffic_secret(cipher_, dir_.traffic_secret));
  XO_TRY(set_tls13_direction(dir_, cipher_, next));
  return rekey();
}

}  // namespace xo::tls
