#include "common/tls/state.h"

#include <algorithm>
#include <cstring>

#include "common/base/bytes.h"

namespace xo::tls {
namespace {

constexpr uint8_t kMagic[4] = {'X', 'O', 'T', 'S'};

const CipherInfo kCiphers[] = {
    {Cipher::aes128gcm, "aes128gcm", "AES-128-GCM", "SHA256", 16, 4, 8, 16, 32,
     sizeof(tls12_crypto_info_aes_gcm_128)},
    {Cipher::aes256gcm, "aes256gcm", "AES-256-GCM", "SHA384", 32, 4, 8, 16, 48,
     sizeof(tls12_crypto_info_aes_gcm_256)},
    {Cipher::chacha20poly1305, "chacha20poly1305", "ChaCha20-Poly1305", "SHA256", 32, 0, 12, 16, 32,
     sizeof(tls12_crypto_info_chacha20_poly1305)},
};

uint64_t load_be64(std::span<const uint8_t> b) {
  uint64_t v = 0;
  for (uint8_t x : b) v = v << 8 | x;
  return v;
}
void store_be64(std::span<uint8_t> b, uint64_t v) {
  for (size_t i = b.size(); i-- > 0; v >>= 8) b[i] = uint8_t(v);
}

}  // namespace

const CipherInfo& cipher_info(Cipher c) {
  for (const auto& ci : kCiphers)
    if (ci.cipher == c) return ci;
  return kCiphers[0];  // unreachable for values that passed cipher_from_int
}

Result<Cipher> cipher_from_int(uint16_t v) {
  for (const auto& ci : kCiphers)
    if (uint16_t(ci.cipher) == v) return ci.cipher;
  return error("unsupported cipher type " + std::to_string(v) +
               " (want 51 AES-GCM-128, 52 AES-GCM-256 or 54 ChaCha20-Poly1305)");
}

const char* to_string(Version v) { return v == Version::tls13 ? "TLS1.3" : "TLS1.2"; }

// Every supported struct is {base, iv, key, salt, rec_seq} in this order, so the
// offsets follow from the sizes; static_asserts pin that assumption.
static_assert(offsetof(tls12_crypto_info_aes_gcm_128, iv) == sizeof(tls_crypto_info));
static_assert(offsetof(tls12_crypto_info_aes_gcm_128, key) == sizeof(tls_crypto_info) + 8);
static_assert(offsetof(tls12_crypto_info_aes_gcm_128, salt) == sizeof(tls_crypto_info) + 8 + 16);
static_assert(offsetof(tls12_crypto_info_aes_gcm_256, salt) == sizeof(tls_crypto_info) + 8 + 32);
static_assert(offsetof(tls12_crypto_info_chacha20_poly1305, key) == sizeof(tls_crypto_info) + 12);
static_assert(offsetof(tls12_crypto_info_chacha20_poly1305, salt) == sizeof(tls_crypto_info) + 12 + 32);

// One cipher_info() lookup per accessor: the record layer calls these per record.
std::span<uint8_t> Direction::iv() {
  const auto& ci = cipher_info(Cipher(crypto.base.cipher_type));
  return {reinterpret_cast<uint8_t*>(&crypto) + sizeof(tls_crypto_info), ci.iv_len};
}
std::span<uint8_t> Direction::key() {
  const auto& ci = cipher_info(Cipher(crypto.base.cipher_type));
  return {reinterpret_cast<uint8_t*>(&crypto) + sizeof(tls_crypto_info) + ci.iv_len, ci.key_len};
}
std::span<uint8_t> Direction::salt() {
  const auto& ci = cipher_info(Cipher(crypto.base.cipher_type));
  return {reinterpret_cast<uint8_t*>(&crypto) + sizeof(tls_crypto_info) + ci.iv_len + ci.key_len, ci.salt_len};
}
std::span<uint8_t> Direction::rec_seq() {
  const auto& ci = cipher_info(Cipher(crypto.base.cipher_type));
  return {reinterpret_cast<uint8_t*>(&crypto) + sizeof(tls_crypto_info) + ci.iv_len + ci.key_len + ci.salt_len, 8};
}
uint64_t Direction::seq() const { return load_be64(rec_seq()); }
void Direction::set_seq(uint64_t s) { store_be64(rec_seq(), s); }
uint64_t Direction::explicit_nonce() const { return load_be64(iv()); }
void Direction::set_explicit_nonce(uint64_t n) { store_be64(iv(), n); }
size_t Direction::crypto_len() const { return cipher_info(Cipher(crypto.base.cipher_type)).crypto_info_len; }

void Direction::set_keys(Version v, Cipher c, std::span<const uint8_t> k, std::span<const uint8_t> write_iv) {
  uint64_t s = crypto.base.cipher_type == uint16_t(c) ? seq() : 0;
  std::memset(&crypto, 0, sizeof(crypto));
  crypto.base.version = uint16_t(v);
  crypto.base.cipher_type = uint16_t(c);
  std::copy_n(k.begin(), std::min(k.size(), key().size()), key().begin());
  // write_iv is the 12-byte static IV (TLS 1.3, ChaCha) or the 4-byte implicit
  // salt (TLS 1.2 GCM): the first salt_len bytes are the salt, the rest the iv.
  auto sl = salt();
  size_t n = std::min(write_iv.size(), sl.size());
  std::copy_n(write_iv.begin(), n, sl.begin());
  auto rest = write_iv.subspan(n);
  std::copy_n(rest.begin(), std::min(rest.size(), iv().size()), iv().begin());
  set_seq(s);
}

Status validate(const State& s) {
  if (s.version != Version::tls12 && s.version != Version::tls13)
    return error("unsupported TLS version " + std::to_string(uint16_t(s.version)));
  XO_TRY(cipher_from_int(uint16_t(s.cipher)));
  const auto& ci = cipher_info(s.cipher);
  for (const Direction* d : {&s.tx, &s.rx}) {
    const char* name = d == &s.tx ? "tx" : "rx";
    if (d->crypto.base.version != uint16_t(s.version) || d->crypto.base.cipher_type != uint16_t(s.cipher))
      return error(std::string(name) + " crypto_info header does not match the state's version/cipher");
    size_t want = s.version == Version::tls13 ? ci.secret_len : 0;
    if (d->traffic_secret.size() != want)
      return error(std::string(name) + " traffic secret is " + std::to_string(d->traffic_secret.size()) +
                   " bytes, want " + std::to_string(want) + " for " + to_string(s.version) + " " + ci.name);
  }
  if (s.unread_plaintext.size() > State::kMaxBuffered || s.pending_ciphertext.size() > State::kMaxBuffered)
    return error("buffered bytes exceed the limit");
  return {};
}

std::vector<uint8_t> encode(const State& s) {
  ByteWriter w;
  w.reserve(128 + s.unread_plaintext.size() + s.pending_ciphertext.size());
  w.raw(kMagic, sizeof kMagic);
  w.u16(State::kFormatVersion);
  w.u16(uint16_t(s.version));
  w.u16(uint16_t(s.cipher));
  w.u8(s.rx_closed ? 1 : 0);
  for (const Direction* d : {&s.tx, &s.rx}) {
    w.raw(d->key());
    w.raw(d->salt());
    w.raw(d->iv());
    w.raw(d->rec_seq());
    w.blob(d->traffic_secret);
  }
  w.blob(s.unread_plaintext);
  w.blob(s.pending_ciphertext);
  return w.take();
}

namespace {

Status read_into(ByteReader& r, std::span<uint8_t> out, const char* what) {
  XO_ASSIGN_OR_RETURN(auto b, r.raw(out.size(), what));
  std::copy(b.begin(), b.end(), out.begin());
  return {};
}

Result<State> decode_fields(ByteReader& r) {
  XO_ASSIGN_OR_RETURN(auto magic, r.raw(4, "magic"));
  if (std::memcmp(magic.data(), kMagic, 4) != 0) return error("bad magic (not an XO TLS state)");
  XO_ASSIGN_OR_RETURN(uint16_t format, r.u16("format version"));
  if (format != State::kFormatVersion)
    return error("format version " + std::to_string(format) + " not supported (this build reads " +
                 std::to_string(State::kFormatVersion) + ")");
  XO_ASSIGN_OR_RETURN(uint16_t version, r.u16("tls version"));
  XO_ASSIGN_OR_RETURN(uint16_t cipher, r.u16("cipher"));
  XO_ASSIGN_OR_RETURN(uint8_t flags, r.u8("flags"));
  State s;
  if (version != uint16_t(Version::tls12) && version != uint16_t(Version::tls13))
    return error("unsupported TLS version " + std::to_string(version) + " (want 771 TLS1.2 or 772 TLS1.3)");
  s.version = Version(version);
  XO_ASSIGN_OR_RETURN(s.cipher, cipher_from_int(cipher));
  if (flags > 1) return error("unknown flags " + std::to_string(flags));
  s.rx_closed = flags & 1;
  const auto& ci = cipher_info(s.cipher);
  for (Direction* d : {&s.tx, &s.rx}) {
    d->crypto.base.version = version;
    d->crypto.base.cipher_type = cipher;
    XO_TRY(read_into(r, d->key(), "key"));
    XO_TRY(read_into(r, d->salt(), "salt"));
    XO_TRY(read_into(r, d->iv(), "iv"));
    XO_TRY(read_into(r, d->rec_seq(), "rec_seq"));
    XO_ASSIGN_OR_RETURN(auto secret, r.blob(ci.secret_len, "traffic secret"));
    d->traffic_secret.assign(secret.begin(), secret.end());
  }
  XO_ASSIGN_OR_RETURN(auto plain, r.blob(State::kMaxBuffered, "unread plaintext"));
  s.unread_plaintext.assign(plain.begin(), plain.end());
  XO_ASSIGN_OR_RETURN(auto pending, r.blob(State::kMaxBuffered, "pending ciphertext"));
  s.pending_ciphertext.assign(pending.begin(), pending.end());
  if (!r.empty()) return error(std::to_string(r.remaining()) + " trailing bytes");
  XO_TRY(validate(s));
  return s;
}

}  // namespace

Result<State> decode(std::span<const uint8_t> bytes) {
  ByteReader r(bytes);
  auto s = decode_fields(r);
  if (!s) return annotate(s.take_error(), "tls state");
  return s;
}

}  // namespace xo::tls
