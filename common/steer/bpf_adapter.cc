#include "common/steer/bpf_adapter.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "fault.skel.h"
#include "steer.skel.h"

namespace xo::steer {
namespace {

constexpr uint32_t kTcHandle = 1;
constexpr uint32_t kTcPriority = 10;       // steering
constexpr uint32_t kFaultTcHandle = 1;
constexpr uint32_t kFaultTcPriority = 5;   // runs before steering on a shared hook
constexpr unsigned long kBpfFsMagic = 0xcafe4a11;

const char* prog_pin_name(Hook h) {
  switch (h) {
    case Hook::kTcIngress: return "xo_tc_ingress";
    case Hook::kTcEgress: return "xo_tc_egress";
    default: return "xo_xdp_ingress";
  }
}

// libbpf prints the kernel's extended ack of every failed netlink request,
// including the ones we expect and handle (querying a hook with no clsact
// qdisc yet, creating a qdisc that exists). Those lines are dropped; all
// other warnings (verifier logs, pinning problems) still reach stderr.
int libbpf_print(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  if (std::strstr(fmt, "Kernel error message") != nullptr) return 0;
  return std::vfprintf(stderr, fmt, args);
}

void install_libbpf_print() {
  static std::once_flag once;
  std::call_once(once, [] { libbpf_set_print(libbpf_print); });
}

// libbpf 1.x returns -errno; keep the code, say what failed.
Error bpf_error(const std::string& what, int ret) { return Error{ret < 0 ? -ret : errno, what}; }

Result<uint32_t> prog_id_of(int fd) {
  bpf_prog_info info{};
  uint32_t len = sizeof(info);
  int ret = bpf_obj_get_info_by_fd(fd, &info, &len);
  if (ret) return bpf_error("bpf_obj_get_info_by_fd(prog)", ret);
  return info.id;
}

Result<UniqueFd> obj_get(const std::string& path) {
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) return bpf_error("bpf_obj_get(" + path + ")", fd);
  return UniqueFd(fd);
}

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

Status ensure_bpffs_dir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return sys_error("mkdir(" + dir + ")");
  struct statfs fs{};
  if (::statfs(dir.c_str(), &fs) != 0) return sys_error("statfs(" + dir + ")");
  if (static_cast<unsigned long>(fs.f_type) != kBpfFsMagic)
    return error(dir + " is not on a bpffs (mount -t bpf bpf DIR)", EINVAL);
  return {};
}

bpf_tc_hook tc_hook(int ifindex, bool ingress) {
  bpf_tc_hook hook{};
  hook.sz = sizeof(hook);
  hook.ifindex = ifindex;
  hook.attach_point = ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS;
  return hook;
}

bpf_tc_opts tc_opts(uint32_t handle, uint32_t priority) {
  bpf_tc_opts opts{};
  opts.sz = sizeof(opts);
  opts.handle = handle;
  opts.priority = priority;
  return opts;
}

// prog id attached at (hook, handle, priority), 0 when none.
Result<uint32_t> tc_query(int ifindex, bool ingress, uint32_t handle, uint32_t priority) {
  bpf_tc_hook hook = tc_hook(ifindex, ingress);
  bpf_tc_opts opts = tc_opts(handle, priority);
  int ret = bpf_tc_query(&hook, &opts);
  // ENOENT: no such filter; EINVAL: no clsact qdisc on this interface yet.
  if (ret == -ENOENT || ret == -EINVAL) return 0u;
  if (ret) return bpf_error("bpf_tc_query", ret);
  return opts.prog_id;
}

Status tc_attach(int ifindex, bool ingress, int prog_fd, uint32_t handle, uint32_t priority) {
  bpf_tc_hook hook = tc_hook(ifindex, ingress);
  int ret = bpf_tc_hook_create(&hook);  // the clsact qdisc, shared by both directions
  if (ret && ret != -EEXIST) return bpf_error("bpf_tc_hook_create(clsact)", ret);
  bpf_tc_opts opts = tc_opts(handle, priority);
  opts.prog_fd = prog_fd;
  opts.flags = BPF_TC_F_REPLACE;
  ret = bpf_tc_attach(&hook, &opts);
  if (ret) return bpf_error("bpf_tc_attach", ret);
  return {};
}

Status tc_detach(int ifindex, bool ingress, uint32_t handle, uint32_t priority) {
  bpf_tc_hook hook = tc_hook(ifindex, ingress);
  bpf_tc_opts opts = tc_opts(handle, priority);
  // Only our filter: the clsact qdisc may carry other tools' filters.
  int ret = bpf_tc_detach(&hook, &opts);
  if (ret && ret != -ENOENT && ret != -EINVAL) return bpf_error("bpf_tc_detach", ret);
  return {};
}

uint32_t xdp_flags(Hook h) { return h == Hook::kXdpNative ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE; }

// Loads steer.bpf.o with its maps pinned (or reused) under pin_dir and pins
// the programs. A concurrent loader may win the race to pin: EEXIST is fine,
// the caller opens whatever is pinned (both loaders' programs use the same
// pinned maps).
Status load_and_pin(const std::string& pin_dir) {
  bpf_object_open_opts opts{};
  opts.sz = sizeof(opts);
  opts.pin_root_path = pin_dir.c_str();
  xo_steer_bpf* skel = xo_steer_bpf__open_opts(&opts);
  if (!skel) return sys_error("open steer.bpf.o skeleton");
  struct Guard {
    xo_steer_bpf* s;
    ~Guard() { xo_steer_bpf__destroy(s); }
  } guard{skel};
  int ret = xo_steer_bpf__load(skel);
  if (ret) return bpf_error("load steer.bpf.o (verifier, or pinned maps of another ABI in " + pin_dir + ")", ret);
  bpf_program* progs[] = {skel->progs.xo_tc_ingress, skel->progs.xo_tc_egress, skel->progs.xo_xdp_ingress};
  for (bpf_program* p : progs) {
    std::string path = pin_dir + "/" + bpf_program__name(p);
    // A leftover program pin (maps unpinned by hand) would point at other maps
    // than the ones just loaded: replace it.
    ::unlink(path.c_str());
    ret = bpf_program__pin(p, path.c_str());
    if (ret && ret != -EEXIST) return bpf_error("pin " + path, ret);
  }
  return {};
}

}  // namespace

const char* hook_name(Hook h) {
  switch (h) {
    case Hook::kTcIngress: return "tc-ingress";
    case Hook::kTcEgress: return "tc-egress";
    case Hook::kXdpGeneric: return "xdp-generic";
    case Hook::kXdpNative: return "xdp-native";
  }
  return "?";
}

Result<std::unique_ptr<BpfAdapter>> BpfAdapter::open(const std::string& pin_dir) {
  install_libbpf_print();
  std::unique_ptr<BpfAdapter> a(new BpfAdapter);
  a->pin_dir_ = pin_dir;
  XO_TRY(ensure_bpffs_dir(pin_dir));
  const std::string flows = pin_dir + "/xo_flows";
  bool complete = exists(flows) && exists(pin_dir + "/xo_counters") && exists(pin_dir + "/xo_held") &&
                  exists(pin_dir + "/xo_ingress_seq");
  for (Hook h : {Hook::kTcIngress, Hook::kTcEgress, Hook::kXdpGeneric})
    complete = complete && exists(pin_dir + "/" + prog_pin_name(h));
  if (!complete) {
    XO_TRY(load_and_pin(pin_dir));
    a->loaded_fresh_ = true;
  }
  XO_ASSIGN_OR_RETURN(a->flows_, obj_get(flows));
  XO_ASSIGN_OR_RETURN(a->counters_, obj_get(pin_dir + "/xo_counters"));
  XO_ASSIGN_OR_RETURN(a->held_, obj_get(pin_dir + "/xo_held"));
  XO_ASSIGN_OR_RETURN(a->ingress_seq_, obj_get(pin_dir + "/xo_ingress_seq"));
  XO_ASSIGN_OR_RETURN(a->tc_ingress_, obj_get(pin_dir + "/xo_tc_ingress"));
  XO_ASSIGN_OR_RETURN(a->tc_egress_, obj_get(pin_dir + "/xo_tc_egress"));
  XO_ASSIGN_OR_RETURN(a->xdp_ingress_, obj_get(pin_dir + "/xo_xdp_ingress"));

  // Adopting maps of another build: refuse rather than misread entries.
  bpf_map_info info{};
  uint32_t len = sizeof(info);
  int ret = bpf_obj_get_info_by_fd(a->flows_.get(), &info, &len);
  if (ret) return bpf_error("bpf_obj_get_info_by_fd(xo_flows)", ret);
  if (info.key_size != sizeof(xo_flow_key) || info.value_size != sizeof(xo_flow_value))
    return error("pinned " + flows + " has another layout (key " + std::to_string(info.key_size) + ", value " +
                     std::to_string(info.value_size) + " bytes): unpin it or run the matching build",
                 EPROTO);
  return a;
}

Status BpfAdapter::unpin(const std::string& pin_dir) {
  for (const char* name : {"xo_flows", "xo_counters", "xo_held", "xo_ingress_seq", "xo_tc_ingress", "xo_tc_egress",
                           "xo_xdp_ingress"}) {
    std::string path = pin_dir + "/" + name;
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return sys_error("unlink(" + path + ")");
  }
  return {};
}

int BpfAdapter::prog_fd(Hook h) const {
  switch (h) {
    case Hook::kTcIngress: return tc_ingress_.get();
    case Hook::kTcEgress: return tc_egress_.get();
    default: return xdp_ingress_.get();
  }
}

Result<bool> BpfAdapter::attached(Hook h, int ifindex) {
  XO_ASSIGN_OR_RETURN(uint32_t ours, prog_id_of(prog_fd(h)));
  uint32_t id = 0;
  if (h == Hook::kTcIngress || h == Hook::kTcEgress) {
    XO_ASSIGN_OR_RETURN(id, tc_query(ifindex, h == Hook::kTcIngress, kTcHandle, kTcPriority));
  } else {
    int ret = bpf_xdp_query_id(ifindex, static_cast<int>(xdp_flags(h)), &id);
    if (ret) return bpf_error("bpf_xdp_query_id", ret);
  }
  return id == ours;
}

Result<bool> BpfAdapter::attach(Hook h, int ifindex) {
  XO_ASSIGN_OR_RETURN(bool already, attached(h, ifindex));
  if (already) return true;
  if (h == Hook::kTcIngress || h == Hook::kTcEgress) {
    XO_TRY(tc_attach(ifindex, h == Hook::kTcIngress, prog_fd(h), kTcHandle, kTcPriority));
  } else {
    int ret = bpf_xdp_attach(ifindex, prog_fd(h), xdp_flags(h), nullptr);
    if (ret) return bpf_error(std::string("bpf_xdp_attach(") + hook_name(h) + ")", ret);
  }
  return false;
}

Status BpfAdapter::detach(Hook h, int ifindex) {
  if (h == Hook::kTcIngress || h == Hook::kTcEgress)
    return tc_detach(ifindex, h == Hook::kTcIngress, kTcHandle, kTcPriority);
  XO_ASSIGN_OR_RETURN(bool ours, attached(h, ifindex));
  if (!ours) return {};  // someone else's XDP program: not ours to remove
  int ret = bpf_xdp_detach(ifindex, xdp_flags(h), nullptr);
  if (ret) return bpf_error("bpf_xdp_detach", ret);
  return {};
}

Status BpfAdapter::update(const xo_flow_key& key, const xo_flow_value& value) {
  int ret = bpf_map_update_elem(flows_.get(), &key, &value, BPF_ANY);
  if (ret) return bpf_error("bpf_map_update_elem(xo_flows)", ret);
  return {};
}

Status BpfAdapter::erase(const xo_flow_key& key) {
  int ret = bpf_map_delete_elem(flows_.get(), &key);
  if (ret) return bpf_error("bpf_map_delete_elem(xo_flows)", ret);
  return {};
}

Result<bool> BpfAdapter::lookup(const xo_flow_key& key, xo_flow_value* value) {
  int ret = bpf_map_lookup_elem(flows_.get(), &key, value);
  if (ret == -ENOENT) return false;
  if (ret) return bpf_error("bpf_map_lookup_elem(xo_flows)", ret);
  return true;
}

Result<std::vector<std::pair<xo_flow_key, xo_flow_value>>> BpfAdapter::dump() {
  std::vector<std::pair<xo_flow_key, xo_flow_value>> out;
  xo_flow_key key{}, next{};
  const void* prev = nullptr;  // nullptr: start from the first key
  for (;;) {
    int ret = bpf_map_get_next_key(flows_.get(), prev, &next);
    if (ret == -ENOENT) break;
    if (ret) return bpf_error("bpf_map_get_next_key(xo_flows)", ret);
    xo_flow_value value{};
    ret = bpf_map_lookup_elem(flows_.get(), &next, &value);
    if (ret == 0) out.emplace_back(next, value);  // ENOENT: removed meanwhile
    key = next;
    prev = &key;
  }
  return out;
}

Result<BpfCounters> BpfAdapter::counters() {
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return bpf_error("libbpf_num_possible_cpus", ncpu);
  BpfCounters sums{};
  std::vector<uint64_t> per_cpu(static_cast<size_t>(ncpu));
  for (uint32_t i = 0; i < XO_CNT_MAX; i++) {
    int ret = bpf_map_lookup_elem(counters_.get(), &i, per_cpu.data());
    if (ret) return bpf_error("bpf_map_lookup_elem(xo_counters)", ret);
    for (uint64_t v : per_cpu) sums[i] += v;
  }
  return sums;
}

// --- fault injection -------------------------------------------------------

Result<std::unique_ptr<BpfFaultInjector>> BpfFaultInjector::attach(int ifindex, bool ingress) {
  install_libbpf_print();
  xo_fault_bpf* skel = xo_fault_bpf__open_and_load();
  if (!skel) return sys_error("load fault.bpf.o");
  std::unique_ptr<BpfFaultInjector> f(new BpfFaultInjector);
  f->prog_.reset(dup(bpf_program__fd(skel->progs.xo_fault)));
  f->config_.reset(dup(bpf_map__fd(skel->maps.xo_fault_config)));
  f->stats_.reset(dup(bpf_map__fd(skel->maps.xo_fault_stats)));
  xo_fault_bpf__destroy(skel);
  if (!f->prog_ || !f->config_ || !f->stats_) return sys_error("dup(fault program fds)");
  XO_TRY(tc_attach(ifindex, ingress, f->prog_.get(), kFaultTcHandle, kFaultTcPriority));
  f->ifindex_ = ifindex;
  f->ingress_ = ingress;
  return f;
}

BpfFaultInjector::~BpfFaultInjector() {
  if (ifindex_) (void)tc_detach(ifindex_, ingress_, kFaultTcHandle, kFaultTcPriority);
}

Status BpfFaultInjector::configure(const xo_fault_config& config) {
  uint32_t zero = 0;
  xo_fault_stats fresh{};
  int ret = bpf_map_update_elem(stats_.get(), &zero, &fresh, BPF_ANY);
  if (!ret) ret = bpf_map_update_elem(config_.get(), &zero, &config, BPF_ANY);
  if (ret) return bpf_error("configure fault injector", ret);
  return {};
}

Result<xo_fault_stats> BpfFaultInjector::stats() {
  uint32_t zero = 0;
  xo_fault_stats s{};
  int ret = bpf_map_lookup_elem(stats_.get(), &zero, &s);
  if (ret) return bpf_error("read fault stats", ret);
  return s;
}

}  // namespace xo::steer
