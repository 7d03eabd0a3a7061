// xo_steer_bench: the numbers behind `qa/bench steer` (JSON lines on stdout).
//
//   steer.ebpf.insert / update / delete  one map write per call, µs seen by the caller
//   steer.hybrid.insert                  eBPF write + hardware insert queued (a fake
//                                        "NIC" taking 2 ms per rule drains the queue)
//   steer.redirect.pps / steer.forward.pps
//       TCP segments per second arriving at backend0 from the client, through the
//       frontend's tc ingress REDIRECT program (back out of its veth) versus the
//       frontend's kernel forwarding them as a router; same lab, same sender, same run.
//       Arrivals are counted by a BLOCK entry on backend0's ingress, which also drops
//       them before its TCP stack would answer with RSTs.
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "common/base/bench_report.h"
#include "common/steer/ebpf_backend.h"
#include "common/steer/hybrid_backend.h"
#include "qa/lab/lab.h"
#include "qa/lab/netns.h"
#include "qa/system/steer/steer_lab.h"

namespace xo::steer::test {
namespace {
using xo::bench::print_latency;
using xo::bench::print_value;

using Clock = std::chrono::steady_clock;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "xo_steer_bench: %s\n", what.c_str());
  std::exit(1);
}

template <class T>
T must(Result<T> r, const char* what) {
  if (!r.ok()) die(std::string(what) + ": " + r.error().to_string());
  return std::move(r).value();
}
void must(Status s, const char* what) {
  if (!s.ok()) die(std::string(what) + ": " + s.error().to_string());
}



FlowKey flow_n(uint32_t n) {
  FlowKey f{*IpAddr::parse("198.18.1.0"), static_cast<uint16_t>(1024 + n % 60000), *IpAddr::parse("198.18.0.100"), 443};
  f.src.bytes[2] = static_cast<uint8_t>(1 + (n >> 16));
  f.src.bytes[3] = static_cast<uint8_t>(n >> 8);
  return f;
}

SteerEntry redirect_n(uint32_t n, uint8_t variant) {
  return SteerEntry::redirect(flow_n(n), *IpAddr::parse("198.18.0.20"), MacAddr{2, 0, 0xc6, 0x12, 0, 0x14},
                              MacAddr{2, 0, 0xc6, 0x12, 0, variant}, n, realtime_ns());
}

double us_since(Clock::time_point t0) { return std::chrono::duration<double, std::micro>(Clock::now() - t0).count(); }

void bench_map_ops(EbpfSteer& steer, uint32_t n) {
  std::vector<double> ins, upd, del;
  ins.reserve(n);
  for (uint32_t i = 0; i < n; i++) {
    SteerEntry e = redirect_n(i, 0x0a);
    auto t0 = Clock::now();
    Status s = steer.insert(e);
    ins.push_back(us_since(t0));
    must(std::move(s), "insert");
  }
  for (uint32_t i = 0; i < n; i++) {
    SteerEntry e = redirect_n(i, 0x0b);
    auto t0 = Clock::now();
    Status s = steer.insert(e);
    upd.push_back(us_since(t0));
    must(std::move(s), "update");
  }
  for (uint32_t i = 0; i < n; i++) {
    FlowKey f = flow_n(i);
    auto t0 = Clock::now();
    Status s = steer.remove(f);
    del.push_back(us_since(t0));
    must(std::move(s), "delete");
  }
  print_latency("steer.ebpf.insert", "us", ins, "EbpfSteer::insert of a new REDIRECT flow (one bpf map update), 10k distinct flows");
  print_latency("steer.ebpf.update", "us", upd, "EbpfSteer::insert replacing an existing flow's entry");
  print_latency("steer.ebpf.delete", "us", del, "EbpfSteer::remove of an existing flow");
}

// A NIC that takes 2 ms per rule: the hybrid's caller must not feel it.
class SlowNic final : public HwSteer {
 public:
  Status add(const SteerEntry&) override {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    return {};
  }
  Status remove(const SteerEntry&) override { return {}; }
  std::string name() const override { return "slow-nic(2ms)"; }
};

void bench_hybrid(const std::string& pin_dir, uint32_t n) {
  auto ebpf = must(EbpfSteer::open({pin_dir, "", {}}), "open map");
  HybridSteer hybrid(std::move(ebpf), std::make_unique<SlowNic>());
  std::vector<double> ins;
  for (uint32_t i = 0; i < n; i++) {
    SteerEntry e = redirect_n(i, 0x0c);
    auto t0 = Clock::now();
    Status s = hybrid.insert(e);
    ins.push_back(us_since(t0));
    must(std::move(s), "hybrid insert");
  }
  print_latency("steer.hybrid.insert", "us", ins,
               "HybridSteer::insert: eBPF entry written + hardware insert queued (fake NIC at 2 ms/rule)");
  for (uint32_t i = 0; i < n; i++) (void)hybrid.remove(flow_n(i));  // cancels the queued inserts
}

uint16_t ip_checksum(const void* data, size_t len) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < len; i += 2) sum += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
  if (len & 1) sum += static_cast<uint32_t>(p[len - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return htons(static_cast<uint16_t>(~sum));
}

// Ethernet + IPv4 + TCP (ACK, 64 bytes payload), checksums complete.
std::vector<uint8_t> tcp_frame(const MacAddr& dst_mac, const MacAddr& src_mac, const IpAddr& src, const IpAddr& dst,
                               uint16_t sport, uint16_t dport) {
  const size_t payload = 64;
  std::vector<uint8_t> f(14 + 20 + 20 + payload, 0);
  std::memcpy(&f[0], dst_mac.data(), 6);
  std::memcpy(&f[6], src_mac.data(), 6);
  f[12] = 0x08;
  auto* ip = reinterpret_cast<iphdr*>(&f[14]);
  ip->version = 4;
  ip->ihl = 5;
  ip->tot_len = htons(static_cast<uint16_t>(40 + payload));
  ip->ttl = 64;
  ip->protocol = IPPROTO_TCP;
  std::memcpy(&ip->saddr, src.bytes.data(), 4);
  std::memcpy(&ip->daddr, dst.bytes.data(), 4);
  ip->check = ip_checksum(ip, 20);
  auto* tcp = reinterpret_cast<tcphdr*>(&f[34]);
  tcp->source = htons(sport);
  tcp->dest = htons(dport);
  tcp->seq = htonl(1);
  tcp->ack_seq = htonl(1);
  tcp->doff = 5;
  tcp->ack = 1;
  tcp->window = htons(65535);
  std::vector<uint8_t> pseudo(12 + 20 + payload, 0);
  std::memcpy(&pseudo[0], src.bytes.data(), 4);
  std::memcpy(&pseudo[4], dst.bytes.data(), 4);
  pseudo[9] = IPPROTO_TCP;
  pseudo[10] = static_cast<uint8_t>((20 + payload) >> 8);
  pseudo[11] = static_cast<uint8_t>(20 + payload);
  std::memcpy(&pseudo[12], tcp, 20 + payload);
  tcp->check = ip_checksum(pseudo.data(), pseudo.size());
  return f;
}

// Sends `frame` from the client's eth0 as fast as one thread can for `secs`.
uint64_t blast(const std::string& client_ns, const std::vector<uint8_t>& frame, double secs) {
  auto scope = must(lab::NetnsScope::enter(client_ns), "enter client");
  UniqueFd s(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0));
  if (!s) die("socket(AF_PACKET)");
  int one = 1;
  ::setsockopt(s.get(), SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one));
  sockaddr_ll to{};
  to.sll_family = AF_PACKET;
  to.sll_ifindex = static_cast<int>(if_nametoindex("eth0"));
  to.sll_halen = 6;
  std::memcpy(to.sll_addr, frame.data(), 6);
  constexpr int kBatch = 64;
  std::vector<mmsghdr> msgs(kBatch);
  std::vector<iovec> iov(kBatch);
  for (int i = 0; i < kBatch; i++) {
    iov[i] = {const_cast<uint8_t*>(frame.data()), frame.size()};
    msgs[i].msg_hdr = {};
    msgs[i].msg_hdr.msg_name = &to;
    msgs[i].msg_hdr.msg_namelen = sizeof(to);
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  uint64_t sent = 0;
  auto end = Clock::now() + std::chrono::duration<double>(secs);
  while (Clock::now() < end) {
    int r = ::sendmmsg(s.get(), msgs.data(), kBatch, 0);
    if (r > 0) sent += static_cast<uint64_t>(r);
  }
  return sent;
}

Status write_sysctl(const std::string& ns, const std::string& path, const std::string& value) {
  XO_ASSIGN_OR_RETURN(auto scope, lab::NetnsScope::enter(ns));
  std::ofstream f(path);  // /proc/sys/net is the opening thread's namespace
  f << value;
  f.close();
  if (!f) return error("write " + path);
  return {};
}

void bench_pps(const lab::Lab& lab, const BpffsMount& mount, double secs) {
  const lab::Host& client = lab.client();
  const lab::Host& fe = lab.frontend();
  const lab::Host& be = lab.backend(0);
  const IpAddr client_ip = *IpAddr::parse(client.ip), service = *IpAddr::parse(lab.service_ip()),
               backend_ip = *IpAddr::parse(be.ip);
  const MacAddr client_mac = *parse_mac(client.mac), fe_mac = *parse_mac(fe.mac), be_mac = *parse_mac(be.mac);
  const uint16_t sport = 50000, dport = 9;

  std::unique_ptr<EbpfSteer> fe_steer, be_steer;
  {
    auto scope = must(lab::NetnsScope::enter(fe.ns), "enter frontend");
    fe_steer = must(EbpfSteer::open({mount.pin_dir("frontend"), "eth0", {Hook::kTcIngress}}), "frontend steer");
  }
  {
    auto scope = must(lab::NetnsScope::enter(be.ns), "enter backend0");
    be_steer = must(EbpfSteer::open({mount.pin_dir("backend0"), "eth0", {Hook::kTcIngress}}), "backend steer");
  }
  // The packets' 4-tuple on arrival at backend0 is the same in both modes.
  must(be_steer->insert(SteerEntry::block({client_ip, sport, backend_ip, dport}, 0, realtime_ns())), "backend block");
  must(fe_steer->insert(SteerEntry::redirect({client_ip, sport, service, dport}, backend_ip, be_mac, fe_mac, 0,
                                             realtime_ns())),
       "frontend redirect");
  // The frontend also routes (forward mode); no ICMP redirects for the same-link next hop.
  must(write_sysctl(fe.ns, "/proc/sys/net/ipv4/ip_forward", "1"), "ip_forward");
  must(write_sysctl(fe.ns, "/proc/sys/net/ipv4/conf/all/send_redirects", "0"), "send_redirects");
  must(write_sysctl(fe.ns, "/proc/sys/net/ipv4/conf/eth0/send_redirects", "0"), "send_redirects");

  auto arrived = [&] { return must(be_steer->counters(), "counters")[XO_CNT_BLOCK]; };
  auto run = [&](const std::vector<uint8_t>& frame, uint64_t* sent) {
    uint64_t before = arrived();
    *sent = blast(client.ns, frame, secs);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // in-flight frames land
    return arrived() - before;
  };
  uint64_t sent_r = 0, sent_f = 0;
  uint64_t got_r = run(tcp_frame(fe_mac, client_mac, client_ip, service, sport, dport), &sent_r);
  uint64_t got_f = run(tcp_frame(fe_mac, client_mac, client_ip, backend_ip, sport, dport), &sent_f);
  BpfCounters fc = must(fe_steer->counters(), "frontend counters");
  std::fprintf(stderr, "redirect: sent %llu, arrived %llu; forward: sent %llu, arrived %llu; frontend redirects %llu\n",
               static_cast<unsigned long long>(sent_r), static_cast<unsigned long long>(got_r),
               static_cast<unsigned long long>(sent_f), static_cast<unsigned long long>(got_f),
               static_cast<unsigned long long>(fc[XO_CNT_REDIRECT]));
  if (got_r == 0 || got_f == 0) die("no packets arrived at backend0");
  print_value("steer.redirect.pps", "pps", static_cast<double>(got_r) / secs, got_r,
            "TCP segments/s reaching backend0 via the frontend's tc ingress REDIRECT (veth, one sender thread)");
  print_value("steer.forward.pps", "pps", static_cast<double>(got_f) / secs, got_f,
            "TCP segments/s reaching backend0 via the frontend's kernel IP forwarding, same lab and sender");
}

}  // namespace
}  // namespace xo::steer::test

int main(int argc, char** argv) {
  using namespace xo::steer::test;
  uint32_t flows = 10000;
  double secs = 3.0;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--flows") flows = static_cast<uint32_t>(std::stoul(argv[i + 1]));
    else if (a == "--seconds") secs = std::stod(argv[i + 1]);
  }
  auto lab = must(xo::lab::Lab::up({.backends = 1}), "lab up");
  auto mount = must(BpffsMount::create(lab.name()), "bpffs");
  {
    auto steer = must(xo::steer::EbpfSteer::open({mount->pin_dir("bench"), "", {}}), "open map");
    bench_map_ops(*steer, flows);
  }
  bench_hybrid(mount->pin_dir("bench"), flows);
  bench_pps(lab, *mount, secs);
  return 0;
}
