// Bucket metadata as RGW stores it in the zone's domain root (default.rgw.meta, RADOS
// namespace "root"):
//   "<bucket>" or "<tenant>/<bucket>"               RGWBucketEntryPoint -> rgw_bucket
//   ".bucket.meta.[<tenant>:]<bucket>:<bucket_id>"  RGWBucketInfo -> placement rule
// Only the leading fields are decoded; the struct lengths skip the rest, so newer RGWs
// that append fields stay readable.
#pragma once

#include <string>
#include <string_view>

#include "common/base/result.h"
#include "rgw-xo/locator/rgw_types.h"

namespace xo::rgw {

std::string bucket_entrypoint_oid(const std::string& tenant, const std::string& name);
std::string bucket_instance_oid(const Bucket& b);

Result<Bucket> decode_bucket_entrypoint(std::string_view bytes);

struct BucketInstance {
  Bucket bucket;
  uint32_t flags = 0;
  PlacementRule placement;
};
Result<BucketInstance> decode_bucket_instance(std::string_view bytes);

}  // namespace xo::rgw
