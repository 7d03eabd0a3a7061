// Faults before the commit point and on the way (issue 5): the target
// refuses (its steering map is full), the control channel is cut between
// OFFER and READY or between READY and GO (nft), the target is not silent
// before GO, and packets of the client's flow are dropped during handoffs
// (bpf/fault.bpf.c). What the client sees: a complete, correct response,
// from whichever host; what is left behind: nothing.
#include "qa/system/handoff/faults/faults_fixture.h"

namespace xo::handoff::faulttest {
namespace {

// ---- the target refuses ------------------------------------------------------

// backend0's flow map is full (65,536 entries of a stranger): its BLOCK
// insert fails, it answers REFUSE, and the frontend serves the request itself.
// Once there is room again the same connection is offloaded.
TEST_F(HandoffFaults, TargetWithAFullSteeringTableRefusesAndTheFrontendServes) {
  UP();
  ASSERT_OK_AND(auto table, OpenTable("backend0"));
  const uint32_t inserted = FillTargetTable(*table);
  if (HasFailure()) return;

  CONNECT(client);
  EXPECT_EQ(Get(*client, 1000000, 11), "frontend") << "a refused offer must be served by the frontend";
  auto fe = RecordsWith("frontend", "record offer served-locally", 1);
  EXPECT_EQ(count_prefix(fe, "record offer served-locally"), 1u) << join(fe);
  EXPECT_EQ(count_prefix(fe, "record offer offloaded"), 0u) << join(fe);
  // The refusal left nothing: only the stranger's entries on backend0, none on the frontend.
  EXPECT_EQ(WaitEntries("backend0", inserted, 1s), inserted);
  EXPECT_EQ(WaitEntries("frontend", 0, 1s), 0u);
  EXPECT_TRUE(FlowSockets("backend0").empty()) << lab::to_string(FlowSockets("backend0"));

  for (uint32_t i = 0; i < inserted; ++i) ASSERT_OK(table->remove(JunkKey(i)));
  EXPECT_EQ(Get(*client, 1000000, 12), "backend0") << "with room again the connection must be offloaded";
  client.reset();  // close
  ExpectNoFlowSockets({"frontend", "backend0", "client"});
  ExpectNoEntries({"frontend", "backend0"});
  ExpectNoRsts();
  ASSERT_OK_AND(auto stats, lab_->stop());
  EXPECT_EQ(stats["frontend"]["served_locally"], 1u);
  EXPECT_EQ(stats["frontend"]["offloaded"], 1u);
  EXPECT_EQ(stats["frontend"]["taken_back"], 1u);
  EXPECT_EQ(stats["backend0"]["refusals"], 1u);
  EXPECT_EQ(stats["backend0"]["accepted"], 1u);
  for (const char* h : {"frontend", "backend0"}) {
    EXPECT_EQ(stats[h]["flows_out"], 0u) << h;
    EXPECT_EQ(stats[h]["flows_in"], 0u) << h;
    EXPECT_EQ(stats[h]["steer_errors"], 0u) << h;
  }
}

// The same over HTTPS: two refused offers on one TLS connection. After the
// first rollback the frontend continues on XO's record layer from the state
// it froze for the offer; the second offer freezes that layer again.
TEST_F(HandoffFaults, TargetRefusesTwiceOnOneHttpsConnection) {
  UP();
  ASSERT_OK_AND(auto table, OpenTable("backend0"));
  const uint32_t inserted = FillTargetTable(*table);
  if (HasFailure()) return;
  auto by = CurlHttps({{1000000, 15}, {150000, 16}});
  EXPECT_EQ(by, (std::vector<std::string>{"frontend", "frontend"}));
  auto fe = RecordsWith("frontend", "record offer served-locally", 2);
  EXPECT_EQ(count_prefix(fe, "record offer served-locally"), 2u) << join(fe);
  for (uint32_t i = 0; i < inserted; ++i) ASSERT_OK(table->remove(JunkKey(i)));
  ExpectNoFlowSockets({"frontend", "backend0", "client"});
  ExpectNoEntries({"frontend", "backend0"});
  ExpectNoRsts();
  ASSERT_OK_AND(auto stats, lab_->stop());
  EXPECT_EQ(stats["frontend"]["served_locally"], 2u);
  EXPECT_EQ(stats["frontend"]["lost"], 0u);
  EXPECT_EQ(stats["backend0"]["refusals"], 2u);
}


// ---- the control channel is cut ---------------------------------------------------

// After the OFFER reached backend0 the channel is cut both ways (nft on
// backend0: its READY is dropped, every later data segment from the
// frontend too, so the ABORT is lost). The frontend times out (200 ms)
// and serves; backend0 gets no GO, asks the frontend over a fresh connection
// (QUERY_COMMITTED), hears "not committed" and drops its copy silently.
TEST_F(HandoffFaults, ChannelCutBetweenOfferAndReady) {
  UP();
  CONNECT(client);
  CUT(cut, /*let_one_in=*/true, /*drop_out=*/true);
  EXPECT_EQ(Get(*client, 1000000, 41), "frontend");
  auto fe = RecordsWith("frontend", "record offer served-locally", 1);
  EXPECT_EQ(count_prefix(fe, "record offer served-locally"), 1u) << join(fe);
  // backend0 prepared the flow (BLOCK + SNAT) and must discard it after
  // ready timeout + GO slack (~1.2 s) + the commit query.
  std::vector<std::string> be;
  for (int i = 0; i < 100 && count_prefix(be, "record discard") == 0; ++i) {
    std::this_thread::sleep_for(50ms);
    be = Records("backend0");
  }
  EXPECT_EQ(count_prefix(be, "record discard"), 1u) << "backend0 did not drop the uncommitted flow:\n"
                                                     << join(be) << cut.listing();
  EXPECT_EQ(count_prefix(be, "record accept"), 0u) << join(be);
  ExpectNoEntries({"frontend", "backend0"});  // a discarded flow's BLOCK lingers (close_linger, 2 s)
  EXPECT_TRUE(FlowSockets("backend0").empty()) << lab::to_string(FlowSockets("backend0"));
  ASSERT_OK(cut.remove());

  // The connection is still the frontend's and keeps working; once the
  // channel has recovered (TCP retransmits what was dropped) offloads resume.
  std::string by;
  for (int i = 0; i < 20 && by != "backend0"; ++i) {
    by = Get(*client, 100000, 50 + i);
    if (by != "backend0") std::this_thread::sleep_for(300ms);
  }
  EXPECT_EQ(by, "backend0") << "no offload after the channel came back";
  client.reset();
  ExpectNoFlowSockets({"frontend", "backend0", "client"});
  ExpectNoEntries({"frontend", "backend0"});
  ExpectNoRsts();
  ASSERT_OK_AND(auto stats, lab_->stop());
  EXPECT_EQ(stats["frontend"]["lost"], 0u);
  EXPECT_GE(stats["frontend"]["rollbacks"], 1u);
  EXPECT_GE(stats["backend0"]["discarded"], 1u);
  for (const char* h : {"frontend", "backend0"}) {
    EXPECT_EQ(stats[h]["flows_out"], 0u) << h;
    EXPECT_EQ(stats[h]["flows_in"], 0u) << h;
  }
}

// "The target writes nothing before GO" (design.md), checked where it
// counts: the packets backend0's SNAT entry for the flow rewrote before the
// flow was committed. The frontend freezes with a response unacknowledged
// (two pipelined GETs in one segment, a local 8 kB one and an offloaded one;
// the client's pure ACKs are held back by nft until backend0 prepared the
// flow), so the snapshot carries those bytes. backend0's READY is dropped;
// once it has prepared, everything the frontend sends on the channel is
// dropped too (the ABORT), so backend0 holds the prepared flow until its GO
// timeout (~1.2 s) and the commit query. Meanwhile the frontend serves the
// connection; backend0 must not transmit on it — not even the right bytes
// again (its restored socket retransmits the unacknowledged ones after the
// initial RTO, through the SNAT).
TEST_F(HandoffFaults, TargetIsSilentBeforeGo) {
  UP();
  CONNECT(client);
  ASSERT_OK_AND(auto local, steer::test::endpoint_of(client->fd(), false));
  std::optional<NftRules> hold_acks;
  {
    ASSERT_OK_AND(auto rules, NftRules::install(ns("client"),
                                                "  chain out {\n    type filter hook output priority -5; policy accept;\n"
                                                "    ip daddr " + lab_->service_ip() + " tcp dport 80 tcp sport " +
                                                    std::to_string(local.port) +
                                                    " tcp flags & (fin | syn | rst | psh) == 0 counter drop\n  }"));
    hold_acks.emplace(std::move(rules));
  }
  CUT(cut, /*let_one_in=*/false, /*drop_out=*/true);
  ASSERT_OK_AND(auto table, OpenTable("backend0"));
  ASSERT_OK(client->send_raw("GET /data/8000/121 HTTP/1.1\r\nHost: xo\r\n\r\n"
                             "GET /data/100000/122 HTTP/1.1\r\nHost: xo\r\n\r\n"));
  // Prepared = backend0 holds entries for the flow (ingress BLOCK, and an
  // egress BLOCK or SNAT). What reached the wire = what a SNAT entry rewrote.
  uint64_t snat_packets = 0;
  bool prepared = false;
  std::optional<NftRules> no_abort;
  std::thread watcher([&] {
    for (int i = 0; i < 1000 && count_prefix(Records("backend0"), "record discard") == 0; ++i) {
      auto entries = table->list();
      if (!entries.ok()) {
        ADD_FAILURE() << entries.error().to_string();
        break;
      }
      for (const auto& e : *entries) {
        prepared = true;
        if (e.entry.action == steer::Action::kSnat) snat_packets = std::max(snat_packets, e.stats.packets);
      }
      if (prepared && !no_abort) {
        auto drop = NftRules::install(ns("backend0"), control_drop_in_rules(lab_->lab().frontend().ip, *conns_cut),
                                      "xo_fault_in");
        if (!drop.ok()) {
          ADD_FAILURE() << drop.error().to_string();
          break;
        }
        no_abort.emplace(std::move(*drop));
        (void)hold_acks->remove();
      }
      std::this_thread::sleep_for(2ms);
    }
    (void)hold_acks->remove();  // in any case: the client's ACKs flow again
  });
  struct Join {
    std::thread& t;
    ~Join() {
      if (t.joinable()) t.join();
    }
  } join_watcher{watcher};
  for (auto [size, seed] : {std::pair{8000u, 121u}, std::pair{100000u, 122u}}) {
    auto r = client->read_response();
    ASSERT_TRUE(r.ok()) << r.error().to_string();
    EXPECT_EQ(r->body.size(), size);
    EXPECT_TRUE(body_ok(r->body, seed)) << "wrong bytes in /data/" << size;
    EXPECT_EQ(r->header("x-served-by"), "frontend");
  }
  watcher.join();
  EXPECT_TRUE(prepared) << "never saw backend0 prepare the flow\n" << join(Records("frontend"));
  EXPECT_EQ(count_prefix(Records("backend0"), "record discard"), 1u) << join(Records("backend0"));
  EXPECT_EQ(snat_packets, 0u) << "backend0 sent " << snat_packets
                              << " packets on the client's connection before GO, while the frontend owned it";
  no_abort.reset();
  hold_acks.reset();
  ASSERT_OK(cut.remove());
  client.reset();
  ExpectNoFlowSockets({"frontend", "backend0", "client"});
  ExpectNoEntries({"frontend", "backend0"});
}

// READY gets through, GO does not (nft on backend0 drops every data segment
// after the OFFER on that connection). The frontend committed; backend0 asks
// over a fresh connection, hears "committed" and serves: the client gets the
// whole response from backend0, late but correct, and it comes back.
TEST_F(HandoffFaults, ChannelCutBetweenReadyAndGo) {
  UP();
  CONNECT(client);
  CUT(cut, /*let_one_in=*/true, /*drop_out=*/false);
  // The cut goes as soon as backend0 serves: the RETURN travels on the same
  // connection, and its DONE must not wait behind GO's retransmissions for
  // longer than the DONE timeout.
  std::string listing;
  std::thread healer([&] {
    for (int i = 0; i < 200 && count_prefix(Records("backend0"), "record accept") == 0; ++i)
      std::this_thread::sleep_for(10ms);
    listing = cut.listing();
    (void)cut.remove();
  });
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(Get(*client, 1000000, 61), "backend0");
  const auto took = std::chrono::steady_clock::now() - t0;
  healer.join();
  EXPECT_GT(took, 1s) << "served before the GO timeout: was GO really lost?\n" << listing;
  auto fe = RecordsWith("frontend", "record offer offloaded", 1);
  EXPECT_EQ(count_prefix(fe, "record offer offloaded"), 1u) << join(fe);
  auto be = RecordsWith("backend0", "record accept", 1);
  EXPECT_EQ(count_prefix(be, "record accept"), 1u) << join(be);
  // The connection came back to the frontend (the RETURN uses backend0's
  // own connection, which was never cut).
  for (int i = 0; i < 100 && count_prefix(Records("frontend"), "record take_back") == 0; ++i)
    std::this_thread::sleep_for(50ms);
  EXPECT_EQ(count_prefix(Records("frontend"), "record take_back"), 1u) << join(Records("frontend"));
  EXPECT_EQ(Get(*client, 20000, 62), "frontend");  // not offloaded: the frontend's own
  client.reset();
  ExpectNoFlowSockets({"frontend", "backend0", "client"});
  ExpectNoEntries({"frontend", "backend0"});
  ExpectNoRsts();
  ASSERT_OK_AND(auto stats, lab_->stop());
  EXPECT_EQ(stats["frontend"]["offloaded"], 1u);
  EXPECT_EQ(stats["frontend"]["taken_back"], 1u);
  // The RETURN rides the cut connection too: its DONE may still sit behind
  // GO's retransmissions when the DONE timeout fires. Then backend0 drops its
  // copy (never two senders) while the frontend already took it back — both
  // are correct; the next request above proves the frontend has it.
  EXPECT_EQ(stats["backend0"]["given_back"] + stats["backend0"]["dropped"], 1u);
  for (const char* h : {"frontend", "backend0"}) {
    EXPECT_EQ(stats[h]["flows_out"], 0u) << h;
    EXPECT_EQ(stats[h]["flows_in"], 0u) << h;
  }
}

// The channel cut between OFFER and READY over HTTPS: the frontend rolls the
// TLS connection back and answers, then answers the next (not offloaded)
// request on the same connection from XO's record layer.
TEST_F(HandoffFaults, ChannelCutBetweenOfferAndReadyHttps) {
  UP();
  CUT(cut, /*let_one_in=*/true, /*drop_out=*/true);
  auto by = CurlHttps({{1000000, 101}, {20000, 102}});
  EXPECT_EQ(by, (std::vector<std::string>{"frontend", "frontend"}));
  std::vector<std::string> be;
  for (int i = 0; i < 100 && count_prefix(be, "record discard") == 0; ++i) {
    std::this_thread::sleep_for(50ms);
    be = Records("backend0");
  }
  EXPECT_EQ(count_prefix(be, "record discard"), 1u) << join(be) << cut.listing();
  EXPECT_EQ(count_prefix(be, "record accept"), 0u) << join(be);
  ASSERT_OK(cut.remove());
  ExpectNoFlowSockets({"frontend", "backend0", "client"});
  ExpectNoEntries({"frontend", "backend0"});
  // An RST here came from the client's closed socket answering a segment
  // backend0's prepared socket retransmitted (the TLS session tickets,
  // unacknowledged at freeze) through its SNAT before GO; see
  // TargetIsSilentBeforeGo.
  ExpectNoRsts();
}

// The channel cut between READY and GO over HTTPS: backend0 serves after
// QUERY_COMMITTED on the restored TLS state, gives the connection back, and
// the frontend answers the next request on its record layer.
TEST_F(HandoffFaults, ChannelCutBetweenReadyAndGoHttps) {
  UP();
  CUT(cut, /*let_one_in=*/true, /*drop_out=*/false);
  std::string listing;
  std::thread healer([&] {  // as in ChannelCutBetweenReadyAndGo
    for (int i = 0; i < 300 && count_prefix(Records("backend0"), "record accept") == 0; ++i)
      std::this_thread::sleep_for(10ms);
    listing = cut.listing();
    (void)cut.remove();
  });
  const auto t0 = std::chrono::steady_clock::now();
  auto by = CurlHttps({{1000000, 111}, {20000, 112}});
  const auto took = std::chrono::steady_clock::now() - t0;
  healer.join();
  EXPECT_EQ(by, (std::vector<std::string>{"backend0", "frontend"}));
  EXPECT_GT(took, 1s) << "served before the GO timeout: was GO really lost?\n" << listing;
  auto fe = RecordsWith("frontend", "record offer offloaded", 1);
  EXPECT_EQ(count_prefix(fe, "record offer offloaded"), 1u) << join(fe);
  ExpectNoFlowSockets({"frontend", "backend0", "client"});
  ExpectNoEntries({"frontend", "backend0"});
  ExpectNoRsts();
  ASSERT_OK_AND(auto stats, lab_->stop());
  EXPECT_EQ(stats["frontend"]["taken_back"], 1u);
  EXPECT_EQ(stats["backend0"]["given_back"] + stats["backend0"]["dropped"], 1u);
  for (const char* h : {"frontend", "backend0"}) {
    EXPECT_EQ(stats[h]["flows_out"], 0u) << h;
    EXPECT_EQ(stats[h]["flows_in"], 0u) << h;
  }
}


// ---- packets of the flow dropped during handoffs -------------------------------------

// The fault-injection program on the client's NIC drops ~6% of the flow's
// packets both ways while eight 150 kB GETs are offloaded and returned on one
// connection. TCP recovers; every byte is right; nothing is left behind.
TEST_F(HandoffFaults, PacketsOfTheFlowDroppedDuringHandoffs) {
  UP();
  CONNECT(client);
  ASSERT_OK_AND(auto local, steer::test::endpoint_of(client->fd(), false));
  ASSERT_OK_AND(auto svc, steer::IpAddr::parse(lab_->service_ip()));
  const steer::FlowKey out{local.addr, local.port, svc, 80};
  const steer::FlowKey in{svc, 80, local.addr, local.port};
  InjectorsIn injectors{ns("client")};
  auto& drop_in = injectors.ingress;
  auto& drop_out = injectors.egress;
  {
    ASSERT_OK_AND(auto scope, lab::NetnsScope::enter(ns("client")));
    const int ifindex = steer::test::ifindex_in(ns("client"), "eth0");
    ASSERT_GT(ifindex, 0);
    ASSERT_OK_AND(drop_in, steer::BpfFaultInjector::attach(ifindex, true));
    ASSERT_OK_AND(drop_out, steer::BpfFaultInjector::attach(ifindex, false));
  }
  for (auto [inj, key] : {std::pair{drop_in.get(), in}, std::pair{drop_out.get(), out}}) {
    xo_fault_config cfg{};
    cfg.key = steer::to_bpf_key(key);
    cfg.mode = XO_FAULT_FRACTION;
    cfg.threshold = 0xffffffffu / 16;  // 6%
    ASSERT_OK(inj->configure(cfg));
  }
  int offloaded = 0;
  for (int i = 0; i < 8; ++i) offloaded += Get(*client, 150000, 70 + i) == "backend0";
  ASSERT_OK_AND(auto st_in, drop_in->stats());
  ASSERT_OK_AND(auto st_out, drop_out->stats());
  EXPECT_GT(st_in.dropped, 0u) << "nothing was dropped towards the client (matched " << st_in.matched << ")";
  EXPECT_GT(st_out.dropped, 0u) << "nothing was dropped from the client (matched " << st_out.matched << ")";
  std::printf("dropped %llu of %llu packets to the client, %llu of %llu from it; %d of 8 offloaded\n",
              static_cast<unsigned long long>(st_in.dropped), static_cast<unsigned long long>(st_in.matched),
              static_cast<unsigned long long>(st_out.dropped), static_cast<unsigned long long>(st_out.matched),
              offloaded);
  EXPECT_GE(offloaded, 1) << "no handoff happened under loss: " << join(Records("frontend"));
  injectors.detach();
  client.reset();
  ExpectNoFlowSockets({"frontend", "backend0", "client"});
  ExpectNoEntries({"frontend", "backend0"});
  counter_->stop();  // RSTs are not expected either, but a dropped FIN may legitimately end in one
  ASSERT_OK_AND(auto stats, lab_->stop());
  EXPECT_EQ(stats["frontend"]["lost"], 0u);
  EXPECT_EQ(stats["frontend"]["offloaded"] + stats["frontend"]["served_locally"], 8u);
  EXPECT_EQ(stats["frontend"]["offloaded"], static_cast<uint64_t>(offloaded));
  EXPECT_EQ(stats["frontend"]["taken_back"], stats["frontend"]["offloaded"]);
  EXPECT_EQ(stats["backend0"]["dropped"], 0u);
  for (const char* h : {"frontend", "backend0"}) {
    EXPECT_EQ(stats[h]["flows_out"], 0u) << h;
    EXPECT_EQ(stats[h]["flows_in"], 0u) << h;
  }
}


}  // namespace
}  // namespace xo::handoff::faulttest
