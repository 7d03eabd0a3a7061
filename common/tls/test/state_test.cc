// The state format: round trip, kTLS layout, and rejection of bad input.
#include <gtest/gtest.h>

#include <cstring>

#include "common/tls/state.h"

namespace xo::tls {
namespace {

State sample(Version v, Cipher c) {
  State s;
  s.version = v;
  s.cipher = c;
  const auto& ci = cipher_info(c);
  std::vector<uint8_t> key(ci.key_len), iv(v == Version::tls13 || c == Cipher::chacha20poly1305 ? 12 : 4);
  for (size_t i = 0; i < key.size(); ++i) key[i] = uint8_t(i + 1);
  for (size_t i = 0; i < iv.size(); ++i) iv[i] = uint8_t(0xa0 + i);
  s.tx.set_keys(v, c, key, iv);
  key[0] ^= 0xff;
  s.rx.set_keys(v, c, key, iv);
  s.tx.set_seq(0x0102030405060708ull);
  s.rx.set_seq(3);
  if (v == Version::tls13) {
    s.tx.traffic_secret.assign(ci.secret_len, 0x11);
    s.rx.traffic_secret.assign(ci.secret_len, 0x22);
  } else if (c != Cipher::chacha20poly1305) {
    s.tx.set_explicit_nonce(0xdeadbeefcafef00dull);
  }
  s.unread_plaintext = {'G', 'E', 'T'};
  s.pending_ciphertext = {0x17, 0x03, 0x03, 0x00};
  return s;
}

TEST(TlsState, RoundTripsEveryVersionAndCipher) {
  for (Version v : {Version::tls12, Version::tls13})
    for (Cipher c : {Cipher::aes128gcm, Cipher::aes256gcm, Cipher::chacha20poly1305}) {
      State s = sample(v, c);
      auto bytes = encode(s);
      auto d = decode(bytes);
      ASSERT_TRUE(d.ok()) << d.error().to_string();
      EXPECT_EQ(d->version, v);
      EXPECT_EQ(d->cipher, c);
      EXPECT_EQ(std::memcmp(&d->tx.crypto, &s.tx.crypto, s.tx.crypto_len()), 0);
      EXPECT_EQ(std::memcmp(&d->rx.crypto, &s.rx.crypto, s.rx.crypto_len()), 0);
      EXPECT_EQ(d->tx.traffic_secret, s.tx.traffic_secret);
      EXPECT_EQ(d->unread_plaintext, s.unread_plaintext);
      EXPECT_EQ(d->pending_ciphertext, s.pending_ciphertext);
      EXPECT_EQ(encode(*d), bytes);
    }
}

TEST(TlsState, FieldsSitWhereTheKernelReadsThem) {
  State s = sample(Version::tls13, Cipher::aes128gcm);
  const auto& k = s.tx.crypto.aes128gcm;
  EXPECT_EQ(k.info.version, TLS_1_3_VERSION);
  EXPECT_EQ(k.info.cipher_type, TLS_CIPHER_AES_GCM_128);
  EXPECT_EQ(k.key[0], 1);
  EXPECT_EQ(k.salt[0], 0xa0);  // first 4 IV bytes are the salt
  EXPECT_EQ(k.iv[0], 0xa4);    // the remaining 8 the iv
  EXPECT_EQ(k.rec_seq[0], 0x01);
  EXPECT_EQ(k.rec_seq[7], 0x08);
  EXPECT_EQ(s.tx.crypto_len(), sizeof(tls12_crypto_info_aes_gcm_128));

  State c = sample(Version::tls13, Cipher::chacha20poly1305);
  EXPECT_EQ(c.tx.crypto.chacha20poly1305.iv[0], 0xa0);  // ChaCha: 12-byte iv, no salt
  EXPECT_EQ(c.tx.crypto.chacha20poly1305.iv[11], 0xab);
  EXPECT_EQ(c.tx.crypto.chacha20poly1305.key[31], 32);

  State g = sample(Version::tls12, Cipher::aes256gcm);
  EXPECT_EQ(g.tx.crypto.aes256gcm.iv[0], 0xde);  // TLS 1.2 GCM: iv = next explicit nonce
  EXPECT_EQ(g.tx.explicit_nonce(), 0xdeadbeefcafef00dull);
}

TEST(TlsState, RejectsEveryTruncation) {
  auto bytes = encode(sample(Version::tls13, Cipher::aes256gcm));
  for (size_t n = 0; n < bytes.size(); ++n) {
    auto d = decode(std::span(bytes).first(n));
    ASSERT_FALSE(d.ok()) << "accepted a " << n << "-byte prefix";
  }
  auto d = decode(std::span(bytes).first(10));
  EXPECT_NE(d.error().message.find("truncated"), std::string::npos) << d.error().message;
}

TEST(TlsState, RejectsBadHeaderAndTrailingBytes) {
  auto good = encode(sample(Version::tls13, Cipher::aes128gcm));
  auto bad = good;
  bad[0] = 'Y';
  EXPECT_NE(decode(bad).error().message.find("magic"), std::string::npos);
  bad = good;
  bad[5] = 9;  // format version
  EXPECT_NE(decode(bad).error().message.find("format version 9"), std::string::npos);
  bad = good;
  bad[7] = 0x05;  // TLS version 0x0305
  EXPECT_NE(decode(bad).error().message.find("unsupported TLS version"), std::string::npos);
  bad = good;
  bad[9] = 53;  // AES-CCM: no XO record layer for it
  EXPECT_NE(decode(bad).error().message.find("unsupported cipher type 53"), std::string::npos);
  bad = good;
  bad[10] = 7;  // flags
  EXPECT_NE(decode(bad).error().message.find("flags"), std::string::npos);
  bad = good;
  bad.push_back(0);
  EXPECT_NE(decode(bad).error().message.find("trailing"), std::string::npos);
}

TEST(TlsState, RejectsWrongSecretLengthAndHugeLengths) {
  State s = sample(Version::tls13, Cipher::aes128gcm);
  s.tx.traffic_secret.resize(48);  // SHA-384 size on a SHA-256 suite
  auto d = decode(encode(s));
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.error().message.find("traffic secret"), std::string::npos) << d.error().message;

  State t = sample(Version::tls12, Cipher::aes128gcm);
  t.tx.traffic_secret.assign(32, 1);  // TLS 1.2 has no traffic secret
  EXPECT_FALSE(decode(encode(t)).ok());

  auto bytes = encode(sample(Version::tls13, Cipher::aes128gcm));
  // The unread-plaintext length sits 4 + 3 + 4 bytes before the end; claim 4 GiB.
  size_t at = bytes.size() - 4 - 4 - 3 - 4;
  bytes[at] = 0xff;
  d = decode(bytes);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.error().message.find("exceeds the limit"), std::string::npos) << d.error().message;
}

}  // namespace
}  // namespace xo::tls
