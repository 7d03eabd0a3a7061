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

namespace xo::tls {
namespace {

struct Pair {
  State server, client;  // client = server with tx/rx swapped
};

Pair make_pair(Version v, Cipher c) {
  const auto& ci = cipher_info(c);
  Pair p;
  p.server.version = v;
  p.server.cipher = c;
  std::vector<uint8_t> a(ci.secret_len, 0x5a), b(ci.secret_len, 0xa5);
  if (v == Version::tls13) {
    EXPECT_TRUE(set_tls13_direction(p.server.tx, c, a).ok());
    EXPECT_TRUE(set_tls13_direction(p.server.rx, c, b).ok());
  } else {
    std::vector<uint8_t> k1(ci.key_len, 1), k2(ci.key_len, 2);
    std::vector<uint8_t> iv1(ci.salt_len ? 4 : 12, 3), iv2(ci.salt_len ? 4 : 12, 4);
    p.server.tx.set_keys(v, c, k1, iv1);
    p.server.rx.set_keys(v, c, k2, iv2);
    if (c != Cipher::chacha20poly1305) p.server.tx.set_explicit_nonce(0xfffffffffffffff0ull);  // wraps below
  }
  p.server.tx.set_seq(5);
  p.server.rx.set_seq(9);
  p.client = p.server;
  std::swap(p.client.tx, p.client.rx);
  return p;
}

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = uint8_t(i * 31 + seed);
  return v;
}

std::vector<uint8_t> read_exactly(RecordLayer& l, size_t n) {
  std::vector<uint8_t> got;
  uint8_t buf[7000];
  while (got.size() < n) {
    auto r = l.read_some(std::span(buf, std::min(sizeof buf, n - got.size())));
    EXPECT_TRUE(r.ok()) << r.error().to_string();
    if (!r.ok() || *r == 0) break;
    got.insert(got.end(), buf, buf + *r);
  }
  return got;
}

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
