// Client behaviours around live moves between lab hosts (frontend → backend0 →
// frontend → backend0), with unmodified clients: openssl s_client sending
// KeyUpdates before and after every move, a resumed session, the server's
// session tickets 0 and 2, pipelined requests, and request records split across
// TCP segments at the moment of a move (python3 ssl over memory BIOs). Each test
// checks every byte, no RST on the client's wire, no socket left on any host.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>
#include <vector>

#include "qa/system/tls/tls_move_lab.h"

namespace xo::tcpmove {
namespace {

using namespace tlslab;

// ---- helpers ----

struct Response {
  std::string seq, by, body;
};

// The HTTP/1.1 responses in a client's output, in order. Text between them
// (s_client's session and ticket notes) is skipped; bodies are taken by
// Content-Length, so a stray byte inside one shows up as a content mismatch.
std::vector<Response> ParseResponses(const std::string& out) {
  std::vector<Response> got;
  size_t at = 0;
  for (;;) {
    size_t start = out.find("HTTP/1.1 ", at);
    if (start == std::string::npos) break;
    size_t head_end = out.find("\r\n\r\n", start);
    if (head_end == std::string::npos) break;
    std::string head = out.substr(start, head_end - start);
    auto field = [&](const std::string& name) {
      std::string lower;
      for (char c : head) lower += char(std::tolower(static_cast<unsigned char>(c)));
      size_t p = lower.find("\r\n" + name + ":");
      if (p == std::string::npos) return std::string();
      p += 3 + name.size();
      size_t e = head.find("\r\n", p);
      std::string v = head.substr(p, e == std::string::npos ? std::string::npos : e - p);
      while (!v.empty() && v.front() == ' ') v.erase(v.begin());
      return v;
    };
    size_t length = std::stoul(field("content-length").empty() ? "0" : field("content-length"));
    size_t body_at = head_end + 4;
    got.push_back({field("x-request-seq"), field("x-served-by"), out.substr(body_at, length)});
    at = body_at + length;
  }
  return got;
}

std::string Get(uint64_t size, uint64_t seed) {
  return "GET /data/" + std::to_string(size) + "/" + std::to_string(seed) + " HTTP/1.1\\r\\nHost: xo-lab\\r\\n\\r\\n";
}

// A shell feed for s_client: each step is printf'd on its own after a pause,
// so s_client reads it as one line or one request. s_client's interactive
// commands: "k" = KeyUpdate, "K" = KeyUpdate with update_requested.
std::string Feed(const std::vector<std::string>& steps) {
  std::string f = "sleep 1";
  for (const auto& s : steps) f += "; printf '" + s + "'; sleep 0.4";
  return f + "; sleep 1.5";  // every response is in before stdin ends and s_client closes
}

bool Exists(const std::string& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0 && st.st_size > 0;
}

class TlsMoveClients : public TlsMove {
 protected:
  // `openssl s_client` in the client host, fed `feed`; extra: its options.
  lab::RunResult SClient(const std::string& feed, const std::string& extra) {
    std::string cmd = "(" + feed + ") | openssl s_client -connect " + lab_->service_ip() + ":" +
                      std::to_string(kPort) + " -CAfile " + cafile_ + " -verify_return_error " + extra;
    auto r = lab::run_in(lab_->client().ns, {"sh", "-c", cmd}, std::chrono::seconds(60));
    EXPECT_TRUE(r.ok()) << r.error().to_string();
    return r.ok() ? *r : lab::RunResult{};
  }

  // Responses `got` are requests 1.. answered by `hosts`, with the bodies of Get(sizes[i], i + 1).
  void ExpectResponses(const std::vector<Response>& got, const std::vector<std::string>& hosts,
                       const std::vector<uint64_t>& sizes) {
    ASSERT_EQ(got.size(), hosts.size());
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].seq, std::to_string(i + 1));
      EXPECT_EQ(got[i].by, hosts[i]) << "request " << i + 1;
      EXPECT_TRUE(content_ok(got[i].body, sizes[i], i + 1)) << "body of request " << i + 1;
    }
  }

  // Three moves: backend0, frontend, backend0.
  void ExpectThereAndBackTwice() {
    auto moves = Moves(3);
    ASSERT_EQ(moves.size(), 3u);
    EXPECT_EQ(moves[0].to, "backend0");
    EXPECT_EQ(moves[1].to, "frontend");
    EXPECT_EQ(moves[2].to, "backend0");
  }
};

Plan ThereAndBackTwice() { return by_seq({{2, "backend0"}, {3, "frontend"}, {4, "backend0"}}); }

// ---- openssl s_client: KeyUpdate before and after every move ----

TEST_F(TlsMoveClients, OpensslClientKeyUpdatesAroundEveryMove) {
  START(ThereAndBackTwice());
  const std::vector<uint64_t> sizes = {20000, 30000, 40000, 50000, 60000};
  // k before request 1 (OpenSSL), K before 2 (OpenSSL; 2 moves to backend0),
  // K before 3 (XO on backend0; 3 moves back), k before 4 (XO on the
  // frontend; 4 moves again), K before 5 (XO on backend0, which keeps it).
  const char* updates[] = {"k", "K", "K", "k", "K"};
  std::vector<std::string> steps;
  for (int i = 0; i < 5; ++i) steps.insert(steps.end(), {std::string(updates[i]) + "\\n", Get(sizes[i], i + 1)});
  auto r = SClient(Feed(steps), "-brief -tls1_3");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.find("alert"), std::string::npos) << r.err;
  ExpectResponses(ParseResponses(r.out), {"frontend", "backend0", "frontend", "backend0", "backend0"}, sizes);
  ExpectThereAndBackTwice();
  // Each state is frozen before its request is answered. After "K" the server
  // answered with its own KeyUpdate: its TX sequence restarted (0); the request
  // that followed was record 0 of the client's new key (RX 1). After "k" only
  // the RX key changed.
  auto resumed = ResumedStates();
  ASSERT_EQ(resumed.size(), 3u);
  for (const auto& s : resumed) EXPECT_EQ(s.version, "TLS1.3");
  // On OpenSSL the answer to "K" is owed until its next write: the freeze sends it.
  EXPECT_EQ(resumed[0].tx_seq, 0u) << "the KeyUpdate OpenSSL owed was not sent before the move";
  EXPECT_EQ(resumed[0].rx_seq, 1u);
  EXPECT_EQ(resumed[1].tx_seq, 0u);
  EXPECT_EQ(resumed[1].rx_seq, 1u);
  EXPECT_GT(resumed[2].tx_seq, 0u);
  EXPECT_EQ(resumed[2].rx_seq, 1u);
}

// ---- a resumed session (s_client -sess_out, then -sess_in) moves ----

TEST_F(TlsMoveClients, ResumedSessionMoves) {
  START(ThereAndBackTwice());
  const std::string sess = dir_ + "/session.pem";
  auto first = SClient(Feed({Get(10000, 1)}), "-tls1_3 -sess_out " + sess);
  EXPECT_NE(first.out.find("New, TLSv1.3"), std::string::npos) << first.out.substr(0, 3000);
  ExpectResponses(ParseResponses(first.out), {"frontend"}, {10000});
  ASSERT_TRUE(Exists(sess)) << "s_client saved no session (no ticket?)";

  const std::vector<uint64_t> sizes = {20000, 300000, 40000, 500000};
  std::vector<std::string> steps;
  for (int i = 0; i < 4; ++i) steps.push_back(Get(sizes[i], i + 1));
  auto second = SClient(Feed(steps), "-tls1_3 -sess_in " + sess);
  EXPECT_EQ(second.exit_code, 0) << second.err;
  EXPECT_NE(second.out.find("Reused, TLSv1.3"), std::string::npos) << second.out.substr(0, 3000);
  ExpectResponses(ParseResponses(second.out), {"frontend", "backend0", "frontend", "backend0"}, sizes);
  ExpectThereAndBackTwice();
}

// ---- the server's session tickets: 0 and 2 (tickets shift the TX sequence) ----

class TlsMoveTickets : public TlsMoveClients, public ::testing::WithParamInterface<int> {};

TEST_P(TlsMoveTickets, MovesThereAndBackTwice) {
  const int tickets = GetParam();
  START(ThereAndBackTwice(), false, tls::ServerConfig{.num_tickets = tickets});
  const std::string sess = dir_ + "/session.pem";
  const std::vector<uint64_t> sizes = {50000, 60000, 70000, 80000};
  std::vector<std::string> steps;
  for (int i = 0; i < 4; ++i) steps.push_back(Get(sizes[i], i + 1));
  auto r = SClient(Feed(steps), "-tls1_3 -sess_out " + sess);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // s_client notes each ticket and saves the session only when one came.
  size_t notes = 0;
  for (size_t p = 0; (p = r.out.find("Post-Handshake New Session Ticket arrived", p)) != std::string::npos; ++p)
    ++notes;
  EXPECT_EQ(notes, size_t(tickets));
  EXPECT_EQ(Exists(sess), tickets > 0);
  ExpectResponses(ParseResponses(r.out), {"frontend", "backend0", "frontend", "backend0"}, sizes);
  ExpectThereAndBackTwice();
  auto resumed = ResumedStates();
  ASSERT_EQ(resumed.size(), 3u);
  EXPECT_GE(resumed[0].tx_seq, uint64_t(tickets) + 1) << "tickets and response 1 were records before the move";
}

INSTANTIATE_TEST_SUITE_P(Tickets, TlsMoveTickets, ::testing::Values(0, 2),
                         [](const ::testing::TestParamInfo<int>& i) { return std::to_string(i.param) + "tickets"; });

// ---- python3 ssl placing records on the wire itself ----

class TlsMoveWire : public TlsMoveClients {
 protected:
  std::string Run(const std::string& mode) {
    auto r = lab::run_in(lab_->client().ns,
                         {"/usr/bin/python3", XO_TLS_SYSTEM_DIR "/https_wire_client.py", mode, lab_->service_ip(),
                          std::to_string(kPort), cafile_, dir_},
                         std::chrono::seconds(60));
    EXPECT_TRUE(r.ok()) << r.error().to_string();
    if (!r.ok()) return {};
    EXPECT_EQ(r->exit_code, 0) << r->err;
    return r->out;
  }
  void ExpectBodies(const std::vector<uint64_t>& sizes) {
    for (size_t i = 0; i < sizes.size(); ++i)
      EXPECT_TRUE(content_ok(ReadFile(dir_ + "/body" + std::to_string(i + 1)), sizes[i], i + 1))
          << "body of request " << i + 1;
  }
};

TEST_F(TlsMoveWire, PipelinedRequestsCrossTwoMoves) {
  START(ThereAndBackTwice());
  // Requests 2, 3 and 4 arrive in one record: 3 and 4 travel to backend0 as
  // unread bytes, 4 travels back to the frontend and on to backend0 again.
  EXPECT_EQ(Run("pipeline"),
            "1 frontend 30000\n2 backend0 20000\n3 frontend 25000\n4 backend0 60000\n"
            "TLSv1.3 TLS_AES_256_GCM_SHA384\n");
  ExpectBodies({30000, 20000, 25000, 60000});
  ExpectThereAndBackTwice();
}

TEST_F(TlsMoveWire, RecordSplitAcrossSegmentsAtTheMoves) {
  START(ThereAndBackTwice());
  EXPECT_EQ(Run("split"),
            "1 frontend 30000\n2 backend0 20000\n3 frontend 25000\n4 backend0 60000\n5 backend0 7000\n"
            "TLSv1.3 TLS_AES_256_GCM_SHA384\n");
  ExpectBodies({30000, 20000, 25000, 60000, 7000});
  ExpectThereAndBackTwice();
  // The moves at requests 2 (from OpenSSL) and 3 (from XO's layer) each held
  // the first half of the next request's record: it crossed as TLS ciphertext.
  auto resumed = ResumedStates();
  ASSERT_EQ(resumed.size(), 3u);
  EXPECT_GT(resumed[0].pending_ciphertext, 0u) << "half of request 3's record";
  EXPECT_GT(resumed[1].pending_ciphertext, 0u) << "half of request 4's record";
}

}  // namespace
}  // namespace xo::tcpmove
