// Support for the steering lab tests: a bpffs of the test's own (pins stay
// visible to nsenter'd tools, and a killed run's mount is swept by the next),
// TCP helpers that create sockets inside a host's namespace, and a recorder of
// the TCP packets a host sees on its wire.
#pragma once

#include <netinet/in.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/base/fd.h"
#include "common/base/result.h"
#include "common/steer/flow.h"

namespace xo::steer::test {

// bpffs mounted at /run/xo-steer/<lab>/ for the lifetime of this object.
// Each host gets its own pin dir below it. Mounts whose lab is gone (its
// /run/xo-lab/<lab> state no longer exists) are swept on creation.
class BpffsMount {
 public:
  static Result<std::unique_ptr<BpffsMount>> create(const std::string& lab);
  ~BpffsMount();
  std::string pin_dir(const std::string& host) const { return path_ + "/" + host; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// TX checksum offload off on a host's eth0: its packets then carry complete
// checksums, which the receiving stack verifies, so a wrong incremental fix
// in a program breaks the connection instead of passing unnoticed
// (CHECKSUM_PARTIAL skbs cross veth unverified).
Status disable_tx_checksum_offload(const std::string& ns, const std::string& ifname = "eth0");

int ifindex_in(const std::string& ns, const std::string& ifname);

struct Endpoint {
  IpAddr addr;
  uint16_t port = 0;
};
Result<Endpoint> endpoint_of(int fd, bool peer);

// A listening TCP socket created inside ns, bound to addr:port.
Result<UniqueFd> listen_in(const std::string& ns, const IpAddr& addr, uint16_t port);
// A client socket created inside ns, bound to src (port may be 0), connected
// to dst with a timeout. SO_REUSEADDR so a test can reuse its chosen port.
Result<UniqueFd> connect_in(const std::string& ns, const Endpoint& src, const Endpoint& dst, int timeout_ms = 3000);
Result<UniqueFd> accept_with_timeout(int listen_fd, int timeout_ms);

// Echo server on a listening socket: accepts connections and echoes bytes
// until stopped. Runs in a thread; the accepted sockets inherit the
// listener's namespace.
class EchoServer {
 public:
  explicit EchoServer(UniqueFd listener);
  ~EchoServer();
  int accepted() const { return accepted_.load(); }

 private:
  void loop();
  UniqueFd listener_;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

// Sends `bytes` of a pattern and reads them back; false on a short echo,
// mismatch, error or timeout.
Result<void> echo_roundtrip(int fd, size_t bytes, int timeout_ms = 3000);

// Records every TCP packet on a host's eth0 (AF_PACKET inside its namespace).
struct WirePacket {
  bool outgoing = false;
  IpAddr src, dst;
  uint16_t src_port = 0, dst_port = 0;
  uint8_t flags = 0;
};

class WireRecorder {
 public:
  static Result<std::unique_ptr<WireRecorder>> start(const std::string& ns, const std::string& ifname = "eth0");
  ~WireRecorder();
  std::vector<WirePacket> stop();

 private:
  void loop();
  UniqueFd fd_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<WirePacket> packets_;
  std::thread thread_;
};

}  // namespace xo::steer::test
