// CommitQuery over a fresh control connection (design.md: "a target that does
// not get GO in time asks the origin over a fresh connection"): the old one
// may be the very thing that failed. One PeerClient per question, stopped
// when the answer (or the deadline) arrives.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <optional>

#include "common/handoff/protocol/ports.h"

namespace xo::handoff::protocol {

class ChannelCommitQuery final : public CommitQuery {
 public:
  // Where a host's control server listens; nullopt: unknown host.
  using Resolve = std::function<std::optional<boost::asio::ip::tcp::endpoint>(const std::string& host_id)>;

  // `tls` is this host's Role::kClient context. `deadline` bounds the whole
  // question: connect, handshake, answer.
  ChannelCommitQuery(boost::asio::io_context& io, std::shared_ptr<boost::asio::ssl::context> tls, Resolve resolve,
                     std::chrono::milliseconds deadline = std::chrono::milliseconds(1000));

  void query(const std::string& origin_host, uint64_t flow_id, std::function<void(Result<bool>)> done) override;

 private:
  boost::asio::io_context& io_;
  std::shared_ptr<boost::asio::ssl::context> tls_;
  Resolve resolve_;
  std::chrono::milliseconds deadline_;
};

}  // namespace xo::handoff::protocol
