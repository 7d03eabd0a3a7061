// A host dies (issue 5): the target before READY, the target after GO
// (and comes back), the frontend's daemon after GO (and comes back, and
// reconciles). What the client sees: a complete, correct response, or a
// correct prefix and a closed connection — never wrong bytes, never a hang;
// what is left behind on both hosts once they are back.
#include "qa/system/handoff/faults/faults_fixture.h"

namespace xo::handoff::faulttest {
namespace {

// ---- the target dies before READY ---------------------------------------------

// backend0 is stopped (SIGSTOP), so the OFFER waits unread in its socket;
// it is killed while the frontend waits for READY (ready timeout 5 s). The
// broken channel rolls the offer back at once: the frontend answers, and the
// next request (no control connection) is served locally without delay.
// A restarted backend0 takes offloads again.
TEST_F(HandoffFaults, TargetKilledBeforeReadyTheFrontendServes) {
  UP(5000);
  CONNECT(client);
  Signal("backend0", SIGSTOP);
  ASSERT_OK(client->send_get("/data/1000000/21"));
  std::this_thread::sleep_for(300ms);  // the OFFER is out, READY cannot come
  const auto t_kill = std::chrono::steady_clock::now();
  KILL("backend0");
  ASSERT_OK_AND(auto r, client->read_response());
  const auto waited = std::chrono::steady_clock::now() - t_kill;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body.size(), 1000000u);
  EXPECT_TRUE(body_ok(r.body, 21));
  EXPECT_EQ(r.header("x-served-by"), "frontend");
  EXPECT_LT(waited, 3s) << "the rollback waited for the READY timeout instead of noticing the broken channel";

  EXPECT_EQ(Get(*client, 1000000, 22), "frontend");
  auto fe = RecordsWith("frontend", "record offer served-locally", 2);
  EXPECT_EQ(count_prefix(fe, "record offer served-locally"), 2u) << join(fe);
  EXPECT_EQ(count_prefix(fe, "record offer offloaded"), 0u) << join(fe);
  // Nothing was prepared on backend0 (its pinned map survives it), nothing
  // is left on the frontend.
  ExpectNoEntries({"frontend", "backend0"}, 1s);
  EXPECT_TRUE(FlowSockets("backend0").empty()) << lab::to_string(FlowSockets("backend0"));

  RESTART("backend0");
  // The frontend reconnects with backoff (capped at 1 s): offloads resume.
  std::string by;
  for (int i = 0; i < 30 && by != "backend0"; ++i) {
    by = Get(*client, 100000, 30 + i);
    if (by != "backend0") std::this_thread::sleep_for(200ms);
  }
  EXPECT_EQ(by, "backend0") << "no offload after backend0 came back";
  client.reset();
  ExpectNoFlowSockets({"frontend", "backend0", "client"});
  ExpectNoEntries({"frontend", "backend0"});
  ExpectNoRsts();
}


// ---- a host dies after GO ---------------------------------------------------------------

constexpr uint64_t kBigSize = 100000000;  // /data/1e8: offloaded, long enough to kill mid-body

// backend0 dies after GO (KillTargetMidResponseRestartAndReconcile).
TEST_F(HandoffFaults, TargetKilledAfterGo) {
  UP();
  KillTargetMidResponseRestartAndReconcile();
}

// The same crash, then: the restarted backend0 must not keep the dead
// process's entries for a flow it no longer holds (its SNAT would rewrite a
// later connection on the same 4-tuple, and crashes would fill the map).
TEST_F(HandoffFaults, TargetRestartedAfterACrashKeepsNoStaleEntries) {
  UP();
  KillTargetMidResponseRestartAndReconcile();
  if (HasFatalFailure()) return;
  auto be_left = WaitEntries("backend0", 0, 2s);
  EXPECT_EQ(be_left, 0u) << "the restarted backend0 keeps " << be_left
                         << " BLOCK/SNAT entries of a flow its killed process held";
}

// The frontend's daemon is SIGKILLed while backend0 streams a 100 MB body.
// Its eBPF programs and pinned maps keep steering: backend0 finishes the
// response and, unable to give the connection back, closes it (FIN). A
// restarted frontend reconciles: backend0 no longer holds the flow, so the
// stale REDIRECT goes.
TEST_F(HandoffFaults, FrontendKilledAfterGoTargetFinishesAndCloses) {
  UP();
  std::optional<RawGet> get;
  {
    ASSERT_OK_AND(auto g, RawGet::start(ns("client"), lab_->service_ip(), 80, "/data/" + std::to_string(kBigSize) + "/91"));
    get.emplace(std::move(g));
  }
  ASSERT_OK(get->read_body_until(1000000, 10s));
  EXPECT_EQ(get->now().served_by, "backend0");
  KILL("frontend");
  auto out = get->finish(10s, 5s);
  EXPECT_FALSE(out.stalled) << "the client hung after " << out.body.size() << " body bytes";
  EXPECT_TRUE(out.complete) << "the target did not finish the response: " << out.body.size() << " of " << kBigSize;
  EXPECT_TRUE(body_ok(out.body, 91)) << "wrong bytes after the frontend died";
  // design.md: "unable to return the connection, closes it gracefully" (else
  // the next request on it would be served without the frontend's authorization).
  ASSERT_TRUE(out.closed) << "the target did not close the connection it could not give back\n"
                          << join(Records("backend0"));
  EXPECT_FALSE(out.reset) << "closed with a reset instead of a FIN";
  auto be = Records("backend0");
  EXPECT_EQ(count_prefix(be, "record give_back returned"), 0u) << join(be);
  get.reset();  // the client closes its side too

  // The restarted frontend adopts its pinned maps, still holding the REDIRECT.
  EXPECT_EQ(WaitEntries("frontend", 1, 1s), 1u);
  RESTART("frontend");
  ASSERT_OK(restarted_["frontend"]->signal(SIGUSR1));
  ASSERT_OK_AND(auto line, restarted_["frontend"]->wait_line("reconciled ", 5000));
  EXPECT_EQ(line, "reconciled held=0 stale=1 unknown=0");
  ExpectNoEntries({"frontend", "backend0"});  // backend0: after its close linger (2 s)
  ExpectNoFlowSockets({"frontend", "backend0", "client"}, 10s);
  // The restarted frontend serves and offloads again.
  CONNECT(client);
  std::string by;
  for (int i = 0; i < 20 && by != "backend0"; ++i) {
    by = Get(*client, 100000, 95 + i);
    if (by != "backend0") std::this_thread::sleep_for(200ms);
  }
  EXPECT_EQ(by, "backend0");
}


}  // namespace
}  // namespace xo::handoff::faulttest
