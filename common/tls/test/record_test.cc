// The userspace record layer against itself over a socket pair: both TLS
// versions and all three ciphers, KeyUpdate both ways, close_notify, carried
// plaintext and ciphertext (including a partial record), a bad record MAC.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <thread>

#include "common/base/fd.h"
#include "common/tls/crypto.h"
#include "common/tls/record.h"
#include "common/tls/record_layer.h"
#include "common/tls/test/state_pair.h"

namespace xo::tls {
namespace {

using Pair = test::StatePair;
using test::pattern;

// The explicit nonce starts near its wrap (TLS 1.2 GCM).
Pair make_pair(Version v, Cipher c) { return test::make_state_pair(v, c, 5, 9, 0xfffffffffffffff0ull); }

// 7000-byte reads: each ends inside a record.
std::vector<uint8_t> read_exactly(RecordLayer& l, size_t n) { return test::read_exactly(l, n, 7000); }

class RecordLayerTest : public ::testing::TestWithParam<std::tuple<Version, Cipher>> {};

TEST_P(RecordLayerTest, DataKeyUpdateAndCloseNotify) {
  auto [v, c] = GetParam();
  Pair p = make_pair(v, c);
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  UniqueFd s0(sv[0]), s1(sv[1]);
  auto server = make_userspace_layer(s0.get(), p.server);
  auto client = make_userspace_layer(s1.get(), p.client);
  ASSERT_TRUE(server.ok()) << server.error().to_string();
  ASSERT_TRUE(client.ok());

  auto big = pattern(300 * 1024 + 17, 1);
  std::thread w([&] { EXPECT_TRUE((*server)->write_all(big).ok()); });
  EXPECT_EQ(read_exactly(**client, big.size()), big);
  w.join();

  auto up = pattern(5000, 2);
  ASSERT_TRUE((*client)->write_all(up).ok());
  EXPECT_EQ(read_exactly(**server, up.size()), up);

  if (v == Version::tls13) {
    // Client asks for an update; the server follows and answers with its own.
    ASSERT_TRUE((*client)->key_update(true).ok());
    ASSERT_TRUE((*client)->write_all(up).ok());
    EXPECT_EQ(read_exactly(**server, up.size()), up);
    std::thread w2([&] {
      EXPECT_TRUE((*server)->write_all(big).ok());
      EXPECT_TRUE((*server)->write_all(up).ok());
    });
    EXPECT_EQ(read_exactly(**client, big.size()), big);
    EXPECT_EQ(read_exactly(**client, up.size()), up);
    w2.join();
    auto sst = (*server)->freeze();
    ASSERT_TRUE(sst.ok());
    EXPECT_EQ(sst->tx.traffic_secret, *next_traffic_secret(c, p.server.tx.traffic_secret));
    EXPECT_EQ(sst->rx.traffic_secret, *next_traffic_secret(c, p.server.rx.traffic_secret));
    server = make_userspace_layer(s0.get(), *sst);
    ASSERT_TRUE(server.ok());
  } else {
    EXPECT_FALSE((*server)->key_update(false).ok());
  }

  ASSERT_TRUE((*server)->close_notify().ok());
  uint8_t b[16];
  auto r = (*client)->read_some(b);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 0u);
}

INSTANTIATE_TEST_SUITE_P(All, RecordLayerTest,
                         ::testing::Combine(::testing::Values(Version::tls12, Version::tls13),
                                            ::testing::Values(Cipher::aes128gcm, Cipher::aes256gcm,
                                                              Cipher::chacha20poly1305)),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param) == Version::tls13 ? "tls13_" : "tls12_") +
                                  cipher_info(std::get<1>(info.param)).name;
                         });

TEST(RecordLayer, CarriedPlaintextAndPartialRecordSurviveAFreeze) {
  for (Version v : {Version::tls12, Version::tls13}) {
    Pair p = make_pair(v, Cipher::aes128gcm);
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    UniqueFd s0(sv[0]), s1(sv[1]);
    // The client's record layer, sans I/O: two records, the second split.
    auto sealer = RecordProtection::create(v, p.client.tx, true);
    ASSERT_TRUE(sealer.ok());
    std::vector<uint8_t> wire;
    ASSERT_TRUE(sealer->seal(kApplicationData, pattern(100, 3), wire).ok());
    ASSERT_TRUE(sealer->seal(kApplicationData, pattern(200, 4), wire, 0).ok());
    size_t split = wire.size() - 50;

    State s = p.server;
    s.unread_plaintext = {'h', 'i'};
    s.pending_ciphertext.assign(wire.begin(), wire.begin() + ptrdiff_t(split));
    auto moved = decode(encode(s));
    ASSERT_TRUE(moved.ok());
    auto server = make_userspace_layer(s0.get(), *moved);
    ASSERT_TRUE(server.ok());
    ASSERT_EQ(::send(s1.get(), wire.data() + split, wire.size() - split, 0), ssize_t(wire.size() - split));
    std::vector<uint8_t> want = {'h', 'i'};
    auto a = pattern(100, 3), b = pattern(200, 4);
    want.insert(want.end(), a.begin(), a.end());
    want.insert(want.end(), b.begin(), b.end());
    EXPECT_EQ(read_exactly(**server, want.size()), want);
    auto st = (*server)->freeze();
    ASSERT_TRUE(st.ok());
    EXPECT_EQ(st->rx.seq(), p.server.rx.seq() + 2);
    EXPECT_TRUE(st->pending_ciphertext.empty());
  }
}

TEST(RecordLayer, WrongSequenceNumberIsABadRecordMac) {
  Pair p = make_pair(Version::tls13, Cipher::aes256gcm);
  p.server.tx.set_seq(p.server.tx.seq() + 1);  // deliberately wrong
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  UniqueFd s0(sv[0]), s1(sv[1]);
  auto server = make_userspace_layer(s0.get(), p.server);
  auto client = make_userspace_layer(s1.get(), p.client);
  ASSERT_TRUE(server.ok() && client.ok());
  ASSERT_TRUE((*server)->write_all(pattern(10, 0)).ok());
  uint8_t b[16];
  auto r = (*client)->read_some(b);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, EBADMSG);
  EXPECT_NE(r.error().message.find("bad record MAC"), std::string::npos) << r.error().message;
}

TEST(RecordLayer, KernelBackendIsDetectedAtRunTime) {
  if (kernel_tls_available()) GTEST_SKIP() << "this kernel has kTLS; the VM test covers the kernel backend";
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  UniqueFd s0(sv[0]), s1(sv[1]);
  auto k = make_kernel_layer(s0.get(), make_pair(Version::tls13, Cipher::aes128gcm).server);
  ASSERT_FALSE(k.ok());
  auto best = make_best_layer(s0.get(), make_pair(Version::tls13, Cipher::aes128gcm).server);
  ASSERT_TRUE(best.ok());
  EXPECT_STREQ((*best)->backend(), "userspace");
}

}  // namespace
}  // namespace xo::tls

namespace xo::tls {
namespace {

// One-shot EVP AEAD over in || tail: the reference Aead::seal must match
// byte for byte however it splits its updates.
std::vector<uint8_t> one_shot_seal(Cipher c, std::span<const uint8_t> key, std::span<const uint8_t, 12> nonce,
                                   std::span<const uint8_t> aad, std::vector<uint8_t> input) {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  std::vector<uint8_t> out(input.size() + Aead::kTagLen);
  int n = 0, f = 0, a = 0;
  EXPECT_EQ(EVP_EncryptInit_ex2(ctx, fetched_cipher(c), key.data(), nonce.data(), nullptr), 1);
  EXPECT_EQ(EVP_EncryptUpdate(ctx, nullptr, &a, aad.data(), int(aad.size())), 1);
  EXPECT_EQ(EVP_EncryptUpdate(ctx, out.data(), &n, input.data(), int(input.size())), 1);
  EXPECT_EQ(EVP_EncryptFinal_ex(ctx, out.data() + n, &f), 1);
  EXPECT_EQ(size_t(n + f), input.size());
  EXPECT_EQ(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, Aead::kTagLen, out.data() + input.size()), 1);
  EVP_CIPHER_CTX_free(ctx);
  return out;
}

class AeadSplitTest : public ::testing::TestWithParam<Cipher> {};

// ChaCha20-Poly1305 seals in a 128-byte-multiple bulk plus a stack-copied rest
// (crypto.cc); every length around those edges, in place and not, with and
// without a tail, must give the one-shot ciphertext and open back.
TEST_P(AeadSplitTest, EveryLengthMatchesOneShotAndOpensBack) {
  Cipher c = GetParam();
  std::vector<uint8_t> key(cipher_info(c).key_len, 0x33);
  uint8_t nonce_buf[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  std::span<const uint8_t, 12> nonce(nonce_buf, 12);
  const uint8_t aad[5] = {23, 3, 3, 0x40, 0x11};
  auto sealer = Aead::create(c, key, true);
  auto opener = Aead::create(c, key, false);
  ASSERT_TRUE(sealer.ok() && opener.ok());
  const size_t lengths[] = {0, 1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 255, 256, 257, 1000,
                            4095, 16255, 16256, 16257, 16320, 16383, 16384};
  const size_t tails[] = {0, 1, 2, 129, 300};  // 300: rest + tail exceed the stack buffer
  for (size_t len : lengths) {
    for (size_t tail_len : tails) {
      SCOPED_TRACE("len " + std::to_string(len) + " tail " + std::to_string(tail_len));
      auto in = pattern(len, 7);
      auto tail = pattern(tail_len, 99);
      std::vector<uint8_t> joined = in;
      joined.insert(joined.end(), tail.begin(), tail.end());
      auto want = one_shot_seal(c, key, nonce, aad, joined);

      std::vector<uint8_t> out(want.size(), 0xee);
      ASSERT_TRUE(sealer->seal(nonce, aad, in, out.data(), tail).ok());
      EXPECT_EQ(out, want) << "out of place";

      std::vector<uint8_t> inplace(want.size(), 0xee);
      std::copy(in.begin(), in.end(), inplace.begin());
      ASSERT_TRUE(sealer->seal(nonce, aad, std::span(inplace.data(), len), inplace.data(), tail).ok());
      EXPECT_EQ(inplace, want) << "in place";

      std::vector<uint8_t> back(want.size(), 0xee);
      ASSERT_TRUE(opener->open(nonce, aad, want, back.data()).ok());
      back.resize(joined.size());
      EXPECT_EQ(back, joined);

      auto bad = want;
      bad[bad.size() / 2] ^= 1;
      auto r = opener->open(nonce, aad, bad, back.data());
      ASSERT_FALSE(r.ok());
      EXPECT_EQ(r.error().code, EBADMSG);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(All, AeadSplitTest,
                         ::testing::Values(Cipher::aes128gcm, Cipher::aes256gcm, Cipher::chacha20poly1305),
                         [](const ::testing::TestParamInfo<Cipher>& i) { return std::string(cipher_info(i.param).name); });

}  // namespace
}  // namespace xo::tls
