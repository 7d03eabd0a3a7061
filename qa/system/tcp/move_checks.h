// The checks every move test ends with (qa/system/tcp and qa/system/tls):
// the client's wire saw traffic and no RST, no TCP connection is left on any
// lab host, and every move the Mover made succeeded.
#pragma once

#include <gtest/gtest.h>

#include <iostream>
#include <vector>

#include "qa/lab/lab.h"
#include "qa/lab/packet_counter.h"
#include "qa/lab/run.h"
#include "qa/lab/sockets.h"
#include "qa/system/tcp/mover.h"

namespace xo::tcpmove {

// Stops `counter` (may be null) and checks it; then waits for every host's
// connections to close. `expect_no_rst` = false for a test that makes the
// client reset on purpose (a corrupted TLS record).
inline void expect_clean_finish(const lab::Lab& lab, lab::PacketCounter* counter, bool expect_no_rst = true) {
  if (counter) {
    auto c = counter->stop();
    EXPECT_GT(c.tcp_in, 0u) << "the counter saw no traffic: it could not have seen an RST either";
    if (expect_no_rst) {
      EXPECT_EQ(c.rst_in, 0u) << "RSTs reached the client";
      EXPECT_EQ(c.rst_out, 0u) << "the client sent RSTs";
    }
    EXPECT_EQ(c.dropped, 0u) << "the wire counter lost frames; an RST may have gone unseen";
  }
  for (const char* host : {"frontend", "backend0", "client"}) {
    auto left = lab::wait_no_connections(lab.find(host)->ns);
    ASSERT_TRUE(left.ok()) << left.error().to_string();
    EXPECT_TRUE(left->empty()) << "sockets left on " << host << ":\n" << lab::to_string(*left);
    if (!left->empty()) {  // the kernel's view of what is stuck, for the report
      auto ss = lab::run_in(lab.find(host)->ns, {"ss", "-tine"});
      if (ss.ok()) std::cerr << ss->out;
    }
  }
}

// The Mover made exactly `expected` moves and every one succeeded; returns them.
inline std::vector<MoveRecord> expect_moves_ok(const Mover& mover, size_t expected) {
  auto recs = mover.records();
  EXPECT_EQ(recs.size(), expected);
  for (const auto& r : recs) EXPECT_TRUE(r.ok) << r.from << " -> " << r.to << ": " << r.error;
  return recs;
}

}  // namespace xo::tcpmove
