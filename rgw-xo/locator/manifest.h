// RGWObjManifest (the head object's user.rgw.manifest xattr): decoder and the map
// from an object byte range to the RADOS extents that hold it.
//
// Encodings accepted (Ceph's RGWObjManifest::decode, DECODE_START_LEGACY_COMPAT_LEN_32
// (7, 2, 2)):
//   v1     u32-versioned, no compat byte, no length; explicit parts only
//   v2     explicit parts only (objs map)
//   v3-v5  + explicit flag, head obj, head_size, max_head_size, prefix, rules;
//          v4 tail bucket, v5 tail instance (always present)
//   v6     tail bucket / tail instance only when they differ from the head's
//   v7     + head placement rule, tail placement rule          (Pacific writes v7)
//   v8     (Reef) + tier_type and tier_config for objects transitioned to a cloud
//          tier; compat stays 6. We read tier_type: anything but a local tier means
//          the data is not in RADOS, so the object is not offloadable.
// Anything newer whose compat version is above 8, malformed bytes, or legacy rgw_obj /
// rgw_bucket encodings inside it give an Error ("not offloadable: ..."), never a guess.
//
// Layout rules (RGWObjManifest::obj_iterator::seek + get_implicit_location):
//   [0, head_size)                 the head object itself
//   part 0 (plain upload)          "<prefix><stripe>" in ns shadow, stripes numbered
//                                  from 1 after a head
//   part N (multipart)             stripe 0 "<prefix>.<N>" in ns multipart,
//                                  stripe S>0 "<prefix>.<N>_<S>" in ns shadow
// where prefix is the rule's override_prefix or the manifest prefix, and tails live in
// the tail bucket (marker) with the tail instance.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.h"
#include "rgw-xo/locator/rgw_types.h"

namespace xo::rgw {

struct ManifestPart {  // RGWObjManifestPart: one explicit piece (old manifests)
  Obj loc;
  uint64_t loc_ofs = 0;
  uint64_t size = 0;
};

struct ManifestRule {  // RGWObjManifestRule
  uint32_t start_part_num = 0;
  uint64_t start_ofs = 0;
  uint64_t part_size = 0;        // 0: one unlimited part
  uint64_t stripe_max_size = 0;  // 0: one unlimited stripe
  std::string override_prefix;
};

struct Manifest {
  uint8_t version = 0;
  uint64_t obj_size = 0;
  bool explicit_objs = false;
  std::map<uint64_t, ManifestPart> objs;
  Obj obj;  // the head object
  uint64_t head_size = 0;
  uint64_t max_head_size = 0;
  std::string prefix;
  std::map<uint64_t, ManifestRule> rules;
  Bucket tail_bucket;
  std::string tail_instance;
  PlacementRule head_placement;  // empty before v7: the bucket's rule applies
  PlacementRule tail_placement;
  std::string tier_type;  // v8+
};

// Decodes user.rgw.manifest. Errors say "not offloadable: <why>".
Result<Manifest> decode_manifest(std::string_view bytes);

// Where one piece of the requested range lives.
struct Extent {
  // Which placement rule names the pool: the manifest's head or tail rule (see
  // extent_placement()), or none for an old explicit part (the bucket's rule applies).
  enum class Where : uint8_t { head, tail, explicit_part };
  Where where = Where::head;
  RawObj object;             // RADOS name (+ locator) within the pool
  Pool explicit_pool;        // set when the bucket was created with explicit pools
  uint64_t object_offset = 0;  // offset inside the RADOS object
  uint64_t length = 0;
  uint64_t logical_offset = 0;  // offset inside the S3 object
};

// The placement rule of an extent's pool (empty: use the bucket's placement rule).
const PlacementRule& extent_placement(const Manifest& m, const Extent& e);

// The extents covering [offset, offset+length) of the object, in order. The range
// must lie within obj_size. max_extents bounds the work for corrupt manifests.
Result<std::vector<Extent>> manifest_extents(const Manifest& m, uint64_t offset, uint64_t length,
                                             size_t max_extents = size_t{1} << 20);

}  // namespace xo::rgw
