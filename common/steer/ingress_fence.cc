#include "common/steer/ingress_fence.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>

namespace xo::steer {

Result<IngressFence> IngressFence::open(int seq_map_fd) {
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return error("libbpf_num_possible_cpus() failed", -cpus);
  UniqueFd fd(::fcntl(seq_map_fd, F_DUPFD_CLOEXEC, 0));
  if (!fd) return sys_error("dup(xo_ingress_seq)");
  return IngressFence(std::move(fd), static_cast<size_t>(cpus));
}

Status IngressFence::read(std::vector<uint64_t>& out) const {
  out.resize(cpus_);  // a per-CPU array returns one 8-byte slot per possible CPU
  const uint32_t key = 0;
  if (int ret = bpf_map_lookup_elem(fd_.get(), &key, out.data()); ret != 0)
    return error("bpf_map_lookup_elem(xo_ingress_seq)", -ret);
  return {};
}

Status IngressFence::wait(std::chrono::microseconds bound) const {
  std::vector<uint64_t> first, now;
  XO_TRY(read(first));
  const auto until = std::chrono::steady_clock::now() + bound;
  for (;;) {
    bool busy = false;
    for (size_t cpu = 0; cpu < cpus_ && !busy; ++cpu)
      busy = (first[cpu] & 1) && (now.empty() || now[cpu] == first[cpu]);
    if (!busy) return {};  // every CPU was idle, or has left the run it was in
    if (std::chrono::steady_clock::now() >= until)
      return error("a tc ingress run did not finish within " + std::to_string(bound.count()) + " us", ETIMEDOUT);
    XO_TRY(read(now));
  }
}

}  // namespace xo::steer
