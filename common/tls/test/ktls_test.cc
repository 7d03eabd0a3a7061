// Kernel kTLS backend, for real: runs inside qa/vm (Debian's kernel has the
// "tls" module); on a host without kTLS every case skips, saying so (inside the
// VM, XO_VM=1 turns a missing kTLS into a failure).
//
// The peer is XO's userspace record layer on the other end of a TCP loopback
// connection, so every byte the kernel seals or opens is checked by an
// independent implementation.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/sockios.h>
#include <linux/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "common/base/fd.h"
#include "common/tls/crypto.h"
#include "common/tls/record.h"
#include "common/tls/record_layer.h"
#include "common/tls/test/state_pair.h"
#if XO_TLS_HAVE_TCP
#include "common/tcp/snapshot.h"
#endif

namespace xo::tls {
namespace {

void require_ktls() {
  if (kernel_tls_available()) return;
  if (std::getenv("XO_VM")) FAIL() << "inside the VM the kernel must offer kTLS (tls module not loaded?)";
  GTEST_SKIP() << "this kernel has no kTLS (TCP_ULP \"tls\" -> ENOENT); run in qa/vm: vm.tls.ktls";
}

struct TcpPair {
  UniqueFd server, client;
};

TcpPair tcp_pair() {
  TcpPair p;
  UniqueFd l(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  EXPECT_EQ(::bind(l.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  EXPECT_EQ(::listen(l.get(), 1), 0);
  EXPECT_EQ(::getsockname(l.get(), reinterpret_cast<sockaddr*>(&a), &len), 0);
  p.client.reset(::socket(AF_INET, SOCK_STREAM, 0));
  EXPECT_EQ(::connect(p.client.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  p.server.reset(::accept(l.get(), nullptr, nullptr));
  return p;
}

using States = test::StatePair;
using test::pattern;
using test::read_exactly;

States make_states(Version v, Cipher c) { return test::make_state_pair(v, c, 3, 2, 0x1122334455667788ull); }

// Both directions of traffic through `server`, checked by the userspace `client`.
void exchange(RecordLayer& server, RecordLayer& client, size_t n, uint8_t seed) {
  auto down = pattern(n, seed), up = pattern(n / 3 + 1, uint8_t(seed + 1));
  std::thread w([&] { EXPECT_TRUE(server.write_all(down).ok()); });
  EXPECT_EQ(read_exactly(client, down.size()), down);
  w.join();
  std::thread w2([&] { EXPECT_TRUE(client.write_all(up).ok()); });
  EXPECT_EQ(read_exactly(server, up.size()), up);
  w2.join();
}

class KtlsMove : public ::testing::TestWithParam<std::tuple<Version, Cipher>> {};

// userspace -> kernel kTLS (carrying one whole and one partial record) -> back
// to userspace on a TCP-repair copy of the socket; rec_seq read back from the kernel.
TEST_P(KtlsMove, UserspaceToKernelAndBack) {
  require_ktls();
  if (::testing::Test::IsSkipped() || ::testing::Test::HasFailure()) return;
  auto [v, c] = GetParam();
  States st = make_states(v, c);
  TcpPair p = tcp_pair();
  auto server = make_userspace_layer(p.server.get(), st.server);
  auto client = make_userspace_layer(p.client.get(), st.client);
  ASSERT_TRUE(server.ok() && client.ok());
  exchange(**server, **client, 40000, 1);

  // The client sends a record and half of the next; the server pulls them in,
  // then freezes: both travel as pending ciphertext.
  auto sealer_state = (*client)->freeze();
  ASSERT_TRUE(sealer_state.ok());
  auto sealer = RecordProtection::create(v, sealer_state->tx, true);
  ASSERT_TRUE(sealer.ok());
  std::vector<uint8_t> wire;
  auto r1 = pattern(1000, 7), r2 = pattern(3000, 8);
  ASSERT_TRUE(sealer->seal(kApplicationData, r1, wire).ok());
  ASSERT_TRUE(sealer->seal(kApplicationData, r2, wire).ok());
  sealer_state->tx = sealer->direction();
  client = make_userspace_layer(p.client.get(), *sealer_state);
  ASSERT_TRUE(client.ok());
  size_t half = wire.size() - 1500;
  ASSERT_EQ(::send(p.client.get(), wire.data(), half, 0), ssize_t(half));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_TRUE((*server)->pull_available().ok());
  auto frozen = (*server)->freeze();
  ASSERT_TRUE(frozen.ok());
  EXPECT_EQ(frozen->pending_ciphertext.size(), half);
  std::thread rest([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    ::send(p.client.get(), wire.data() + half, wire.size() - half, 0);
  });
  auto kernel = make_kernel_layer(p.server.get(), *decode(encode(*frozen)));
  rest.join();
  ASSERT_TRUE(kernel.ok()) << kernel.error().to_string();
  EXPECT_STREQ((*kernel)->backend(), "kernel");
  std::vector<uint8_t> want = r1;
  want.insert(want.end(), r2.begin(), r2.end());
  EXPECT_EQ(read_exactly(**kernel, want.size()), want);
  exchange(**kernel, **client, 200000, 3);

  // rec_seq read back from the kernel must match what the peer counted.
  auto kstate = (*kernel)->freeze();
  ASSERT_TRUE(kstate.ok()) << kstate.error().to_string();
  auto cstate = (*client)->freeze();
  ASSERT_TRUE(cstate.ok());
  EXPECT_EQ(kstate->tx.seq(), cstate->rx.seq());
  EXPECT_EQ(kstate->rx.seq(), cstate->tx.seq());
  EXPECT_GT(kstate->tx.seq(), 10u);
  if (v == Version::tls12 && c != Cipher::chacha20poly1305) {
    EXPECT_EQ(kstate->tx.explicit_nonce(), 0x1122334455667788ull + (kstate->tx.seq() - 3));
  }
  client = make_userspace_layer(p.client.get(), *cstate);
  ASSERT_TRUE(client.ok());

#if XO_TLS_HAVE_TCP
  // Back to userspace: the kTLS socket cannot drop its ULP, so take a TCP
  // repair copy (queues are quiet: nothing in flight) and continue there.
  for (int i = 0; i < 100; ++i) {
    int outq = 0;
    ::ioctl(p.server.get(), SIOCOUTQ, &outq);
    if (outq == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  auto snap = tcp::capture(p.server.get());
  ASSERT_TRUE(snap.ok()) << snap.error().to_string();
  p.server.reset();  // closed in repair mode: no FIN, no RST
  auto fd = tcp::restore(*snap);
  ASSERT_TRUE(fd.ok()) << fd.error().to_string();
  auto back = make_userspace_layer(fd->get(), *kstate);
  ASSERT_TRUE(back.ok());
  exchange(**back, **client, 50000, 5);
  ASSERT_TRUE((*back)->close_notify().ok());
#else
  ASSERT_TRUE((*kernel)->close_notify().ok());
#endif
  uint8_t b[8];
  auto end = (*client)->read_some(b);
  ASSERT_TRUE(end.ok()) << end.error().to_string();
  EXPECT_EQ(*end, 0u);
}

INSTANTIATE_TEST_SUITE_P(All, KtlsMove,
                         ::testing::Combine(::testing::Values(Version::tls12, Version::tls13),
                                            ::testing::Values(Cipher::aes128gcm, Cipher::aes256gcm,
                                                              Cipher::chacha20poly1305)),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param) == Version::tls13 ? "tls13_" : "tls12_") +
                                  cipher_info(std::get<1>(info.param)).name;
                         });

// A partial record inside the kernel cannot be exported: freeze refuses, and
// the layer keeps working.
TEST(Ktls, FreezeRefusesAPartialRecordInTheKernel) {
  require_ktls();
  if (::testing::Test::IsSkipped() || ::testing::Test::HasFailure()) return;
  States st = make_states(Version::tls13, Cipher::aes128gcm);
  TcpPair p = tcp_pair();
  auto kernel = make_kernel_layer(p.server.get(), st.server);
  ASSERT_TRUE(kernel.ok()) << kernel.error().to_string();
  auto sealer = RecordProtection::create(Version::tls13, st.client.tx, true);
  ASSERT_TRUE(sealer.ok());
  std::vector<uint8_t> wire;
  auto data = pattern(2000, 9);
  ASSERT_TRUE(sealer->seal(kApplicationData, data, wire).ok());
  ASSERT_EQ(::send(p.client.get(), wire.data(), 700, 0), 700);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto f = (*kernel)->freeze();
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.error().message.find("partial received record"), std::string::npos) << f.error().message;
  ASSERT_EQ(::send(p.client.get(), wire.data() + 700, wire.size() - 700, 0), ssize_t(wire.size() - 700));
  EXPECT_EQ(read_exactly(**kernel, data.size()), data);
  EXPECT_TRUE((*kernel)->freeze().ok());
}

// Why the freeze must refuse on a stock kernel: in repair mode, peeking a kTLS
// socket's receive queue returns decrypted plaintext, not the records, so the
// record framing and sequence state cannot be captured from the queue.
TEST(Ktls, StockKernelPeeksPlaintextInRepairMode) {
  require_ktls();
  if (::testing::Test::IsSkipped() || ::testing::Test::HasFailure()) return;
  States st = make_states(Version::tls13, Cipher::aes256gcm);
  TcpPair p = tcp_pair();
  auto kernel = make_kernel_layer(p.server.get(), st.server);
  ASSERT_TRUE(kernel.ok()) << kernel.error().to_string();
  auto client = make_userspace_layer(p.client.get(), st.client);
  ASSERT_TRUE(client.ok());
  auto data = pattern(500, 4);
  ASSERT_TRUE((*client)->write_all(data).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  int on = 1, q = TCP_RECV_QUEUE;
  ASSERT_EQ(::setsockopt(p.server.get(), IPPROTO_TCP, TCP_REPAIR, &on, sizeof on), 0);
  ASSERT_EQ(::setsockopt(p.server.get(), IPPROTO_TCP, TCP_REPAIR_QUEUE, &q, sizeof q), 0);
  std::vector<uint8_t> peek(4096);
  ssize_t n = ::recv(p.server.get(), peek.data(), peek.size(), MSG_PEEK | MSG_DONTWAIT);
  int off = 0;
  ::setsockopt(p.server.get(), IPPROTO_TCP, TCP_REPAIR, &off, sizeof off);
  ASSERT_GT(n, 0) << strerror(errno);
  peek.resize(size_t(n));
  // 500 bytes of plaintext, not the 5 + 500 + 1 + 16 bytes of the record.
  EXPECT_EQ(peek, data) << "peeked " << n << " bytes";
}

}  // namespace
}  // namespace xo::tls
