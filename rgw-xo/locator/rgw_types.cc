#include "rgw-xo/locator/rgw_types.h"

namespace xo::rgw {

std::string PlacementRule::to_string() const {
  if (storage_class.empty() || storage_class == "STANDARD") return name;
  return name + "/" + storage_class;
}

PlacementRule PlacementRule::parse(const std::string& s) {
  auto slash = s.find('/');
  if (slash == std::string::npos) return {s, ""};
  return {s.substr(0, slash), s.substr(slash + 1)};
}

std::string ObjKey::oid() const {
  if (ns.empty() && !encodes_instance()) {
    if (name.empty() || name[0] != '_') return name;
    return "_" + name;
  }
  std::string oid = "_" + ns;
  if (encodes_instance()) oid += ":" + instance;
  oid += "_";
  oid += name;
  return oid;
}

std::string ObjKey::locator() const {
  if (!name.empty() && name[0] == '_' && ns.empty()) return name;
  return {};
}

std::string prepend_marker(const std::string& marker, const std::string& name) {
  if (marker.empty()) return name;
  return marker + "_" + name;
}

RawObj raw_obj(const Bucket& bucket, const ObjKey& key) {
  RawObj r{prepend_marker(bucket.marker, key.oid()), {}};
  std::string loc = key.locator();
  if (!loc.empty()) r.locator = prepend_marker(bucket.marker, loc);
  return r;
}

void decode(DencReader& r, Pool& pool) {
  // rgw_pool: DECODE_START_LEGACY_COMPAT_LEN(10, 3, 3); before v10 it was a bare name.
  auto f = r.begin("rgw_pool", 10, 3, 3);
  if (!r.ok()) return;
  if (f.v < 10) return r.fail("rgw_pool: legacy encoding v" + std::to_string(f.v) + " not supported");
  pool.name = r.str();
  pool.ns = r.str();
  r.finish("rgw_pool", f);
}

void decode(DencReader& r, PlacementRule& rule) {
  // rgw_placement_rule encodes itself as one string "name[/storage_class]".
  rule = PlacementRule::parse(r.str());
}

void decode(DencReader& r, Bucket& b) {
  // rgw_bucket: DECODE_START_LEGACY_COMPAT_LEN(10, 3, 3); v10 since Jewel.
  auto f = r.begin("rgw_bucket", 10, 3, 3);
  if (!r.ok()) return;
  if (f.v < 10) return r.fail("rgw_bucket: legacy encoding v" + std::to_string(f.v) + " not supported");
  b.name = r.str();
  b.marker = r.str();
  b.bucket_id = r.str();
  b.tenant = r.str();
  if (r.boolean()) {
    decode(r, b.explicit_data_pool);
    Pool extra, index;
    decode(r, extra);
    decode(r, index);
  }
  r.finish("rgw_bucket", f);
}

void decode(DencReader& r, Obj& o) {
  // rgw_obj: DECODE_START_LEGACY_COMPAT_LEN(6, 3, 3). v6 is Jewel..Reef; a v7 (snap_id,
  // after Reef) keeps compat 6 and its extra field is skipped by the struct length.
  auto f = r.begin("rgw_obj", 7, 3, 3);
  if (!r.ok()) return;
  if (f.v < 6) return r.fail("rgw_obj: legacy encoding v" + std::to_string(f.v) + " not supported");
  decode(r, o.bucket);
  o.key.ns = r.str();
  o.key.name = r.str();
  o.key.instance = r.str();
  r.finish("rgw_obj", f);
}

}  // namespace xo::rgw
