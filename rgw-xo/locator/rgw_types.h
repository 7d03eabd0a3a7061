// The RGW value types the locator needs, in RGW's own words, and their decoders.
//
// Naming follows src/rgw/rgw_obj_types.h / rgw_bucket_types.h of Ceph: a bucket has a
// name, a tenant, a marker (prefix of every RADOS object of the bucket) and an id;
// an object key has a name, an instance (version id) and a namespace ("shadow",
// "multipart" for tail objects). Only the encodings written by Jewel and later are
// accepted (rgw_bucket v10, rgw_obj v6+, rgw_pool v10); anything older is reported as
// not offloadable instead of being guessed.
#pragma once

#include <string>

#include "rgw-xo/locator/denc_reader.h"

namespace xo::rgw {

// A RADOS pool with an optional namespace (rgw_pool).
struct Pool {
  std::string name;
  std::string ns;
  bool empty() const { return name.empty(); }
};

// rgw_placement_rule: placement target + storage class, encoded as "name[/class]".
struct PlacementRule {
  std::string name;
  std::string storage_class;  // empty means STANDARD
  bool empty() const { return name.empty(); }
  std::string to_string() const;
  static PlacementRule parse(const std::string& s);
};

struct Bucket {
  std::string tenant;
  std::string name;
  std::string marker;     // prefix of the bucket's RADOS objects
  std::string bucket_id;  // names the bucket instance metadata object
  Pool explicit_data_pool;  // set only for buckets created with explicit pools
  bool empty() const { return name.empty() && marker.empty(); }
};

struct ObjKey {
  std::string name;
  std::string instance;  // version id; "null" is the pre-versioning version
  std::string ns;        // "" for heads, "shadow"/"multipart" for tails

  // RGW's rgw_obj_key::get_oid(): heads whose name starts with '_' get an extra '_',
  // namespaced or versioned keys become "_<ns>[:<instance>]_<name>".
  std::string oid() const;
  // RGW's rgw_obj_key::get_loc(): a locator only for un-namespaced keys starting
  // with '_' (kept for compatibility with old RGWs that always set one).
  std::string locator() const;
  bool encodes_instance() const { return !instance.empty() && instance != "null"; }
};

struct Obj {
  Bucket bucket;
  ObjKey key;
};

// A RADOS object name plus its locator (the hash key; empty means the name itself).
struct RawObj {
  std::string oid;
  std::string locator;
};

// Prefix a bucket-relative name with the bucket marker, as RGW does.
std::string prepend_marker(const std::string& marker, const std::string& name);
RawObj raw_obj(const Bucket& bucket, const ObjKey& key);

// Decoders: on malformed input they mark the reader failed and return partial data.
void decode(DencReader& r, Pool& pool);
void decode(DencReader& r, PlacementRule& rule);
void decode(DencReader& r, Bucket& bucket);
void decode(DencReader& r, Obj& obj);

}  // namespace xo::rgw
