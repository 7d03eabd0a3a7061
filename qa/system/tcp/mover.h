// Mover: moves a live test-server connection from one lab host to another.
//
// block → capture → encode → decode → (prepare) restore on the other host →
// close the repair-mode original → deliver → unblock → adopt. The snapshot
// crosses as common/tcp's encode()/decode() bytes and the server's position
// as ResumeState bytes, exactly as they would between processes. Packet
// steering goes through lab::FlowDiverter only.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "common/base/fd.h"
#include "common/base/result.h"
#include "qa/lab/flow_diverter.h"
#include "qa/lab/lab.h"
#include "qa/server/resume_state.h"
#include "qa/server/server.h"

namespace xo::tcpmove {

// A test server running inside a lab host.
struct HostServer {
  std::string host;  // "frontend", "backend0"
  std::string ns;
  testserver::Server* server = nullptr;
};

struct MoveRecord {
  std::string from, to;
  lab::Flow flow;
  bool ok = false;
  std::string error;              // why the move failed (the origin kept the connection)
  int tcp_state = 0;              // captured TCP state (linux/tcp.h numbering)
  size_t unacked = 0, unsent = 0; // send queue at capture
  size_t recv_queue = 0;          // kernel receive queue at capture
  size_t unread = 0;              // server-side buffered bytes (ResumeState.unread)
  size_t snapshot_bytes = 0;      // encoded snapshot size
  std::string owed;               // what the new owner continues with
  // Microseconds of each step, and the whole move.
  double us_block = 0, us_capture = 0, us_encode = 0, us_decode = 0, us_restore = 0, us_deliver = 0,
         us_total = 0;
  std::chrono::system_clock::time_point at;
};

class Mover {
 public:
  explicit Mover(lab::FlowDiverter& diverter) : diverter_(diverter) {}

  // Moves `fd` (which the `from` server let go of) to `to`. On failure the
  // connection stays at `from` (its socket resumed, flow unblocked) and is
  // adopted there again; the record says why.
  MoveRecord move(UniqueFd fd, testserver::ResumeState state, const HostServer& from, const HostServer& to);

  std::vector<MoveRecord> records() const;
  lab::FlowDiverter& diverter() { return diverter_; }

 private:
  Result<UniqueFd> restore_at(const HostServer& to, std::span<const uint8_t> snapshot_bytes, MoveRecord& rec);

  lab::FlowDiverter& diverter_;
  mutable std::mutex mu_;
  std::vector<MoveRecord> records_;
};

}  // namespace xo::tcpmove
