// IngressFence against a real per-CPU array map, written from here the way
// xo_tc_ingress writes xo_ingress_seq (odd while a run is in progress).
#include "common/steer/ingress_fence.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <thread>

namespace xo::steer {
namespace {

using namespace std::chrono_literals;

class IngressFenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "creating a BPF map needs root";
    cpus_ = static_cast<size_t>(libbpf_num_possible_cpus());
    map_ = UniqueFd(bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, "xo_seq_test", 4, 8, 1, nullptr));
    ASSERT_TRUE(map_) << "bpf_map_create: " << std::strerror(errno);
  }
  void set(size_t cpu, uint64_t seq) {
    std::vector<uint64_t> v(cpus_, 0);
    const uint32_t key = 0;
    ASSERT_EQ(bpf_map_lookup_elem(map_.get(), &key, v.data()), 0);
    v[cpu] = seq;
    ASSERT_EQ(bpf_map_update_elem(map_.get(), &key, v.data(), BPF_ANY), 0);
  }
  IngressFence fence() {
    auto f = IngressFence::open(map_.get());
    EXPECT_TRUE(f.ok()) << f.error().to_string();
    return std::move(*f);
  }
  size_t last_cpu() const { return cpus_ - 1; }

  size_t cpus_ = 0;
  UniqueFd map_;
};

TEST_F(IngressFenceTest, NoRunInProgressReturnsAtOnce) {
  set(0, 4);
  set(last_cpu(), 10);  // even: between runs
  auto f = fence();
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(f.wait(1s).ok());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 100ms);
}

TEST_F(IngressFenceTest, WaitsUntilARunThatBeganBeforeItEnds) {
  for (uint64_t next : {uint64_t{8}, uint64_t{9}}) {  // ended; or ended and another began
    SCOPED_TRACE(next);
    set(last_cpu(), 7);  // inside a run
    auto f = fence();
    std::thread run([&] {
      std::this_thread::sleep_for(5ms);
      set(last_cpu(), next);
    });
    const auto t0 = std::chrono::steady_clock::now();
    auto st = f.wait(2s);
    const auto waited = std::chrono::steady_clock::now() - t0;
    run.join();
    ASSERT_TRUE(st.ok()) << st.error().to_string();
    EXPECT_GE(waited, 4ms) << "returned while the run was still going";
    EXPECT_LT(waited, 1s);
  }
}

TEST_F(IngressFenceTest, AStuckRunTimesOut) {
  set(0, 3);
  auto f = fence();
  const auto t0 = std::chrono::steady_clock::now();
  auto st = f.wait(2ms);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ETIMEDOUT);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 2ms);
}

}  // namespace
}  // namespace xo::steer
