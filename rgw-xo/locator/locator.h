// The RGW object locator: (tenant, bucket, key, version, range) -> head facts and the
// RADOS extents of the range with the acting primary (and its host) of each.
//
// Bucket -> marker/id/placement: librados reads of the bucket entrypoint and instance
// in the zone's meta pool (namespace "root"), cached. Chosen over the admin API
// because it needs no RGW system user and no HTTP round trip through the very RGW
// we relay to, costs ~2 RADOS reads once per bucket, and uses the same librados
// session as the head read. The admin API would insulate us from encoding changes;
// the decoders here skip unknown trailing fields instead and refuse old encodings.
//
// Per object: ONE RADOS round trip (getxattrs + stat in one ObjectReadOperation) for
// the head; a second one only when the head is a versioned bucket's OLH (a GET without
// versionId on a versioned bucket). A head that is gone invalidates the cached bucket
// once (the bucket may have been deleted and recreated under a new marker).
//
// Not thread-safe (IoCtx locator keys are per IoCtx): one Locator per thread, sharing
// one ClusterMap.
#pragma once

#include <rados/librados.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/base/result.h"
#include "rgw-xo/locator/cluster_map.h"
#include "rgw-xo/locator/head_attrs.h"
#include "rgw-xo/locator/manifest.h"
#include "rgw-xo/locator/zone_placement.h"

namespace xo::rgw {

struct LocatorConfig {
  std::string meta_pool = "default.rgw.meta";  // the zone's domain_root pool
  std::string meta_root_ns = "root";
  ZonePlacement placement = ZonePlacement::defaults();
};

struct BucketEntry {
  Bucket bucket;
  PlacementRule placement;
  std::string head_pool;   // data pool of the bucket's placement (heads live there)
  bool versioned = false;  // BUCKET_VERSIONED flag at the time it was cached
};

struct LocatedExtent {
  Extent extent;
  std::string pool;
  int64_t pool_id = -1;
  Primary primary;  // acting primary (osd -1 when unknown) and its host
};

struct ObjectLocation {
  std::string not_offloadable;  // empty: the extents below are the body, verbatim
  bool found = true;            // false: no such object (RGW answers 404)
  HeadInfo head;
  RawObj head_object;
  std::string head_pool;
  uint64_t range_offset = 0;
  uint64_t range_length = 0;
  std::vector<LocatedExtent> extents;
  bool offloadable() const { return found && not_offloadable.empty(); }
};

class Locator {
 public:
  Locator(librados::Rados& rados, std::shared_ptr<ClusterMap> map, LocatorConfig config);

  // The cached entry stays valid until forget_bucket() of that bucket.
  Result<const BucketEntry*> bucket(const std::string& tenant, const std::string& name);
  void forget_bucket(const std::string& tenant, const std::string& name);

  // range: nullopt for the whole object; otherwise [offset, offset+length) clipped to the
  // object (an S3 range past the end is RGW's to answer: not offloadable).
  Result<ObjectLocation> locate(const std::string& tenant, const std::string& bucket, const std::string& key,
                                const std::string& version_id = {},
                                std::optional<std::pair<uint64_t, uint64_t>> range = std::nullopt);

  // The bare head round trip (exposed for the xattr baseline benchmark and tests).
  struct HeadRead {
    std::map<std::string, librados::bufferlist> xattrs;
    uint64_t size = 0;
    std::vector<XattrView> views();  // name/value views into xattrs
  };
  Result<HeadRead> read_head(const std::string& pool, const RawObj& obj);
  Result<librados::IoCtx*> ioctx(const std::string& pool);

 private:
  Result<ObjectLocation> locate_once(const BucketEntry& b, const std::string& key, const std::string& version_id,
                                     std::optional<std::pair<uint64_t, uint64_t>> range);
  librados::Rados& rados_;
  std::shared_ptr<ClusterMap> map_;
  LocatorConfig config_;
  std::map<std::string, BucketEntry, std::less<>> buckets_;  // by entrypoint oid ("tenant/name")
  std::map<std::string, librados::IoCtx> ioctxs_;
  std::map<std::string, int64_t> pool_ids_;
};

}  // namespace xo::rgw
