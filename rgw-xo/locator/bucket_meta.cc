#include "rgw-xo/locator/bucket_meta.h"

namespace xo::rgw {

std::string bucket_entrypoint_oid(const std::string& tenant, const std::string& name) {
  return tenant.empty() ? name : tenant + "/" + name;
}

std::string bucket_instance_oid(const Bucket& b) {
  std::string oid = ".bucket.meta.";
  if (!b.tenant.empty()) oid += b.tenant + ":";
  return oid + b.name + ":" + b.bucket_id;
}

Result<Bucket> decode_bucket_entrypoint(std::string_view bytes) {
  // RGWBucketEntryPoint: DECODE_START_LEGACY_COMPAT_LEN_32(10, 4, 4); v8+ starts with
  // the rgw_bucket (older ones embedded a whole RGWBucketInfo).
  DencReader r(bytes);
  auto f = r.begin("RGWBucketEntryPoint", 10, 4, 4, 3);
  if (r.ok() && f.v < 8) r.fail("legacy encoding v" + std::to_string(f.v) + " not supported");
  Bucket b;
  decode(r, b);
  r.finish("RGWBucketEntryPoint", f);
  if (!r.ok()) return error("bucket entrypoint: " + r.error());
  if (b.marker.empty()) return error("bucket entrypoint: empty bucket marker");
  return b;
}

Result<BucketInstance> decode_bucket_instance(std::string_view bytes) {
  // RGWBucketInfo: DECODE_START_LEGACY_COMPAT_LEN_32(23, 4, 4): bucket, owner id,
  // flags, zonegroup, creation time, placement rule (a "name[/class]" string since v17).
  DencReader r(bytes);
  auto f = r.begin("RGWBucketInfo", 23, 4, 4, 3);
  if (r.ok() && f.v < 17) r.fail("legacy encoding v" + std::to_string(f.v) + " not supported");
  BucketInstance bi;
  decode(r, bi.bucket);
  r.str();  // owner id
  bi.flags = r.u32();
  r.str();  // zonegroup
  r.u64();  // creation time
  decode(r, bi.placement);
  r.finish("RGWBucketInfo", f);
  if (!r.ok()) return error("bucket instance: " + r.error());
  return bi;
}

}  // namespace xo::rgw
