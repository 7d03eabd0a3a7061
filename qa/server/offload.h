// Offload for the test server, using common/handoff/node exactly as the
// daemons do (xo-rgw offers, xo-osd accepts and gives back):
//
//   frontend: a GET whose target starts with a rule's prefix is offered to
//             the rule's host, with the owed request as the payload (the
//             "response plan"); refused / failed → served here. A connection
//             given back is adopted and served here again.
//   target:   an accepted connection is adopted (HTTP or HTTPS server, by its
//             TLS state), answers the owed request, and right after that
//             response is given back to its frontend; if that fails (refused,
//             frontend unreachable) it is closed gracefully here.
//
// One OffloadHook serves both roles (a host may be both).
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "common/handoff/node/node.h"
#include "qa/server/server.h"

namespace xo::testserver {

struct OffloadRule {
  std::string prefix;  // request target prefix, e.g. "/data/"
  std::string host;    // node host id to offload to
};
// "PREFIX=HOST"
Result<OffloadRule> parse_offload_rule(const std::string& text);

class OffloadHook final : public Hook {
 public:
  OffloadHook(handoff::node::Node& node, std::vector<OffloadRule> rules) : node_(node), rules_(std::move(rules)) {}

  // The servers adopting connections: `http` for plain ones, `https` (may be
  // null) for TLS ones. Installs the node's accept and return handlers.
  void attach(Server* http, Server* https);

  bool hand_over_before_response(const RequestInfo& info) override;
  bool hand_over_after_response(int fd, const RequestInfo& info) override;
  void take(UniqueFd fd, ResumeState state) override;
  // An accepted connection that ends here (the client closed it while it
  // was offloaded): the Node drops its steering entries.
  void closed(int fd) override;

  struct Stats {
    uint64_t offered = 0, offloaded = 0, served_locally = 0, lost = 0;  // frontend
    uint64_t accepted = 0, given_back = 0, kept = 0, dropped = 0, closed_here = 0;  // target
    uint64_t taken_back = 0, ended_at_target = 0;                        // frontend
  };
  Stats stats() const;

 private:
  const OffloadRule* rule_for(const std::string& target) const;
  void adopt(UniqueFd fd, ResumeState state, bool tls);
  void offer(UniqueFd fd, ResumeState state, const std::string& host);
  void give_back(UniqueFd fd, ResumeState state, handoff::node::AcceptedConnection meta);
  void on_accepted(handoff::node::AcceptedConnection conn);
  void on_returned(handoff::node::ReturnedConnection conn);
  void on_ended(const handoff::node::FlowInfo& flow);

  handoff::node::Node& node_;
  std::vector<OffloadRule> rules_;
  Server* http_ = nullptr;
  Server* https_ = nullptr;
  mutable std::mutex mu_;
  // Target: connections accepted here, by fd while a server serves them
  // (the socket itself is with the server).
  std::map<int, handoff::node::AcceptedConnection> accepted_;
  // Frontend: requests read on each offloaded connection (X-Request-Seq
  // continues after the return).
  std::map<uint64_t, uint64_t> requests_by_flow_;
  Stats stats_;
};

}  // namespace xo::testserver
