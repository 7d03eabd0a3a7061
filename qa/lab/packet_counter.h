// PacketCounter: counts TCP packets and RSTs on a lab host's eth0, on the wire.
//
// A raw AF_PACKET socket created inside the host's namespace sees every frame
// the host sends and receives (both directions), so "no RST reached the
// client" is checked where the client would see it, independent of any tool.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "common/base/fd.h"
#include "common/base/result.h"

namespace xo::lab {

struct PacketCounts {
  uint64_t tcp_in = 0, tcp_out = 0;   // TCP segments received / sent by the host
  uint64_t rst_in = 0, rst_out = 0;   // of those, with RST set
  uint64_t dropped = 0;               // frames the socket lost (then an RST may have been missed)
};

class PacketCounter {
 public:
  // Starts counting on `ifname` (default eth0) inside namespace `ns`.
  static Result<std::unique_ptr<PacketCounter>> start(const std::string& ns,
                                                      const std::string& ifname = "eth0");
  ~PacketCounter();  // stops
  // Stop reading (after draining what the socket holds) and return the totals.
  PacketCounts stop();
  PacketCounts now() const;

 private:
  explicit PacketCounter(UniqueFd fd);
  void loop();
  void drain();
  void count(const uint8_t* frame, size_t len, bool outgoing);

  UniqueFd fd_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> tcp_in_{0}, tcp_out_{0}, rst_in_{0}, rst_out_{0}, dropped_{0};
  std::thread thread_;
};

}  // namespace xo::lab
