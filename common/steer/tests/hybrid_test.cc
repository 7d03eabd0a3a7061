// HybridSteer's logic with fake backends: an in-memory eBPF map and a
// hardware backend that is unsupported, slow, failing or gated by the test.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "common/steer/hybrid_backend.h"

namespace xo::steer {
namespace {

FlowKey flow_n(uint32_t n) {
  FlowKey f;
  f.src = *IpAddr::parse("198.18.0.2");
  f.src.bytes[2] = static_cast<uint8_t>(n >> 16);  // many distinct clients
  f.src.bytes[3] = static_cast<uint8_t>(n >> 8);
  f.src_port = static_cast<uint16_t>(10000 + (n & 0xff));
  f.dst = *IpAddr::parse("198.18.0.100");
  f.dst_port = 443;
  return f;
}

SteerEntry redirect_n(uint32_t n) {
  return SteerEntry::redirect(flow_n(n), *IpAddr::parse("198.18.0.20"), MacAddr{2, 0, 0, 0, 0, 0x14},
                              MacAddr{2, 0, 0, 0, 0, 0x0a}, n, n);
}

// The eBPF map, in memory.
class FakeEbpf final : public SteerBackend {
 public:
  Status insert(const SteerEntry& e) override {
    std::lock_guard<std::mutex> l(mu);
    map[e.flow.to_string()] = e;
    return {};
  }
  Status remove(const FlowKey& f) override {
    std::lock_guard<std::mutex> l(mu);
    if (!map.erase(f.to_string())) return error("no entry", ENOENT);
    return {};
  }
  Result<std::vector<ListedEntry>> list() override {
    std::lock_guard<std::mutex> l(mu);
    std::vector<ListedEntry> out;
    for (auto& [k, e] : map) out.push_back({e, {}});
    return out;
  }
  std::string name() const override { return "fake-ebpf"; }
  bool has(const FlowKey& f) {
    std::lock_guard<std::mutex> l(mu);
    return map.count(f.to_string()) > 0;
  }
  std::mutex mu;
  std::map<std::string, SteerEntry> map;
};

enum class HwMode { kOk, kUnsupported, kFailing };

// Records every request; optionally slow, and optionally held at a gate
// until the test opens it.
class FakeHw final : public HwSteer {
 public:
  FakeHw(HwMode mode, std::chrono::milliseconds delay = {}, bool gated = false)
      : mode_(mode), delay_(delay), gate_open_(!gated) {}
  Status add(const SteerEntry& e) override {
    {
      std::unique_lock<std::mutex> l(mu_);
      entered_++;
      cv_.notify_all();
      cv_.wait(l, [&] { return gate_open_; });
    }
    std::this_thread::sleep_for(delay_);
    std::lock_guard<std::mutex> l(mu_);
    adds.push_back(e.flow.to_string());
    if (mode_ == HwMode::kUnsupported) return error("unsupported: no cls_flower", EOPNOTSUPP);
    if (mode_ == HwMode::kFailing) return error("device busy", EBUSY);
    return {};
  }
  Status remove(const SteerEntry& e) override {
    std::lock_guard<std::mutex> l(mu_);
    removes.push_back(e.flow.to_string());
    return {};
  }
  std::string name() const override { return "fake-hw"; }
  void open_gate() {
    std::lock_guard<std::mutex> l(mu_);
    gate_open_ = true;
    cv_.notify_all();
  }
  void wait_entered(int n) {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return entered_ >= n; });
  }
  std::vector<std::string> adds_copy() {
    std::lock_guard<std::mutex> l(mu_);
    return adds;
  }
  std::vector<std::string> removes_copy() {
    std::lock_guard<std::mutex> l(mu_);
    return removes;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  HwMode mode_;
  std::chrono::milliseconds delay_;
  bool gate_open_;
  int entered_ = 0;
  std::vector<std::string> adds, removes;
};

struct Hybrid {
  FakeEbpf* ebpf;
  FakeHw* hw;
  std::unique_ptr<HybridSteer> steer;
};

Hybrid make(HwMode mode, std::chrono::milliseconds delay = {}, bool gated = false) {
  auto ebpf = std::make_unique<FakeEbpf>();
  auto hw = std::make_unique<FakeHw>(mode, delay, gated);
  Hybrid h{ebpf.get(), hw.get(), nullptr};
  h.steer = std::make_unique<HybridSteer>(std::move(ebpf), std::move(hw));
  return h;
}

TEST(HybridSteer, EbpfEntryStaysUntilSlowHardwareConfirms) {
  Hybrid h = make(HwMode::kOk, std::chrono::milliseconds(40));
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(h.steer->insert(redirect_n(1)).ok());
  auto insert_time = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(insert_time, std::chrono::milliseconds(10)) << "insert must not wait for the hardware";
  EXPECT_TRUE(h.ebpf->has(flow_n(1))) << "steered by eBPF at once";
  EXPECT_EQ(*h.steer->path(flow_n(1)), FlowPath::kHwPending);
  std::this_thread::sleep_for(std::chrono::milliseconds(15));
  EXPECT_TRUE(h.ebpf->has(flow_n(1))) << "eBPF entry removed before the hardware confirmed";
  h.steer->drain();
  EXPECT_FALSE(h.ebpf->has(flow_n(1))) << "eBPF entry should go once the hardware holds the rule";
  EXPECT_EQ(*h.steer->path(flow_n(1)), FlowPath::kHw);
  EXPECT_EQ(h.steer->stats().hw_confirmed, 1u);
  auto listed = *h.steer->list();
  ASSERT_EQ(listed.size(), 1u);  // listed from the hardware side now
  EXPECT_EQ(listed[0].entry.flow, flow_n(1));

  ASSERT_TRUE(h.steer->remove(flow_n(1)).ok());
  h.steer->drain();
  EXPECT_EQ(h.hw->removes_copy(), std::vector<std::string>{flow_n(1).to_string()});
  EXPECT_FALSE(h.steer->path(flow_n(1)).ok());
}

TEST(HybridSteer, InsertThenRemoveBeforeTheWorkerRunsIssuesNothing) {
  Hybrid h = make(HwMode::kOk, {}, /*gated=*/true);
  ASSERT_TRUE(h.steer->insert(redirect_n(1)).ok());  // the worker takes this one and waits at the gate
  h.hw->wait_entered(1);
  ASSERT_TRUE(h.steer->insert(redirect_n(2)).ok());  // queued behind it
  ASSERT_TRUE(h.steer->remove(flow_n(2)).ok());      // cancelled in user space
  EXPECT_FALSE(h.ebpf->has(flow_n(2)));
  h.hw->open_gate();
  h.steer->drain();
  EXPECT_EQ(h.hw->adds_copy(), std::vector<std::string>{flow_n(1).to_string()}) << "flow 2 reached the hardware";
  EXPECT_TRUE(h.hw->removes_copy().empty());
  EXPECT_EQ(h.steer->stats().hw_cancelled, 1u);
}

TEST(HybridSteer, RemoveDuringInFlightInsertDeletesInHardwareAfterwards) {
  Hybrid h = make(HwMode::kOk, {}, /*gated=*/true);
  ASSERT_TRUE(h.steer->insert(redirect_n(1)).ok());
  h.hw->wait_entered(1);                          // request "in the kernel"
  ASSERT_TRUE(h.steer->remove(flow_n(1)).ok());   // cannot be cancelled any more
  EXPECT_FALSE(h.ebpf->has(flow_n(1)));
  h.hw->open_gate();
  h.steer->drain();
  EXPECT_EQ(h.hw->adds_copy().size(), 1u);
  EXPECT_EQ(h.hw->removes_copy(), std::vector<std::string>{flow_n(1).to_string()});
  EXPECT_FALSE(h.ebpf->has(flow_n(1)));
  EXPECT_FALSE(h.steer->path(flow_n(1)).ok());
}

TEST(HybridSteer, UnsupportedHardwareStaysEbpfOnlyAndSaysSo) {
  Hybrid h = make(HwMode::kUnsupported);
  ASSERT_TRUE(h.steer->insert(redirect_n(1)).ok());
  h.steer->drain();
  EXPECT_FALSE(h.steer->hardware_supported());
  EXPECT_NE(h.steer->mode().find("ebpf-only"), std::string::npos) << h.steer->mode();
  EXPECT_NE(h.steer->mode().find("no cls_flower"), std::string::npos) << h.steer->mode();
  EXPECT_TRUE(h.ebpf->has(flow_n(1)));
  EXPECT_EQ(*h.steer->path(flow_n(1)), FlowPath::kEbpf);
  // Later inserts do not even try the hardware.
  ASSERT_TRUE(h.steer->insert(redirect_n(2)).ok());
  h.steer->drain();
  EXPECT_EQ(h.hw->adds_copy().size(), 1u);
  EXPECT_EQ(h.steer->stats().hw_unsupported, 1u);
  EXPECT_TRUE(h.ebpf->has(flow_n(2)));
}

TEST(HybridSteer, FailingHardwareKeepsTheFlowInEbpf) {
  Hybrid h = make(HwMode::kFailing);
  ASSERT_TRUE(h.steer->insert(redirect_n(1)).ok());
  h.steer->drain();
  EXPECT_TRUE(h.steer->hardware_supported());
  EXPECT_TRUE(h.ebpf->has(flow_n(1)));
  EXPECT_EQ(*h.steer->path(flow_n(1)), FlowPath::kEbpf);
  EXPECT_EQ(h.steer->stats().hw_failed, 1u);
  ASSERT_TRUE(h.steer->remove(flow_n(1)).ok());
  h.steer->drain();
  EXPECT_TRUE(h.hw->removes_copy().empty()) << "nothing to delete: the hardware never took it";
}

TEST(HybridSteer, BlockNeverGoesToHardware) {
  Hybrid h = make(HwMode::kOk);
  ASSERT_TRUE(h.steer->insert(SteerEntry::block(flow_n(1), 1, 1)).ok());
  h.steer->drain();
  EXPECT_TRUE(h.hw->adds_copy().empty());
  EXPECT_TRUE(h.ebpf->has(flow_n(1)));
}

TEST(HybridSteer, BurstOfTenThousandFlowsKeepsOrder) {
  constexpr uint32_t kFlows = 10000;
  Hybrid h = make(HwMode::kOk, {}, /*gated=*/true);
  std::vector<std::string> want;
  for (uint32_t i = 0; i < kFlows; i++) {
    ASSERT_TRUE(h.steer->insert(redirect_n(i)).ok());
    if (i % 10 == 9 && i != 0) {
      ASSERT_TRUE(h.steer->remove(flow_n(i)).ok());  // every 10th removed while queued
      continue;
    }
    want.push_back(flow_n(i).to_string());
  }
  EXPECT_EQ(h.ebpf->map.size(), want.size()) << "every live flow is in eBPF before the hardware runs";
  h.hw->open_gate();
  h.steer->drain();
  EXPECT_EQ(h.hw->adds_copy(), want) << "hardware inserts out of order or cancelled ones issued";
  EXPECT_TRUE(h.ebpf->map.empty()) << "eBPF entries left after the hardware confirmed all";
  HybridStats s = h.steer->stats();
  EXPECT_EQ(s.ebpf_inserts, kFlows);
  EXPECT_EQ(s.hw_confirmed, want.size());
  EXPECT_EQ(s.hw_cancelled, kFlows - want.size());
  EXPECT_TRUE(h.hw->removes_copy().empty());
}

}  // namespace
}  // namespace xo::steer
