// The test server on loopback: content, keep-alive, pipelining, digests, handover.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cstring>
#include <future>

#include "qa/server/client.h"
#include "qa/server/content.h"
#include "qa/server/server.h"

namespace xo::testserver {
namespace {

std::unique_ptr<Server> start(const std::string& name, Hook* hook = nullptr) {
  auto s = Server::start({.name = name, .listen = "127.0.0.1", .port = 0, .hook = hook});
  EXPECT_TRUE(s.ok()) << s.error().to_string();
  return s.ok() ? std::move(*s) : nullptr;
}

void expect_content(const Response& r, uint64_t size, uint64_t seed) {
  ASSERT_EQ(r.status, 200);
  ASSERT_EQ(r.body.size(), size);
  EXPECT_EQ(content_mismatch(seed, 0, std::span(reinterpret_cast<const uint8_t*>(r.body.data()), r.body.size())), -1);
}

TEST(Content, DeterministicAndSeeded) {
  uint8_t a[100], b[100], c[50];
  content_fill(7, 0, a);
  content_fill(8, 0, b);
  content_fill(7, 50, c);
  EXPECT_NE(std::memcmp(a, b, sizeof a), 0);
  EXPECT_EQ(std::memcmp(a + 50, c, sizeof c), 0);
  a[77] ^= 1;
  EXPECT_EQ(content_mismatch(7, 0, a), 77);
}

TEST(Server, KeepAliveAndRequestSeq) {
  auto server = start("alpha");
  auto c = Client::connect("127.0.0.1", server->port());
  ASSERT_TRUE(c.ok());
  for (int i = 1; i <= 3; ++i) {
    auto r = c->get("/data/100000/" + std::to_string(i));
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    expect_content(*r, 100000, i);
    EXPECT_EQ(r->header("x-served-by"), "alpha");
    EXPECT_EQ(r->header("x-request-seq"), std::to_string(i));
  }
  EXPECT_EQ(server->stats().connections, 1u);
  auto r = c->get("/nope");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 404);
}

TEST(Server, PipelinedRequestsAndHead) {
  auto server = start("alpha");
  auto c = Client::connect("127.0.0.1", server->port());
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(c->send_raw("GET /data/10/1 HTTP/1.1\r\nHost: x\r\n\r\n"
                          "HEAD /data/20/2 HTTP/1.1\r\nHost: x\r\n\r\n"
                          "GET /data/30/3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok());
  auto r1 = c->read_response();
  ASSERT_TRUE(r1.ok());
  expect_content(*r1, 10, 1);
  auto r2 = c->read_response(/*head_request=*/true);
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->header("content-length"), "20");
  auto r3 = c->read_response();
  ASSERT_TRUE(r3.ok());
  expect_content(*r3, 30, 3);
  EXPECT_FALSE(r3->keep_alive);
  char b;
  EXPECT_EQ(::recv(c->fd(), &b, 1, 0), 0) << "server did not close after Connection: close";
}

TEST(Server, PostEchoesSha256) {
  auto server = start("alpha");
  auto c = Client::connect("127.0.0.1", server->port());
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(c->send_raw("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc").ok());
  auto r = c->read_response();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->body, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n");
}

// Hands connections from one server to another in-process (same socket, no
// TCP move): checks the server's half of the handover contract.
class ToOther : public Hook {
 public:
  Server* other = nullptr;
  uint64_t before_seq = 0;            // hand over before answering this request
  std::optional<uint64_t> at;         // or at this body offset
  std::promise<ResumeState> seen;
  bool hand_over_before_response(const RequestInfo& r) override { return r.seq == before_seq; }
  std::optional<uint64_t> hand_over_at(const RequestInfo& r) override {
    return r.seq == before_seq + 100 ? std::nullopt : at;
  }
  void take(UniqueFd fd, ResumeState st) override {
    // Through the wire encoding, as a real move does.
    auto copy = decode_resume_state(encode(st));
    EXPECT_TRUE(copy.ok());
    seen.set_value(st);
    other->adopt(std::move(fd), std::move(*copy));
  }
};

TEST(Server, HandOverBeforeResponseKeepsPipelinedBytes) {
  ToOther hook;
  hook.before_seq = 2;
  auto a = start("alpha", &hook);
  auto b = start("beta");
  hook.other = b.get();
  auto c = Client::connect("127.0.0.1", a->port());
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(c->send_raw("GET /data/10/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /data/20/2 HTTP/1.1\r\nHost: x\r\n\r\n"
                          "GET /data/30/3 HTTP/1.1\r\nHost: x\r\n\r\n").ok());
  std::string by;
  for (int i = 1; i <= 3; ++i) {
    auto r = c->read_response();
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    expect_content(*r, 10 * i, i);
    by += r->header("x-served-by") + r->header("x-request-seq") + " ";
  }
  EXPECT_EQ(by, "alpha1 beta2 beta3 ");
  auto st = hook.seen.get_future().get();
  ASSERT_TRUE(st.owed.has_value());
  EXPECT_EQ(st.owed->target, "/data/20/2");
  EXPECT_FALSE(st.owed->head_written);
}

TEST(Server, HandOverMidResponse) {
  ToOther hook;
  hook.at = 123457;
  auto a = start("alpha", &hook);
  auto b = start("beta");
  hook.other = b.get();
  auto c = Client::connect("127.0.0.1", a->port());
  ASSERT_TRUE(c.ok());
  auto r = c->get("/data/1000000/9");
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  expect_content(*r, 1000000, 9);
  EXPECT_EQ(r->header("x-served-by"), "alpha");  // the head was written by alpha
  EXPECT_EQ(b->stats().body_bytes, 1000000u - 123457u);
  auto st = hook.seen.get_future().get();
  EXPECT_TRUE(st.owed->head_written);
  EXPECT_EQ(st.owed->body_offset, 123457u);
}

TEST(ResumeState, DecoderRejectsGarbage) {
  ResumeState s;
  s.unread = {1, 2, 3};
  s.owed = Owed{"GET", "/data/1/1", true, 4, true, 99};
  s.stream = {7, 8};
  auto bytes = encode(s);
  auto back = decode_resume_state(bytes);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->unread, s.unread);
  EXPECT_EQ(back->owed->body_offset, 99u);
  EXPECT_EQ(back->stream, s.stream);
  for (size_t n = 0; n < bytes.size(); ++n)
    EXPECT_FALSE(decode_resume_state(std::span(bytes.data(), n)).ok()) << "accepted truncation at " << n;
}

}  // namespace
}  // namespace xo::testserver
