#include "qa/server/offload.h"

#include <cstdio>

#include "common/tls/record_layer.h"

namespace xo::testserver {

namespace node = handoff::node;

Result<OffloadRule> parse_offload_rule(const std::string& text) {
  auto eq = text.rfind('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size())
    return error("offload rule must be PREFIX=HOST: " + text, EINVAL);
  return OffloadRule{text.substr(0, eq), text.substr(eq + 1)};
}

void OffloadHook::attach(Server* http, Server* https) {
  http_ = http;
  https_ = https;
  node_.set_accept_handler([this](node::AcceptedConnection c) { on_accepted(std::move(c)); });
  node_.set_return_handler([this](node::ReturnedConnection c) { on_returned(std::move(c)); });
  node_.set_ended_handler([this](const node::FlowInfo& flow, const std::string&) { on_ended(flow); });
}

const OffloadRule* OffloadHook::rule_for(const std::string& target) const {
  for (const auto& r : rules_)
    if (target.compare(0, r.prefix.size(), r.prefix) == 0) return &r;
  return nullptr;
}

bool OffloadHook::hand_over_before_response(const RequestInfo& info) {
  return info.method == "GET" && rule_for(info.target) != nullptr;
}

bool OffloadHook::hand_over_after_response(int fd, const RequestInfo&) {
  std::lock_guard lock(mu_);
  return accepted_.count(fd) != 0;
}

void OffloadHook::take(UniqueFd fd, ResumeState state) {
  std::optional<node::AcceptedConnection> meta;
  {
    std::lock_guard lock(mu_);
    if (auto it = accepted_.find(fd.get()); it != accepted_.end()) {
      meta = std::move(it->second);
      accepted_.erase(it);
    }
  }
  if (meta) return give_back(std::move(fd), std::move(state), std::move(*meta));
  const OffloadRule* rule = state.owed ? rule_for(state.owed->target) : nullptr;
  if (!rule) return adopt(std::move(fd), std::move(state), !state.stream.empty());  // cannot happen; serve here
  offer(std::move(fd), std::move(state), rule->host);
}

void OffloadHook::closed(int fd) {
  std::unique_lock lock(mu_);
  auto it = accepted_.find(fd);
  if (it == accepted_.end()) return;
  node::AcceptedConnection meta = std::move(it->second);  // its socket is the server's (closed by it)
  accepted_.erase(it);
  ++stats_.closed_here;
  lock.unlock();
  node_.close(std::move(meta));
}

void OffloadHook::adopt(UniqueFd fd, ResumeState state, bool tls) {
  Server* server = tls ? https_ : http_;
  if (!server) {
    std::fprintf(stderr, "testserver offload: no %s server to adopt a connection\n", tls ? "HTTPS" : "HTTP");
    return;  // fd closes
  }
  server->adopt(std::move(fd), std::move(state));
}

void OffloadHook::offer(UniqueFd fd, ResumeState state, const std::string& host) {
  node::OfferRequest req;
  req.conn.socket = std::move(fd);
  if (!state.stream.empty()) {
    auto tls = tls::decode(state.stream);
    if (!tls.ok()) {
      std::fprintf(stderr, "testserver offload: %s\n", tls.error().to_string().c_str());
      return;
    }
    req.conn.tls = std::move(*tls);
  }
  req.conn.unread.assign(state.unread.begin(), state.unread.end());
  // The response plan: the owed request and the request count, as the
  // target's server continues from them.
  ResumeState plan;
  plan.owed = state.owed;
  plan.requests = state.requests;
  auto plan_bytes = encode(plan);
  req.payload.assign(plan_bytes.begin(), plan_bytes.end());
  req.target_host = host;
  {
    std::lock_guard lock(mu_);
    ++stats_.offered;
  }
  node_.offer(std::move(req), [this, state = std::move(state)](node::OfferResult r) mutable {
    std::unique_lock lock(mu_);
    switch (r.outcome) {
      case node::OfferOutcome::kOffloaded:
        ++stats_.offloaded;
        requests_by_flow_[r.flow.flow_id] = state.requests;
        return;
      case node::OfferOutcome::kServedLocally: {
        ++stats_.served_locally;
        lock.unlock();
        ResumeState here;
        here.owed = std::move(state.owed);
        here.requests = state.requests;
        here.unread.assign(r.conn.unread.begin(), r.conn.unread.end());
        const bool tls = r.conn.tls.has_value();
        if (tls) here.stream = tls::encode(*r.conn.tls);
        adopt(std::move(r.conn.socket), std::move(here), tls);
        return;
      }
      case node::OfferOutcome::kLost:
        ++stats_.lost;
        std::fprintf(stderr, "testserver offload: connection lost: %s\n", r.why ? r.why->to_string().c_str() : "?");
        return;
    }
  });
}

void OffloadHook::on_accepted(node::AcceptedConnection conn) {
  auto plan = decode_resume_state(
      std::span(reinterpret_cast<const uint8_t*>(conn.payload.data()), conn.payload.size()));
  if (!plan.ok()) {
    std::fprintf(stderr, "testserver offload: bad payload: %s\n", plan.error().to_string().c_str());
    return node_.close(std::move(conn));
  }
  ResumeState st = std::move(*plan);
  const bool tls = conn.tls.has_value();
  if (tls) st.stream = tls::encode(*conn.tls);
  UniqueFd fd = std::move(conn.socket);
  {
    std::lock_guard lock(mu_);
    ++stats_.accepted;
    conn.tls.reset();  // the server's stream owns the TLS state from here
    accepted_[fd.get()] = std::move(conn);
  }
  adopt(std::move(fd), std::move(st), tls);
}

void OffloadHook::give_back(UniqueFd fd, ResumeState state, node::AcceptedConnection meta) {
  meta.socket = std::move(fd);
  if (!state.stream.empty()) {
    auto tls = tls::decode(state.stream);
    if (!tls.ok()) {
      std::fprintf(stderr, "testserver offload: %s\n", tls.error().to_string().c_str());
      return node_.close(std::move(meta));
    }
    meta.tls = std::move(*tls);
  }
  std::string unread(state.unread.begin(), state.unread.end());
  node_.give_back(std::move(meta), std::move(unread), [this](node::GiveBackResult r) {
    std::unique_lock lock(mu_);
    switch (r.outcome) {
      case node::ReturnOutcome::kReturned: ++stats_.given_back; return;
      case node::ReturnOutcome::kKept: {
        // The frontend refused it or cannot be reached (e.g. its daemon
        // died): finish gracefully here — the response is complete, so a
        // close after it is ordinary keep-alive behaviour (design.md).
        ++stats_.kept;
        lock.unlock();
        std::fprintf(stderr, "testserver offload: give back failed (%s): closing here\n",
                     r.why ? r.why->to_string().c_str() : "?");
        if (r.conn.tls) {
          if (auto layer = tls::make_best_layer(r.conn.socket.get(), std::move(*r.conn.tls)); layer.ok())
            (void)(*layer)->close_notify();
          r.conn.tls.reset();
        }
        node_.close(std::move(r.conn));
        return;
      }
      default:
        ++stats_.dropped;
        std::fprintf(stderr, "testserver offload: give back %s: %s\n", node::return_outcome_name(r.outcome),
                     r.why ? r.why->to_string().c_str() : "?");
        return;
    }
  });
}

void OffloadHook::on_returned(node::ReturnedConnection conn) {
  ResumeState st;
  {
    std::lock_guard lock(mu_);
    ++stats_.taken_back;
    if (auto it = requests_by_flow_.find(conn.flow.flow_id); it != requests_by_flow_.end()) {
      st.requests = it->second;
      requests_by_flow_.erase(it);
    }
  }
  st.unread.assign(conn.unread.begin(), conn.unread.end());
  const bool tls = conn.tls.has_value();
  if (tls) st.stream = tls::encode(*conn.tls);
  adopt(std::move(conn.socket), std::move(st), tls);
}

void OffloadHook::on_ended(const node::FlowInfo& flow) {
  std::lock_guard lock(mu_);
  ++stats_.ended_at_target;
  requests_by_flow_.erase(flow.flow_id);  // it will not come back
}

OffloadHook::Stats OffloadHook::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace xo::testserver
