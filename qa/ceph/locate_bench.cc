// locate_bench — run by qa/benchmarks/locate (qa/bench locate) against the Ceph lab.
// JSON lines on stdout:
//   locate.get             µs: cached bucket, one RADOS round trip (getxattrs+stat),
//                          manifest decode, extents and primaries of a whole object
//   locate.xattr_baseline  µs: bare librados getxattrs of the same head, interleaved
//                          with locate.get in the same run
//   locate.primary         ns per lookup (rjenkins hash of the name + table), timed in
//                          batches of 1000 over >= 1,000,000 distinct names
// usage: locate_bench BUCKET KEY [ITERATIONS]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/base/bench_report.h"
#include "qa/ceph/ceph_lab_client.h"
#include "rgw-xo/locator/locator.h"

namespace {
using xo::bench::percentile;
using xo::bench::print_latency;

using Clock = std::chrono::steady_clock;



double us_since(Clock::time_point t0) { return std::chrono::duration<double, std::micro>(Clock::now() - t0).count(); }

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s BUCKET KEY [ITERATIONS]\n", argv[0]);
    return 2;
  }
  std::string bucket = argv[1], key = argv[2];
  int iterations = argc > 3 ? std::atoi(argv[3]) : 2000;

  auto client = xo::ceph_lab::Client::connect();
  if (!client.ok()) {
    std::fprintf(stderr, "locate_bench: %s\n", client.error().to_string().c_str());
    return 1;
  }
  auto zone = xo::ceph_lab::run_capture("radosgw-admin -n client.admin zone get 2>/dev/null");
  if (!zone.ok()) {
    std::fprintf(stderr, "locate_bench: %s\n", zone.error().to_string().c_str());
    return 1;
  }
  auto placement = xo::rgw::ZonePlacement::from_zone_json(*zone);
  auto map = std::make_shared<xo::rgw::ClusterMap>((*client)->rados());
  if (!placement.ok() || !map->load().ok()) {
    std::fprintf(stderr, "locate_bench: cannot read zone placement or cluster map\n");
    return 1;
  }
  xo::rgw::LocatorConfig cfg;
  cfg.placement = std::move(*placement);
  xo::rgw::Locator locator((*client)->rados(), map, std::move(cfg));

  auto first = locator.locate("", bucket, key);  // also warms the bucket cache
  if (!first.ok() || !first->offloadable()) {
    std::fprintf(stderr, "locate_bench: %s/%s: %s\n", bucket.c_str(), key.c_str(),
                 first.ok() ? first->not_offloadable.c_str() : first.error().to_string().c_str());
    return 1;
  }
  const auto head = first->head_object;
  const auto head_pool = first->head_pool;
  std::fprintf(stderr, "locate_bench: %s/%s: %llu bytes, %zu extents\n", bucket.c_str(), key.c_str(),
               static_cast<unsigned long long>(first->head.size), first->extents.size());
  auto io = locator.ioctx(head_pool);
  if (!io.ok()) return 1;

  std::vector<double> get_us, xattr_us;
  size_t extents = 0;
  for (int i = 0; i < iterations; ++i) {
    auto t0 = Clock::now();
    auto loc = locator.locate("", bucket, key);
    double t = us_since(t0);
    if (!loc.ok() || !loc->offloadable()) return 1;
    extents += loc->extents.size();
    get_us.push_back(t);

    t0 = Clock::now();
    (*io)->locator_set_key(head.locator);
    librados::ObjectReadOperation op;
    std::map<std::string, librados::bufferlist> attrs;
    int rval = 0;
    op.getxattrs(&attrs, &rval);
    int r = (*io)->operate(head.oid, &op, nullptr);
    xattr_us.push_back(us_since(t0));
    if (r < 0 || attrs.empty()) return 1;
  }
  if (std::getenv("XO_LOCATE_BENCH_DETAIL")) {  // where locate.get's time goes (stderr)
    std::vector<double> rh, cl;
    for (int i = 0; i < iterations; ++i) {
      auto t0 = Clock::now();
      auto h = locator.read_head(head_pool, head);
      rh.push_back(us_since(t0));
      t0 = Clock::now();
      auto info = xo::rgw::classify_head(h->views(), h->size);
      auto ex = xo::rgw::manifest_extents(*info.manifest, 0, info.size);
      cl.push_back(us_since(t0));
    }
    std::fprintf(stderr, "detail: read_head (getxattrs+stat) p50 %.1f us, classify+extents p50 %.1f us\n", percentile(rh, 0.5),
                 percentile(cl, 0.5));
  }
  print_latency("locate.get", "us", get_us,
       "locate a whole " + std::to_string(first->head.size >> 20) + " MiB object: cached bucket, one RADOS round trip "
       "(getxattrs+stat), manifest decode, " + std::to_string(extents / iterations) + " extents with acting primaries");
  print_latency("locate.xattr_baseline", "us", xattr_us, "bare librados getxattrs of the same head object, same run, interleaved");

  // Primary lookups over distinct names shaped like RGW tail objects.
  auto table = map->table();
  const int64_t pool = first->extents.back().pool_id;
  const std::string base = first->extents.back().extent.object.oid;
  constexpr size_t kNames = 1'000'000, kBatch = 1000;
  std::vector<std::string> names;
  names.reserve(kNames);
  for (size_t i = 0; i < kNames; ++i) names.push_back(base + "." + std::to_string(i));
  std::vector<double> ns_per_lookup;
  long sink = 0;
  for (int pass = 0; pass < 3; ++pass) {
    for (size_t b = 0; b < kNames; b += kBatch) {
      auto t0 = Clock::now();
      for (size_t i = b; i < b + kBatch; ++i) sink += table->lookup(pool, names[i]).osd;
      ns_per_lookup.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / kBatch);
    }
  }
  print_latency("locate.primary", "ns", ns_per_lookup,
       "acting primary of a RADOS object name (rjenkins hash, stable_mod, table) per lookup; batches of 1000 over "
       "1,000,000 distinct " + std::to_string(base.size() + 7) + "-byte names, 3 passes");
  std::fprintf(stderr, "locate_bench: checksum %ld\n", sink);
  return 0;
}
