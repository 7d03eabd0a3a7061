// Smoke test of the kernel VM (qa/vm): real kTLS in Debian's kernel.
//
// A TCP loopback connection; the sender switches to kernel TLS 1.3 (AES-GCM-128) with
// a record sequence that does not start at 0 (as after a handoff). The peer reads the
// raw records and decrypts them with OpenSSL (the plaintext must match, one record per
// send up to 16 KiB each), then getsockopt(TLS_TX) must report rec_seq advanced by the
// number of records seen on the wire. A second case sets TLS_RX on the peer and
// compares the kernel-decrypted plaintext and both rec_seq counters; two more do the
// same kernel round trip with AES-GCM-256 and ChaCha20-Poly1305.
//
// Runs inside the VM (vm.tls.ktls_smoke); on a kernel without kTLS it skips.
#include <arpa/inet.h>
#include <linux/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <openssl/evp.h>

#include <gtest/gtest.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "common/base/fd.h"

namespace {

using Bytes = std::vector<uint8_t>;
using CryptoInfo = tls12_crypto_info_aes_gcm_128;

constexpr uint64_t kFirstSeq = 7;  // not 0: a continued session
constexpr size_t kMaxPlaintext = 16384;

struct TcpPair {
  xo::UniqueFd client;
  xo::UniqueFd server;
};

TcpPair connect_loopback() {
  TcpPair pair;
  xo::UniqueFd listener(socket(AF_INET, SOCK_STREAM, 0));
  EXPECT_TRUE(listener.valid()) << strerror(errno);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  EXPECT_EQ(bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), len), 0) << strerror(errno);
  EXPECT_EQ(listen(listener.get(), 1), 0) << strerror(errno);
  EXPECT_EQ(getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len), 0);
  pair.client.reset(socket(AF_INET, SOCK_STREAM, 0));
  EXPECT_EQ(connect(pair.client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0)
      << strerror(errno);
  pair.server.reset(accept(listener.get(), nullptr, nullptr));
  EXPECT_TRUE(pair.server.valid()) << strerror(errno);
  return pair;
}

CryptoInfo make_crypto_info() {
  CryptoInfo ci{};
  ci.info.version = TLS_1_3_VERSION;
  ci.info.cipher_type = TLS_CIPHER_AES_GCM_128;
  for (size_t i = 0; i < sizeof ci.key; ++i) ci.key[i] = static_cast<uint8_t>(0x10 + i);
  for (size_t i = 0; i < sizeof ci.salt; ++i) ci.salt[i] = static_cast<uint8_t>(0xa0 + i);
  for (size_t i = 0; i < sizeof ci.iv; ++i) ci.iv[i] = static_cast<uint8_t>(0xb0 + i);
  for (size_t i = 0; i < sizeof ci.rec_seq; ++i)
    ci.rec_seq[i] = static_cast<uint8_t>(kFirstSeq >> (8 * (sizeof ci.rec_seq - 1 - i)));
  return ci;
}

uint64_t rec_seq_of(const CryptoInfo& ci) {
  uint64_t seq = 0;
  for (uint8_t b : ci.rec_seq) seq = (seq << 8) | b;
  return seq;
}

// Attaches the "tls" ULP; skips the test when the kernel has no kTLS.
bool attach_tls_ulp(int fd) {
  if (setsockopt(fd, IPPROTO_TCP, TCP_ULP, "tls", sizeof "tls") == 0) return true;
  int err = errno;
  if (err == ENOENT && std::getenv("XO_VM") == nullptr) return false;
  ADD_FAILURE() << "setsockopt(TCP_ULP, tls): " << strerror(err);
  return false;
}

Bytes pattern(size_t n, uint8_t seed) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(seed + i * 31 + (i >> 8));
  return b;
}

void send_all(int fd, const Bytes& data) {
  ssize_t n = send(fd, data.data(), data.size(), 0);
  ASSERT_EQ(n, static_cast<ssize_t>(data.size())) << strerror(errno);
}

Bytes recv_exact(int fd, size_t n) {
  Bytes out(n);
  size_t got = 0;
  while (got < n) {
    ssize_t r = recv(fd, out.data() + got, n - got, 0);
    if (r <= 0) {
      ADD_FAILURE() << "recv after " << got << " of " << n << " bytes: " << (r == 0 ? "EOF" : strerror(errno));
      out.resize(got);
      return out;
    }
    got += static_cast<size_t>(r);
  }
  return out;
}

// One TLS 1.3 record opened in user space: nonce = (salt || iv) XOR seq, AAD = header.
// Returns the inner plaintext without its content type (checked to be application_data).
bool open_record(const CryptoInfo& ci, uint64_t seq, const Bytes& header, const Bytes& body,
                 Bytes* plaintext) {
  constexpr size_t kTag = 16;
  if (body.size() < kTag + 1) return false;
  std::array<uint8_t, 12> nonce{};
  std::memcpy(nonce.data(), ci.salt, 4);
  std::memcpy(nonce.data() + 4, ci.iv, 8);
  for (int i = 0; i < 8; ++i) nonce[11 - i] ^= static_cast<uint8_t>(seq >> (8 * i));

  std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> ctx(EVP_CIPHER_CTX_new(),
                                                                      EVP_CIPHER_CTX_free);
  int len = 0;
  Bytes inner(body.size() - kTag);
  Bytes tag(body.end() - kTag, body.end());
  bool ok = EVP_DecryptInit_ex(ctx.get(), EVP_aes_128_gcm(), nullptr, nullptr, nullptr) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, 12, nullptr) == 1 &&
            EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, ci.key, nonce.data()) == 1 &&
            EVP_DecryptUpdate(ctx.get(), nullptr, &len, header.data(), static_cast<int>(header.size())) == 1 &&
            EVP_DecryptUpdate(ctx.get(), inner.data(), &len, body.data(), static_cast<int>(inner.size())) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTag, tag.data()) == 1 &&
            EVP_DecryptFinal_ex(ctx.get(), inner.data() + len, &len) == 1;
  if (!ok) return false;
  // TLSInnerPlaintext: content || content type || zero padding.
  while (!inner.empty() && inner.back() == 0) inner.pop_back();
  if (inner.empty() || inner.back() != 0x17) return false;
  inner.pop_back();
  *plaintext = std::move(inner);
  return true;
}

TEST(KtlsSmoke, TxRecordsDecryptInUserSpaceAndRecSeqAdvances) {
  TcpPair pair = connect_loopback();
  if (!attach_tls_ulp(pair.client.get())) GTEST_SKIP() << "kernel has no kTLS (TCP_ULP tls: ENOENT); run it in qa/vm";
  CryptoInfo tx = make_crypto_info();
  ASSERT_EQ(setsockopt(pair.client.get(), SOL_TLS, TLS_TX, &tx, sizeof tx), 0) << strerror(errno);

  // 1 record, then 40000 bytes = 16384 + 16384 + 7232: 4 records in all.
  Bytes small = pattern(1000, 1), large = pattern(40000, 2);
  send_all(pair.client.get(), small);
  send_all(pair.client.get(), large);
  Bytes sent = small;
  sent.insert(sent.end(), large.begin(), large.end());

  Bytes received;
  uint64_t seq = kFirstSeq;
  size_t records = 0;
  while (received.size() < sent.size()) {
    Bytes header = recv_exact(pair.server.get(), 5);
    ASSERT_EQ(header.size(), 5u);
    ASSERT_EQ(header[0], 0x17) << "outer content type must be application_data";
    ASSERT_EQ(header[1], 0x03);
    ASSERT_EQ(header[2], 0x03);
    size_t body_len = (size_t{header[3]} << 8) | header[4];
    Bytes body = recv_exact(pair.server.get(), body_len);
    ASSERT_EQ(body.size(), body_len);
    Bytes plain;
    ASSERT_TRUE(open_record(tx, seq, header, body, &plain)) << "record " << records << " (seq " << seq
                                                             << ") does not decrypt";
    EXPECT_LE(plain.size(), kMaxPlaintext);
    received.insert(received.end(), plain.begin(), plain.end());
    ++seq;
    ++records;
  }
  EXPECT_EQ(received, sent);
  EXPECT_EQ(records, 4u);

  CryptoInfo now{};
  socklen_t len = sizeof now;
  ASSERT_EQ(getsockopt(pair.client.get(), SOL_TLS, TLS_TX, &now, &len), 0) << strerror(errno);
  EXPECT_EQ(rec_seq_of(now), kFirstSeq + records);
  EXPECT_EQ(std::memcmp(now.key, tx.key, sizeof tx.key), 0);
}

TEST(KtlsSmoke, RxDecryptsInKernelAndBothRecSeqsAgree) {
  TcpPair pair = connect_loopback();
  if (!attach_tls_ulp(pair.client.get())) GTEST_SKIP() << "kernel has no kTLS (TCP_ULP tls: ENOENT); run it in qa/vm";
  ASSERT_TRUE(attach_tls_ulp(pair.server.get()));
  CryptoInfo ci = make_crypto_info();
  ASSERT_EQ(setsockopt(pair.client.get(), SOL_TLS, TLS_TX, &ci, sizeof ci), 0) << strerror(errno);
  ASSERT_EQ(setsockopt(pair.server.get(), SOL_TLS, TLS_RX, &ci, sizeof ci), 0) << strerror(errno);

  Bytes sent;
  for (int i = 0; i < 5; ++i) {
    // Each send below 16 KiB: one record each, 5 in all.
    Bytes chunk = pattern(1000 + 3000 * static_cast<size_t>(i), static_cast<uint8_t>(i));
    send_all(pair.client.get(), chunk);
    sent.insert(sent.end(), chunk.begin(), chunk.end());
  }
  Bytes received = recv_exact(pair.server.get(), sent.size());
  EXPECT_EQ(received, sent);

  CryptoInfo tx{}, rx{};
  socklen_t len = sizeof tx;
  ASSERT_EQ(getsockopt(pair.client.get(), SOL_TLS, TLS_TX, &tx, &len), 0) << strerror(errno);
  len = sizeof rx;
  ASSERT_EQ(getsockopt(pair.server.get(), SOL_TLS, TLS_RX, &rx, &len), 0) << strerror(errno);
  EXPECT_EQ(rec_seq_of(tx), kFirstSeq + 5);
  EXPECT_EQ(rec_seq_of(rx), kFirstSeq + 5);
}

// The other two ciphers the TLS layer hands to the kernel: the kernel's TX and RX must
// agree on the plaintext and both rec_seqs (big-endian, continued from 7).
template <class Info>
void kernel_round_trip(uint16_t cipher_type) {
  TcpPair pair = connect_loopback();
  if (!attach_tls_ulp(pair.client.get())) GTEST_SKIP() << "kernel has no kTLS (TCP_ULP tls: ENOENT); run it in qa/vm";
  ASSERT_TRUE(attach_tls_ulp(pair.server.get()));
  Info ci{};
  ci.info.version = TLS_1_3_VERSION;
  ci.info.cipher_type = cipher_type;
  for (size_t i = 0; i < sizeof ci.key; ++i) ci.key[i] = static_cast<uint8_t>(0x40 + i);
  for (size_t i = 0; i < sizeof ci.iv; ++i) ci.iv[i] = static_cast<uint8_t>(0x60 + i);
  ci.rec_seq[sizeof ci.rec_seq - 1] = kFirstSeq;
  ASSERT_EQ(setsockopt(pair.client.get(), SOL_TLS, TLS_TX, &ci, sizeof ci), 0) << strerror(errno);
  ASSERT_EQ(setsockopt(pair.server.get(), SOL_TLS, TLS_RX, &ci, sizeof ci), 0) << strerror(errno);

  Bytes sent = pattern(20000, 9);  // 2 records
  send_all(pair.client.get(), sent);
  EXPECT_EQ(recv_exact(pair.server.get(), sent.size()), sent);

  Info tx{}, rx{};
  socklen_t len = sizeof tx;
  ASSERT_EQ(getsockopt(pair.client.get(), SOL_TLS, TLS_TX, &tx, &len), 0) << strerror(errno);
  len = sizeof rx;
  ASSERT_EQ(getsockopt(pair.server.get(), SOL_TLS, TLS_RX, &rx, &len), 0) << strerror(errno);
  EXPECT_EQ(tx.rec_seq[sizeof tx.rec_seq - 1], kFirstSeq + 2);
  EXPECT_EQ(rx.rec_seq[sizeof rx.rec_seq - 1], kFirstSeq + 2);
}

TEST(KtlsSmoke, AesGcm256TxRxRoundTrip) {
  kernel_round_trip<tls12_crypto_info_aes_gcm_256>(TLS_CIPHER_AES_GCM_256);
}

TEST(KtlsSmoke, ChaCha20Poly1305TxRxRoundTrip) {
  kernel_round_trip<tls12_crypto_info_chacha20_poly1305>(TLS_CIPHER_CHACHA20_POLY1305);
}

}  // namespace
