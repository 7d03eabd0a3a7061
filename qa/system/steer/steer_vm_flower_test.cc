// Runs INSIDE the kernel VM (qa/vm: Debian's kernel has cls_flower, act_pedit,
// act_csum, act_mirred). The product's own TC encoder installs its rules with
// skip_hw (no offload NIC behind a veth) and real TCP between namespaces is
// redirected and source-rewritten by them; the hybrid backend over that
// encoder confirms the rule and removes its eBPF entry; the same rule with
// skip_sw is reported as unsupported, not a crash.
//
// Own topology (xo-lab needs tools the VM lacks): namespaces vmhub, vmclient,
// vmfrontend (+ service address), vmbackend on one bridge, 198.18.0.0/24 and
// 2001:2::/64. Needs modules: cls_flower act_pedit act_csum act_mirred
// sch_ingress cls_bpf veth bridge.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <stdexcept>

#include "common/base/testing.h"
#include "common/steer/ebpf_backend.h"
#include "common/steer/hybrid_backend.h"
#include "common/steer/tc_hw_backend.h"
#include "qa/lab/netns.h"
#include "qa/lab/run.h"
#include "qa/system/steer/steer_lab.h"

namespace xo::steer::test {
namespace {

template <class T>
T take(Result<T> r) {
  if (!r.ok()) throw std::runtime_error(r.error().to_string());
  return std::move(r).value();
}

constexpr uint16_t kPort = 8080;
const char* const kMac[] = {"02:00:c6:12:00:02", "02:00:c6:12:00:0a", "02:00:c6:12:00:14"};
const char* const kNs[] = {"vmclient", "vmfrontend", "vmbackend"};
const char* const kIp4[] = {"198.18.0.2", "198.18.0.10", "198.18.0.20"};
const char* const kIp6[] = {"2001:2::2", "2001:2::10", "2001:2::20"};
enum { kClient = 0, kFrontend = 1, kBackend = 2 };

void ip_batch(const std::string& ns, const std::string& script) {
  std::vector<std::string> argv = {"ip"};
  if (!ns.empty()) argv.insert(argv.end(), {"-n", ns});
  argv.insert(argv.end(), {"-batch", "-"});
  take(lab::run_ok("", argv, std::chrono::seconds(60), script));
}

class VmFlowerTest : public ::testing::TestWithParam<int> {
 protected:
  static void SetUpTestSuite() {
    std::string s = "netns add vmhub\n";
    for (int h = 0; h < 3; h++)
      s += std::string("netns add ") + kNs[h] + "\nlink add eth0 address " + kMac[h] + " netns " + kNs[h] +
           " type veth peer name p" + std::to_string(h) + " netns vmhub\n";
    ip_batch("", s);
    ip_batch("vmhub", "link add br0 type bridge\nlink set br0 up\nlink set p0 master br0 up\n"
                      "link set p1 master br0 up\nlink set p2 master br0 up\n");
    for (int h = 0; h < 3; h++)
      ip_batch(kNs[h], std::string("link set lo up\naddr add ") + kIp4[h] + "/24 dev eth0\naddr add " + kIp6[h] +
                           "/64 dev eth0 nodad\nlink set eth0 up\n");
    ip_batch("vmfrontend", "addr add 198.18.0.100/32 dev eth0\naddr add 2001:2::100/128 dev eth0 nodad\n");
    // Complete checksums from client and backend: a wrong csum action breaks the connection.
    for (const char* ns : {"vmclient", "vmbackend"})
      if (Status st = disable_tx_checksum_offload(ns); !st.ok()) throw std::runtime_error(st.error().to_string());
    ::mkdir("/sys/fs/bpf/xo-vm", 0700);  // the VM's init mounts bpffs on /sys/fs/bpf
  }
  static void TearDownTestSuite() {
    for (const char* ns : {"vmclient", "vmfrontend", "vmbackend", "vmhub"}) (void)lab::run_in("", {"ip", "netns", "del", ns});
  }

  IpAddr ip(int host, int fam) { return take(IpAddr::parse(fam == AF_INET6 ? kIp6[host] : kIp4[host])); }
  IpAddr service(int fam) { return take(IpAddr::parse(fam == AF_INET6 ? "2001:2::100" : "198.18.0.100")); }
  MacAddr mac(int host) { return take(parse_mac(kMac[host])); }
  FlowKey in_flow(int fam, uint16_t cport) { return {ip(kClient, fam), cport, service(fam), kPort}; }
  FlowKey out_flow(int fam, uint16_t cport) { return {ip(kBackend, fam), kPort, ip(kClient, fam), cport}; }

  std::unique_ptr<TcHwSteer> tc_in(int host, bool skip_sw) {
    auto scope = take(lab::NetnsScope::enter(kNs[host]));
    return take(TcHwSteer::open("eth0", skip_sw));
  }

  // One echo exchange client:cport -> service; checks what the client sees.
  void exchange_via_service(int fam, uint16_t cport) {
    auto wire = take(WireRecorder::start("vmclient"));
    {
      UniqueFd c = take(connect_in("vmclient", {ip(kClient, fam), cport}, {service(fam), kPort}, 10000));
      Endpoint peer = take(endpoint_of(c.get(), true));
      EXPECT_EQ(peer.addr, service(fam));
      ASSERT_OK(echo_roundtrip(c.get(), 64 * 1024, 20000));
    }
    int from_service = 0, other = 0;
    for (const WirePacket& p : wire->stop()) {
      if (p.outgoing || p.dst_port != cport) continue;
      (p.src == service(fam) ? from_service : other)++;
    }
    EXPECT_GT(from_service, 5);
    EXPECT_EQ(other, 0) << "the backend's own address reached the client";
  }
};

TEST_P(VmFlowerTest, SkipHwRulesRedirectAndRewriteRealTcp) {
  const int fam = GetParam();
  const uint16_t cport = fam == AF_INET6 ? 40006 : 40004;
  EchoServer backend(take(listen_in("vmbackend", ip(kBackend, fam), kPort)));
  auto fe = tc_in(kFrontend, false);
  auto be = tc_in(kBackend, false);
  SteerEntry redirect = SteerEntry::redirect(in_flow(fam, cport), ip(kBackend, fam), mac(kBackend), mac(kFrontend), 1, 1);
  SteerEntry snat = SteerEntry::snat(out_flow(fam, cport), service(fam), 1, 1);
  ASSERT_OK(fe->add(redirect));
  ASSERT_OK(be->add(snat));
  exchange_via_service(fam, cport);
  EXPECT_EQ(backend.accepted(), 1);

  ASSERT_OK(fe->remove(redirect));
  ASSERT_OK(be->remove(snat));
  auto refused = connect_in("vmclient", {ip(kClient, fam), static_cast<uint16_t>(cport + 1000)}, {service(fam), kPort}, 10000);
  EXPECT_FALSE(refused.ok()) << "without the rules nobody on the frontend listens";
}

TEST_P(VmFlowerTest, HybridConfirmsHardwareRuleAndDropsEbpfEntry) {
  const int fam = GetParam();
  const uint16_t cport = fam == AF_INET6 ? 41006 : 41004;
  EchoServer backend(take(listen_in("vmbackend", ip(kBackend, fam), kPort)));
  std::unique_ptr<HybridSteer> hybrid;
  EbpfSteer* ebpf = nullptr;
  {
    auto scope = take(lab::NetnsScope::enter("vmfrontend"));
    auto steer = take(EbpfSteer::open({"/sys/fs/bpf/xo-vm/frontend", "eth0", {Hook::kTcIngress}}));
    ebpf = steer.get();
    hybrid = std::make_unique<HybridSteer>(std::move(steer), take(TcHwSteer::open("eth0", false)));
  }
  auto be = tc_in(kBackend, false);
  SteerEntry snat = SteerEntry::snat(out_flow(fam, cport), service(fam), 1, 1);
  ASSERT_OK(be->add(snat));

  ASSERT_OK(hybrid->insert(SteerEntry::redirect(in_flow(fam, cport), ip(kBackend, fam), mac(kBackend), mac(kFrontend), 3, realtime_ns())));
  hybrid->drain();
  EXPECT_TRUE(hybrid->hardware_supported()) << hybrid->mode();
  EXPECT_EQ(take(hybrid->path(in_flow(fam, cport))), FlowPath::kHw);
  EXPECT_FALSE(take(ebpf->contains(in_flow(fam, cport)))) << "eBPF entry kept after the TC rule was confirmed";
  uint64_t redirects_before = take(ebpf->counters())[XO_CNT_REDIRECT];
  exchange_via_service(fam, cport);  // carried by the flower rule now
  EXPECT_EQ(take(ebpf->counters())[XO_CNT_REDIRECT], redirects_before) << "eBPF still redirected the flow";

  ASSERT_OK(hybrid->remove(in_flow(fam, cport)));
  hybrid->drain();
  EXPECT_EQ(hybrid->stats().hw_removed, 1u);
  ASSERT_OK(be->remove(snat));
  auto scope = take(lab::NetnsScope::enter("vmfrontend"));  // detach talks netlink in the NIC's namespace
  ASSERT_OK(ebpf->detach());
}

TEST_P(VmFlowerTest, SkipSwWithoutHardwareIsUnsupported) {
  const int fam = GetParam();
  auto fe = tc_in(kFrontend, true);
  Status st = fe->add(SteerEntry::redirect(in_flow(fam, 42000), ip(kBackend, fam), mac(kBackend), mac(kFrontend), 1, 1));
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(is_unsupported(st.error())) << st.error().to_string();
}

INSTANTIATE_TEST_SUITE_P(Families, VmFlowerTest, ::testing::Values(AF_INET, AF_INET6),
                         [](const ::testing::TestParamInfo<int>& i) { return i.param == AF_INET6 ? "Ipv6" : "Ipv4"; });

}  // namespace
}  // namespace xo::steer::test
