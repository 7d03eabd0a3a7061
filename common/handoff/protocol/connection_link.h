// ControlLink over the real control channel: one authenticated
// channel::Connection (either end) or a channel::PeerClient (which follows
// reconnects).
#pragma once

#include "common/handoff/channel/connection.h"
#include "common/handoff/channel/peer_client.h"
#include "common/handoff/protocol/ports.h"

namespace xo::handoff::protocol {

class ConnectionLink final : public ControlLink {
 public:
  explicit ConnectionLink(channel::ConnectionPtr conn) : conn_(std::move(conn)) {}
  uint64_t request(pb::Envelope request, std::chrono::milliseconds timeout, ResponseHandler done) override {
    return conn_->request(std::move(request), timeout, std::move(done));
  }
  Status send(pb::Envelope message) override { return conn_->send(std::move(message)); }
  std::string peer_host_id() const override { return conn_->peer_host_id(); }

 private:
  channel::ConnectionPtr conn_;
};

class PeerClientLink final : public ControlLink {
 public:
  PeerClientLink(std::shared_ptr<channel::PeerClient> client, std::string peer_host_id)
      : client_(std::move(client)), peer_(std::move(peer_host_id)) {}
  uint64_t request(pb::Envelope request, std::chrono::milliseconds timeout, ResponseHandler done) override {
    return client_->request(std::move(request), timeout, std::move(done));
  }
  Status send(pb::Envelope message) override { return client_->send(std::move(message)); }
  std::string peer_host_id() const override { return peer_; }

 private:
  std::shared_ptr<channel::PeerClient> client_;
  std::string peer_;
};

}  // namespace xo::handoff::protocol
