#include "qa/lab/packet_counter.h"

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include "qa/lab/netns.h"

namespace xo::lab {

Result<std::unique_ptr<PacketCounter>> PacketCounter::start(const std::string& ns,
                                                            const std::string& ifname) {
  UniqueFd fd;
  {
    // The socket belongs to the namespace it is created in.
    XO_ASSIGN_OR_RETURN(auto scope, NetnsScope::enter(ns));
    fd.reset(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL)));
    if (!fd) return sys_error("socket(AF_PACKET)");
    unsigned idx = ::if_nametoindex(ifname.c_str());
    if (idx == 0) return sys_error("if_nametoindex " + ifname + " in " + ns);
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = static_cast<int>(idx);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0)
      return sys_error("bind AF_PACKET to " + ifname);
    // Headroom for bursts (10 MB responses): losing a frame would hide an RST.
    int rcvbuf = 32 << 20;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf);
  }
  auto pc = std::unique_ptr<PacketCounter>(new PacketCounter(std::move(fd)));
  pc->thread_ = std::thread([p = pc.get()] { p->loop(); });
  return pc;
}

PacketCounter::PacketCounter(UniqueFd fd) : fd_(std::move(fd)) {}

PacketCounter::~PacketCounter() { stop(); }

void PacketCounter::loop() {
  while (!stop_.load()) {
    pollfd pfd{fd_.get(), POLLIN, 0};
    if (::poll(&pfd, 1, 20) > 0) drain();
  }
  drain();
}

void PacketCounter::drain() {
  uint8_t frame[256];  // headers are enough; MSG_TRUNC reports the full length
  for (;;) {
    sockaddr_ll from{};
    socklen_t fl = sizeof from;
    ssize_t n = ::recvfrom(fd_.get(), frame, sizeof frame, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), &fl);
    if (n <= 0) return;
    size_t got = static_cast<size_t>(n) > sizeof frame ? sizeof frame : static_cast<size_t>(n);
    count(frame, got, from.sll_pkttype == PACKET_OUTGOING);
  }
}

void PacketCounter::count(const uint8_t* f, size_t len, bool outgoing) {
  if (len < sizeof(ethhdr)) return;
  uint16_t proto = static_cast<uint16_t>(f[12] << 8 | f[13]);
  const uint8_t* l3 = f + sizeof(ethhdr);
  size_t l3len = len - sizeof(ethhdr);
  const uint8_t* l4 = nullptr;
  if (proto == ETH_P_IP && l3len >= sizeof(iphdr)) {
    auto* ip = reinterpret_cast<const iphdr*>(l3);
    if (ip->protocol != IPPROTO_TCP) return;
    size_t ihl = ip->ihl * 4u;
    if (l3len < ihl + sizeof(tcphdr)) return;
    l4 = l3 + ihl;
  } else if (proto == ETH_P_IPV6 && l3len >= sizeof(ip6_hdr) + sizeof(tcphdr)) {
    auto* ip6 = reinterpret_cast<const ip6_hdr*>(l3);
    // The lab sends no extension headers.
    if (ip6->ip6_nxt != IPPROTO_TCP) return;
    l4 = l3 + sizeof(ip6_hdr);
  } else {
    return;
  }
  auto* tcp = reinterpret_cast<const tcphdr*>(l4);
  bool rst = tcp->rst;
  (outgoing ? tcp_out_ : tcp_in_).fetch_add(1);
  if (rst) (outgoing ? rst_out_ : rst_in_).fetch_add(1);
}

PacketCounts PacketCounter::now() const {
  return {tcp_in_.load(), tcp_out_.load(), rst_in_.load(), rst_out_.load(), dropped_.load()};
}

PacketCounts PacketCounter::stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
  if (fd_) {
    // Reading the statistics resets them: read once, at the end.
    tpacket_stats st{};
    socklen_t len = sizeof st;
    if (::getsockopt(fd_.get(), SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0) dropped_ += st.tp_drops;
    fd_.reset();
  }
  return now();
}

}  // namespace xo::lab
