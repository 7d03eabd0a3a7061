// Snapshot encoding: round trips and every kind of malformed input.
#include <gtest/gtest.h>
#include <netinet/tcp.h>

#include "common/base/bytes.h"
#include "common/tcp/snapshot.h"

namespace xo::tcp {
namespace {

Snapshot sample(int family) {
  Snapshot s;
  s.local = *Endpoint::parse(family == AF_INET6 ? "fd00::1" : "198.18.0.1", 80);
  s.remote = *Endpoint::parse(family == AF_INET6 ? "[fd00::2]" : "198.18.0.2", 40000);
  s.state = TCP_CLOSE_WAIT;
  s.send_seq = 0xfffffff0;
  s.recv_seq = 12345;
  s.tcpi_options = TCPI_OPT_SACK | TCPI_OPT_WSCALE | TCPI_OPT_TIMESTAMPS;
  s.mss = 1448;
  s.snd_wscale = 7;
  s.rcv_wscale = 9;
  s.timestamp = 0xdeadbeef;
  s.window = Snapshot::Window{1, 2, 3, 4, 5};
  s.send_queue = {1, 2, 3, 4, 5, 6, 7};
  s.unsent = 3;
  s.recv_queue = {9, 8, 7};
  s.options = {true, true, 60, 10, 5, "cubic", 16384, 0, 212992, true};
  return s;
}

void expect_equal(const Snapshot& a, const Snapshot& b) {
  EXPECT_EQ(a.local.to_string(), b.local.to_string());
  EXPECT_EQ(a.remote.to_string(), b.remote.to_string());
  EXPECT_EQ(a.state, b.state);
  EXPECT_EQ(a.send_seq, b.send_seq);
  EXPECT_EQ(a.recv_seq, b.recv_seq);
  EXPECT_EQ(a.tcpi_options, b.tcpi_options);
  EXPECT_EQ(a.mss, b.mss);
  EXPECT_EQ(a.snd_wscale, b.snd_wscale);
  EXPECT_EQ(a.rcv_wscale, b.rcv_wscale);
  EXPECT_EQ(a.timestamp, b.timestamp);
  ASSERT_EQ(a.window.has_value(), b.window.has_value());
  if (a.window) {
    EXPECT_EQ(a.window->snd_wl1, b.window->snd_wl1);
    EXPECT_EQ(a.window->snd_wnd, b.window->snd_wnd);
    EXPECT_EQ(a.window->max_window, b.window->max_window);
    EXPECT_EQ(a.window->rcv_wnd, b.window->rcv_wnd);
    EXPECT_EQ(a.window->rcv_wup, b.window->rcv_wup);
  }
  EXPECT_EQ(a.send_queue, b.send_queue);
  EXPECT_EQ(a.unsent, b.unsent);
  EXPECT_EQ(a.recv_queue, b.recv_queue);
  EXPECT_EQ(a.options.nodelay, b.options.nodelay);
  EXPECT_EQ(a.options.keepalive, b.options.keepalive);
  EXPECT_EQ(a.options.keepidle, b.options.keepidle);
  EXPECT_EQ(a.options.keepintvl, b.options.keepintvl);
  EXPECT_EQ(a.options.keepcnt, b.options.keepcnt);
  EXPECT_EQ(a.options.congestion, b.options.congestion);
  EXPECT_EQ(a.options.notsent_lowat, b.options.notsent_lowat);
  EXPECT_EQ(a.options.sndbuf, b.options.sndbuf);
  EXPECT_EQ(a.options.rcvbuf, b.options.rcvbuf);
  EXPECT_EQ(a.options.reuseaddr, b.options.reuseaddr);
}

std::string decode_error(const std::vector<uint8_t>& bytes) {
  auto r = decode(bytes);
  return r.ok() ? std::string("<accepted>") : r.error().to_string();
}

// Offsets in the v1 header: magic 0..3, version 4..5, compat 6..7, length 8..11.
void put_u16(std::vector<uint8_t>& b, size_t at, uint16_t v) {
  b[at] = static_cast<uint8_t>(v >> 8);
  b[at + 1] = static_cast<uint8_t>(v);
}
void put_u32(std::vector<uint8_t>& b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + i] = static_cast<uint8_t>(v >> (8 * (3 - i)));
}

TEST(TcpCodec, RoundTripIPv4AndIPv6) {
  for (int family : {AF_INET, AF_INET6}) {
    Snapshot s = sample(family);
    auto d = decode(encode(s));
    ASSERT_TRUE(d.ok()) << d.error().to_string();
    expect_equal(s, *d);
  }
}

TEST(TcpCodec, RoundTripWithoutWindowAndEmptyQueues) {
  Snapshot s = sample(AF_INET);
  s.window.reset();
  s.send_queue.clear();
  s.recv_queue.clear();
  s.unsent = 0;
  s.state = TCP_ESTABLISHED;
  auto d = decode(encode(s));
  ASSERT_TRUE(d.ok()) << d.error().to_string();
  expect_equal(s, *d);
}

TEST(TcpCodec, RejectsTruncationAtEveryLength) {
  auto bytes = encode(sample(AF_INET6));
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<long>(n));
    auto r = decode(cut);
    EXPECT_FALSE(r.ok()) << "accepted a snapshot cut to " << n << " of " << bytes.size() << " bytes";
    // A cut inside the body is caught by the length check, whose message is specific.
    if (!r.ok()) {
      EXPECT_NE(r.error().message.find("tcp snapshot decode"), std::string::npos);
    }
  }
  // Also when the length field is fixed up to match the cut body.
  for (size_t n = 12; n < bytes.size(); ++n) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<long>(n));
    put_u32(cut, 8, static_cast<uint32_t>(n - 12));
    auto r = decode(cut);
    EXPECT_FALSE(r.ok()) << "accepted a body cut to " << n - 12 << " bytes";
    if (!r.ok()) {
      EXPECT_NE(r.error().message.find("truncated"), std::string::npos) << r.error().message;
    }
  }
}

TEST(TcpCodec, RejectsBadMagicAndVersions) {
  auto good = encode(sample(AF_INET));
  auto b = good;
  b[0] = 'Y';
  EXPECT_NE(decode_error(b).find("bad magic"), std::string::npos);
  b = good;
  put_u16(b, 4, 0);  // version 0
  EXPECT_NE(decode_error(b).find("bad version"), std::string::npos);
  b = good;
  put_u16(b, 4, 3);
  put_u16(b, 6, 2);  // needs a reader of version 2
  EXPECT_NE(decode_error(b).find("needs a reader of version 2"), std::string::npos);
  b = good;
  put_u16(b, 6, 5);  // compat above version
  EXPECT_NE(decode_error(b).find("bad version"), std::string::npos);
}

TEST(TcpCodec, ReadsNewerWriterWithAppendedFields) {
  auto b = encode(sample(AF_INET));
  put_u16(b, 4, 2);  // version 2, compat 1: a v1 reader may read it
  b.push_back(0xab);
  put_u32(b, 8, static_cast<uint32_t>(b.size() - 12));
  auto d = decode(b);
  ASSERT_TRUE(d.ok()) << d.error().to_string();
  // The same trailing byte from a v1 writer is an error.
  put_u16(b, 4, 1);
  EXPECT_NE(decode_error(b).find("unexpected bytes"), std::string::npos);
}

TEST(TcpCodec, RejectsLengthMismatchAndOversizedQueues) {
  auto good = encode(sample(AF_INET));
  auto b = good;
  put_u32(b, 8, 0xffffffff);
  EXPECT_NE(decode_error(b).find("body length"), std::string::npos);
  b = good;
  b.push_back(0);
  EXPECT_NE(decode_error(b).find("body length"), std::string::npos);

  // The send queue's length field: after header(12) + 2 IPv4 endpoints (7 each)
  // + state..timestamp (1+4+4+1+4+1+1+4) + window (1+20) + unsent (4).
  const size_t send_len_at = 12 + 14 + 20 + 21 + 4;
  b = good;
  ASSERT_EQ(b[send_len_at + 3], 7) << "layout changed; fix the offset";
  put_u32(b, send_len_at, (64u << 20) + 1);
  EXPECT_NE(decode_error(b).find("exceeds the limit"), std::string::npos);
  b = good;
  put_u32(b, send_len_at, 1000);  // more than present
  EXPECT_NE(decode_error(b).find("truncated"), std::string::npos);
}

TEST(TcpCodec, RejectsInconsistentSnapshots) {
  auto check = [](Snapshot s, const char* want) {
    std::string err = decode_error(encode(s));
    EXPECT_NE(err.find(want), std::string::npos) << "got: " << err;
  };
  Snapshot s = sample(AF_INET);
  s.unsent = 8;
  check(s, "unsent (8) exceeds the send queue");
  s = sample(AF_INET);
  s.state = TCP_LISTEN;
  check(s, "unsupported state");
  s = sample(AF_INET);
  s.state = TCP_TIME_WAIT;
  check(s, "unsupported state");
  s = sample(AF_INET);
  s.remote = *Endpoint::parse("fd00::2", 1);
  check(s, "differ in family");
  s = sample(AF_INET);
  s.snd_wscale = 15;
  check(s, "window scale");
  s = sample(AF_INET);
  s.state = TCP_FIN_WAIT2;
  check(s, "unsent bytes behind a FIN");
  s = sample(AF_INET);
  s.options.congestion = std::string(16, 'x');
  check(s, "congestion");
  s = sample(AF_INET);
  s.mss = 0;
  check(s, "mss");

  auto b = encode(sample(AF_INET));
  b[12] = 5;  // local endpoint family byte
  EXPECT_NE(decode_error(b).find("bad address family 5"), std::string::npos);
}

TEST(TcpCodec, ByteReaderNamesTheField) {
  std::vector<uint8_t> two = {1, 2};
  ByteReader r(two);
  auto v = r.u32("the answer");
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.error().message.find("the answer needs 4 bytes at offset 0, 2 left"), std::string::npos)
      << v.error().message;
}

}  // namespace
}  // namespace xo::tcp
