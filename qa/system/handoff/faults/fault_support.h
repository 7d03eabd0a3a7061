// What the handoff fault tests need beyond qa/system/handoff's OffloadLab:
// find (signal, restart) the xo-testserver running in a lab host, cut a
// host's control channel at a chosen point with nft, and read an HTTP
// response byte by byte from a client namespace with bounded waits.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "common/base/fd.h"
#include "common/base/result.h"

namespace xo::handoff::faulttest {

// Processes whose network namespace is /run/netns/NS (like `ip netns pids`).
Result<std::vector<pid_t>> pids_in_netns(const std::string& ns);
// The one xo-testserver process in that namespace.
Result<pid_t> server_pid(const std::string& ns);
// Its command line.
Result<std::vector<std::string>> cmdline_of(pid_t pid);
// The value after `flag` in argv ("" when absent).
std::string flag_value(const std::vector<std::string>& argv, const std::string& flag);
bool alive(pid_t pid);

// An nft table ("inet <table>") in a host's namespace, removed on destruction.
class NftRules {
 public:
  // `body`: the table's contents (sets and chains) in nft syntax.
  static Result<NftRules> install(const std::string& ns, const std::string& body,
                                  const std::string& table = "xo_fault");
  NftRules(NftRules&& o) noexcept : ns_(std::move(o.ns_)), table_(std::move(o.table_)) { o.ns_.clear(); }
  NftRules& operator=(NftRules&&) = delete;
  ~NftRules();
  Status remove();
  // `nft list table` output (counters), for diagnostics.
  std::string listing() const;

 private:
  NftRules(std::string ns, std::string table) : ns_(std::move(ns)), table_(std::move(table)) {}
  std::string ns_, table_;
};

// The control connections established right now between this host (in
// `ns`) and `peer_ip`, on `port` at either end (both PeerClients), as
// (local port, remote port) pairs.
Result<std::vector<std::pair<uint16_t, uint16_t>>> control_connections(const std::string& ns, const std::string& peer_ip,
                                                                       uint16_t port);

// Rules that cut those connections (and only those: a fresh connection, e.g.
// QUERY_COMMITTED, has other ports):
//   let_one_in: the first data segment (PSH) from the peer passes (the
//               OFFER), every later one is dropped (GO, ABORT, DONE, ...);
//   drop_out:   every data segment this host sends on them is dropped
//               (READY); ACKs pass, so a large OFFER still completes.
// let_one_in lets exactly one segment through: an OFFER must fit in one
// (true for a connection with nothing in flight: a few hundred bytes).
std::string control_cut_rules(const std::string& peer_ip, const std::vector<std::pair<uint16_t, uint16_t>>& conns,
                              bool let_one_in, bool drop_out);
// Rules that drop every data segment (PSH) the peer sends on those connections.
std::string control_drop_in_rules(const std::string& peer_ip, const std::vector<std::pair<uint16_t, uint16_t>>& conns);

// One HTTP/1.1 GET over a fresh connection from a client namespace, read
// with bounded waits. The caller may stop after `pause_after` body bytes
// (to kill something mid-response), then continue().
class RawGet {
 public:
  struct Outcome {
    int status = 0;
    std::string served_by;        // X-Served-By
    uint64_t content_length = 0;
    std::string body;             // as received
    bool complete = false;        // the whole body arrived
    bool closed = false;          // the connection ended (EOF or reset)
    bool reset = false;           // ... with ECONNRESET
    bool stalled = false;         // no byte for `stall` — a hang
  };
  static Result<RawGet> start(const std::string& ns, const std::string& ip, uint16_t port, const std::string& path);
  // Read until `n` body bytes arrived (or the response ended).
  Status read_body_until(uint64_t n, std::chrono::milliseconds stall);
  // Read the rest of the body, then wait up to `eof_wait` for the connection
  // to end (set `closed`); a pause longer than `stall` sets `stalled`.
  Outcome finish(std::chrono::milliseconds stall, std::chrono::milliseconds eof_wait);
  const Outcome& now() const { return out_; }
  int fd() const { return fd_.get(); }

 private:
  explicit RawGet(UniqueFd fd) : fd_(std::move(fd)) {}
  // One recv with a poll timeout; false on timeout.
  Result<bool> pump(std::chrono::milliseconds wait);
  Status parse_head();

  UniqueFd fd_;
  std::string buf_;
  bool head_done_ = false;
  Outcome out_;
};

}  // namespace xo::handoff::faulttest
