// FlowDiverter: the one place that decides where a moved flow's packets go.
//
// Moving a live connection needs two things from the network: stop the
// client's packets at the origin before TCP_REPAIR (a socket in repair mode
// still ACKs new data, which would then be lost), and make them reach the new
// owner afterwards. Until the eBPF steering exists this is done with nft and
// by moving the service address (NftAddressDiverter); the steering layer
// supplies another implementation of this interface.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/base/result.h"
#include "qa/lab/lab.h"

namespace xo::lab {

// A TCP flow as the serving host sees it: local = service side.
struct Flow {
  int family = 0;  // AF_INET / AF_INET6
  std::string local_ip, remote_ip;
  uint16_t local_port = 0, remote_port = 0;
  std::string to_string() const;  // "198.18.0.2:40000 -> 198.18.0.100:80"
  bool operator<(const Flow& o) const;
};

// The flow of a connected socket (getsockname/getpeername).
Result<Flow> flow_of(int fd);

class FlowDiverter {
 public:
  virtual ~FlowDiverter() = default;
  // Drop the client's packets of `flow` at the host that currently owns it.
  virtual Status block(const Flow& flow) = 0;
  // Remove every block of `flow` (at whichever host it was put).
  virtual Status unblock(const Flow& flow) = 0;
  // Before a socket of `flow` is restored on `host`: make the flow's local
  // address usable there (restore() injects segments to it for half-closed
  // states). Packets still go to the current owner.
  virtual Status prepare(const Flow& flow, const std::string& host) = 0;
  // Make the client's packets of `flow` reach `host` from now on.
  virtual Status deliver_to(const Flow& flow, const std::string& host) = 0;
  // The host that currently receives the flow's packets.
  virtual std::string owner(const Flow& flow) const = 0;
};

// nft drop for the 4-tuple in the owner's namespace (an element of a set in
// table inet xo_lab, matched at prerouting before conntrack and sockets);
// delivery by moving the lab's service address (v4 and v6) to the new owner
// and pointing the client's neighbour entries at its MAC. Moving the address
// moves every flow to that service, which is what a lab test with one
// connection wants. In-process (libnftables, libnl-route, each context
// opened inside its host's namespace): no process is spawned per move.
class NftAddressDiverter final : public FlowDiverter {
 public:
  explicit NftAddressDiverter(const Lab& lab, std::string initial_owner = "frontend");
  ~NftAddressDiverter() override;
  Status block(const Flow& flow) override;
  Status unblock(const Flow& flow) override;
  Status prepare(const Flow& flow, const std::string& host) override;
  Status deliver_to(const Flow& flow, const std::string& host) override;
  std::string owner(const Flow& flow) const override;

 private:
  struct HostNet;  // nft context + rtnetlink socket of one host
  Result<HostNet*> net(const std::string& host);
  Status set_service_address(const std::string& host, bool present);

  const Lab& lab_;
  mutable std::mutex mu_;
  std::string address_owner_;
  std::map<std::string, std::unique_ptr<HostNet>> nets_;
  std::map<Flow, std::vector<std::string>> blocked_at_;  // hosts holding a block element
};

std::unique_ptr<FlowDiverter> make_default_diverter(const Lab& lab);

}  // namespace xo::lab
