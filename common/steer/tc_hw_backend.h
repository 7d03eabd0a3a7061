// TcHwSteer: TC flower rules (skip_sw: in the NIC) through a libnl-3 netlink
// socket. The socket belongs to the network namespace of the thread that
// opens it. A rule's filter handle is derived from its flow (tc_flower_handle),
// so a restarted process can delete rules its predecessor installed (TC rules
// outlive the process) without any saved state; two flows hashing to one
// handle make the second insert fail with EEXIST and that flow stays in eBPF.
#pragma once

#include <netlink/socket.h>

#include <memory>
#include <mutex>
#include <string>

#include "common/steer/hw_backend.h"
#include "common/steer/tc_flower_encoder.h"

namespace xo::steer {

struct NlSockFree {
  void operator()(nl_sock* s) const { nl_socket_free(s); }
};
using NlSockPtr = std::unique_ptr<nl_sock, NlSockFree>;

class TcHwSteer final : public HwSteer {
 public:
  // ifname in the calling thread's namespace. skip_sw=false installs
  // software-only (skip_hw) rules instead: for kernels without offload NICs.
  static Result<std::unique_ptr<TcHwSteer>> open(const std::string& ifname, bool skip_sw = true);

  // EOPNOTSUPP when the kernel has no flower/pedit/csum/mirred or the NIC
  // refuses the offload (ENOENT/EOPNOTSUPP from the kernel, or EINVAL for skip_sw).
  Status add(const SteerEntry& entry) override;
  Status remove(const SteerEntry& entry) override;
  std::string name() const override { return skip_sw_ ? "tc-flower(skip_sw)" : "tc-flower(skip_hw)"; }

 private:
  TcHwSteer() = default;
  // Sends msg and waits for the kernel's ack; the kernel's errno on failure.
  Status transact(nl_msg* msg, const std::string& what);

  std::mutex mu_;  // one request in flight per socket
  NlSockPtr sock_;
  int ifindex_ = 0;
  bool skip_sw_ = true;
};

}  // namespace xo::steer
