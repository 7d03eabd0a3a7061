// RFC 8448 ("Example Handshake Traces for TLS 1.3"), section 3 "Simple 1-RTT
// Handshake", TLS_AES_128_GCM_SHA256: from the application traffic secrets the
// key schedule must give the RFC's keys and IVs, and the record layer must
// produce the RFC's application_data and close_notify records byte for byte.
#include <gtest/gtest.h>

#include <string>

#include "common/tls/crypto.h"
#include "common/tls/record.h"

namespace xo::tls {
namespace {

std::vector<uint8_t> hex(const std::string& s) {
  std::vector<uint8_t> out;
  std::string digits;
  for (char c : s)
    if (std::isxdigit(static_cast<unsigned char>(c))) digits += c;
  for (size_t i = 0; i + 1 < digits.size(); i += 2) out.push_back(uint8_t(std::stoi(digits.substr(i, 2), nullptr, 16)));
  return out;
}

// RFC 8448 section 3: "{client} derive secret "tls13 c ap traffic"" / "{server} derive secret "tls13 s ap traffic"".
const auto kClientAppSecret = hex("9e 40 64 6c e7 9a 7f 9d c0 5a f8 88 9b ce 65 52 87 5a fa 0b 06 df 00 87 f7 92 eb b7 c1 75 04 a5");
const auto kServerAppSecret = hex("a1 1a f9 f0 55 31 f8 56 ad 47 11 6b 45 a9 50 32 82 04 b4 f4 4b fb 6b 3a 4b 4f 1f 3f cb 63 16 43");
// "derive write traffic keys for application data".
const auto kServerAppKey = hex("9f 02 28 3b 6c 9c 07 ef c2 6b b9 f2 ac 92 e3 56");
const auto kServerAppIv = hex("cf 78 2b 88 dd 83 54 9a ad f1 e9 84");
const auto kClientAppKey = hex("17 42 2d da 59 6e d5 d9 ac d8 90 e3 c6 3f 50 51");
const auto kClientAppIv = hex("5b 78 92 3d ee 08 57 90 33 e5 23 d9");
// "{client} send application_data record" (the client's first record under its
// application key: sequence 0) and "{server} send application_data record"
// (after its NewSessionTicket: sequence 1). Payload 00 01 .. 31 (50 octets).
const auto kClientAppRecord = hex(
    "17 03 03 00 43 a2 3f 70 54 b6 2c 94 d0 af fa fe 82 28 ba 55 cb ef ac ea 42 f9 14 aa 66 bc ab 3f 2b 98 19 a8 "
    "a5 b4 6b 39 5b d5 4a 9a 20 44 1e 2b 62 97 4e 1f 5a 62 92 a2 97 70 14 bd 1e 3d ea e6 3a ee bb 21 69 49 15 e4");
const auto kServerAppRecord = hex(
    "17 03 03 00 43 2e 93 7e 11 ef 4a c7 40 e5 38 ad 36 00 5f c4 a4 69 32 fc 32 25 d0 5f 82 aa 1b 36 e3 0e fa f9 "
    "7d 90 e6 df fc 60 2d cb 50 1a 59 a8 fc c4 9c 4b f2 e5 f0 a2 1c 00 47 c2 ab f3 32 54 0d d0 32 e1 67 c2 95 5d");
// "{client} send alert record" (sequence 1) and "{server} send alert record" (sequence 2): close_notify.
const auto kClientAlertRecord = hex("17 03 03 00 13 c9 87 27 60 65 56 66 b7 4d 7f f1 15 3e fd 6d b6 d0 b0 e3");
const auto kServerAlertRecord = hex("17 03 03 00 13 b5 8f d6 71 66 eb f5 99 d2 47 20 cf be 7e fa 7a 88 64 a9");

std::vector<uint8_t> payload() {
  std::vector<uint8_t> p(50);
  for (size_t i = 0; i < p.size(); ++i) p[i] = uint8_t(i);
  return p;
}

Direction app_direction(const std::vector<uint8_t>& secret, uint64_t seq) {
  Direction d;
  EXPECT_TRUE(set_tls13_direction(d, Cipher::aes128gcm, secret).ok());
  d.set_seq(seq);
  return d;
}

TEST(Rfc8448, ApplicationTrafficKeysAndIvs) {
  auto s = traffic_keys(Cipher::aes128gcm, kServerAppSecret);
  ASSERT_TRUE(s.ok()) << s.error().to_string();
  EXPECT_EQ(s->key, kServerAppKey);
  EXPECT_EQ(s->iv, kServerAppIv);
  auto c = traffic_keys(Cipher::aes128gcm, kClientAppSecret);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->key, kClientAppKey);
  EXPECT_EQ(c->iv, kClientAppIv);
  // In kTLS form: salt = IV[0..4), iv = IV[4..12).
  Direction d = app_direction(kServerAppSecret, 0);
  EXPECT_EQ(std::vector<uint8_t>(d.key().begin(), d.key().end()), kServerAppKey);
  std::vector<uint8_t> iv12(d.salt().begin(), d.salt().end());
  iv12.insert(iv12.end(), d.iv().begin(), d.iv().end());
  EXPECT_EQ(iv12, kServerAppIv);
}

void expect_seal_and_open(const std::vector<uint8_t>& secret, uint64_t seq, uint8_t type,
                          const std::vector<uint8_t>& plaintext, const std::vector<uint8_t>& record) {
  auto sealer = RecordProtection::create(Version::tls13, app_direction(secret, seq), true);
  ASSERT_TRUE(sealer.ok()) << sealer.error().to_string();
  std::vector<uint8_t> out;
  ASSERT_TRUE(sealer->seal(type, plaintext, out).ok());
  EXPECT_EQ(out, record);
  EXPECT_EQ(sealer->direction().seq(), seq + 1);

  auto opener = RecordProtection::create(Version::tls13, app_direction(secret, seq), false);
  ASSERT_TRUE(opener.ok());
  std::vector<uint8_t> plain;
  auto t = opener->open(record, plain);
  ASSERT_TRUE(t.ok()) << t.error().to_string();
  EXPECT_EQ(*t, type);
  EXPECT_EQ(plain, plaintext);

  // One sequence number off: the tag must not verify (this is what a wrong
  // rec_seq after a move looks like to the peer).
  auto wrong = RecordProtection::create(Version::tls13, app_direction(secret, seq + 1), false);
  ASSERT_TRUE(wrong.ok());
  plain.clear();
  auto bad = wrong->open(record, plain);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, EBADMSG);
}

TEST(Rfc8448, ClientApplicationDataRecord) {
  expect_seal_and_open(kClientAppSecret, 0, kApplicationData, payload(), kClientAppRecord);
}
TEST(Rfc8448, ServerApplicationDataRecord) {
  expect_seal_and_open(kServerAppSecret, 1, kApplicationData, payload(), kServerAppRecord);
}
TEST(Rfc8448, CloseNotifyAlertRecords) {
  expect_seal_and_open(kClientAppSecret, 1, kAlert, {1, 0}, kClientAlertRecord);
  expect_seal_and_open(kServerAppSecret, 2, kAlert, {1, 0}, kServerAlertRecord);
}

TEST(Rfc8448, KeyUpdateDerivesTheNextSecretAndRestartsTheSequence) {
  auto p = RecordProtection::create(Version::tls13, app_direction(kServerAppSecret, 7), true);
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE(p->update_key().ok());
  auto want = hkdf_expand_label("SHA256", kServerAppSecret, "traffic upd", {}, 32);
  ASSERT_TRUE(want.ok());
  EXPECT_EQ(p->direction().traffic_secret, *want);
  EXPECT_EQ(p->direction().seq(), 0u);
  auto keys = traffic_keys(Cipher::aes128gcm, *want);
  ASSERT_TRUE(keys.ok());
  EXPECT_EQ(std::vector<uint8_t>(p->direction().key().begin(), p->direction().key().end()), keys->key);
  EXPECT_NE(keys->key, kServerAppKey);
}

}  // namespace
}  // namespace xo::tls
