#include "rgw-xo/locator/manifest.h"

#include <algorithm>
#include <charconv>
#include <limits>

namespace xo::rgw {
namespace {

constexpr uint8_t kManifestMaxVersion = 8;

Error not_offloadable(const std::string& why) { return error("not offloadable: " + why); }

void decode(DencReader& r, ManifestPart& p) {
  // RGWObjManifestPart: DECODE_START_LEGACY_COMPAT_LEN_32(2, 2, 2).
  auto f = r.begin("RGWObjManifestPart", 2, 2, 2, 3);
  decode(r, p.loc);
  p.loc_ofs = r.u64();
  p.size = r.u64();
  r.finish("RGWObjManifestPart", f);
}

void decode(DencReader& r, ManifestRule& rule) {
  // RGWObjManifestRule: DECODE_START(2); v2 added override_prefix.
  auto f = r.begin_v("RGWObjManifestRule", 2);
  rule.start_part_num = r.u32();
  rule.start_ofs = r.u64();
  rule.part_size = r.u64();
  rule.stripe_max_size = r.u64();
  if (f.v >= 2) rule.override_prefix = r.str();
  r.finish("RGWObjManifestRule", f);
}

// The smallest encodings of a map element, to bound counts by the bytes left.
constexpr size_t kMinPartBytes = 8 + 1;
constexpr size_t kMinRuleBytes = 8 + 6 + 28;

}  // namespace

Result<Manifest> decode_manifest(std::string_view bytes) {
  DencReader r(bytes);
  Manifest m;
  auto f = r.begin("RGWObjManifest", kManifestMaxVersion, 2, 2, 3);
  m.version = f.v;
  m.obj_size = r.u64();
  for (uint32_t n = r.count(kMinPartBytes), i = 0; r.ok() && i < n; ++i) {
    uint64_t ofs = r.u64();
    decode(r, m.objs[ofs]);
  }
  if (f.v >= 3) {
    m.explicit_objs = r.boolean();
    decode(r, m.obj);
    m.head_size = r.u64();
    m.max_head_size = r.u64();
    m.prefix = r.str();
    for (uint32_t n = r.count(kMinRuleBytes), i = 0; r.ok() && i < n; ++i) {
      uint64_t ofs = r.u64();
      decode(r, m.rules[ofs]);
    }
  } else {
    m.explicit_objs = true;
    if (!m.objs.empty()) {
      m.obj = m.objs.begin()->second.loc;
      m.head_size = m.objs.begin()->second.size;
      m.max_head_size = m.head_size;
    }
  }
  if (!r.ok()) return not_offloadable("user.rgw.manifest: " + r.error());

  // RGW's fix-up for Ceph issue 16435: a copied old object's first explicit part may
  // name another object; the head is authoritative for [0, head_size).
  if (m.explicit_objs && m.head_size > 0 && !m.objs.empty()) {
    auto first = m.objs.find(0);
    if (first != m.objs.end() && !first->second.loc.key.oid().empty() && first->second.loc.key.ns.empty()) {
      first->second.loc = m.obj;
      first->second.size = m.head_size;
    }
  }

  bool tail_bucket_set = false, tail_instance_set = false;
  if (f.v >= 4) {
    if (f.v < 6 || r.boolean()) {
      decode(r, m.tail_bucket);
      tail_bucket_set = true;
    }
  }
  if (f.v >= 5) {
    if (f.v < 6 || r.boolean()) {
      m.tail_instance = r.str();
      tail_instance_set = true;
    }
  }
  if (!tail_bucket_set) m.tail_bucket = m.obj.bucket;
  if (!tail_instance_set) m.tail_instance = m.obj.key.instance;
  if (f.v >= 7) {
    decode(r, m.head_placement);
    decode(r, m.tail_placement);
  }
  if (f.v >= 8) m.tier_type = r.str();  // tier_config follows; the struct length skips it
  r.finish("RGWObjManifest", f);
  if (!r.ok()) return not_offloadable("user.rgw.manifest: " + r.error());
  if (!m.tier_type.empty() && m.tier_type != "rgw")
    return not_offloadable("object transitioned to tier '" + m.tier_type + "': its data is not in RADOS");
  if (m.explicit_objs && m.objs.empty() && m.obj_size > 0)
    return not_offloadable("explicit manifest without parts for a non-empty object");
  if (!m.explicit_objs && m.rules.empty() && m.obj_size > m.head_size)
    return not_offloadable("manifest has a tail but no rules");
  if (m.head_size > m.obj_size && !m.explicit_objs)
    return not_offloadable("manifest head_size exceeds obj_size");
  return m;
}

namespace {

uint64_t sat_add(uint64_t a, uint64_t b) {
  uint64_t s;
  return __builtin_add_overflow(a, b, &s) ? std::numeric_limits<uint64_t>::max() : s;
}

// One stripe: where the byte at `ofs` lives and how far that placement extends.
struct Stripe {
  Extent::Where where;
  RawObj object;
  Pool explicit_pool;
  uint64_t start = 0;    // logical offset where the stripe starts
  uint64_t end = 0;      // logical offset one past its end
  uint64_t loc_ofs = 0;  // RADOS offset of `start`
};

Result<Stripe> explicit_stripe(const Manifest& m, uint64_t ofs) {
  auto it = m.objs.upper_bound(ofs);
  if (it == m.objs.begin()) return not_offloadable("explicit manifest has no part at offset " + std::to_string(ofs));
  --it;
  const ManifestPart& p = it->second;
  uint64_t end = sat_add(it->first, p.size);
  if (ofs >= end) return not_offloadable("explicit manifest has a hole at offset " + std::to_string(ofs));
  Stripe s;
  s.where = Extent::Where::explicit_part;
  s.object = raw_obj(p.loc.bucket, p.loc.key);
  s.explicit_pool = p.loc.bucket.explicit_data_pool;
  s.start = it->first;
  s.end = end;
  s.loc_ofs = p.loc_ofs;
  return s;
}

// RGW's get_implicit_location() + rgw_obj_key::get_oid() + the bucket marker, built
// in one allocation (this runs once per 4 MiB stripe of every located range):
//   part 0:           <marker>__shadow[:<instance>]_<prefix><stripe>
//   part N, stripe 0: <marker>__multipart[:<instance>]_<prefix>.<N>
//   part N, stripe S: <marker>__shadow[:<instance>]_<prefix>.<N>_<S>
// Tails never carry a locator (their namespace is not empty).
std::string tail_oid(const std::string& marker, const std::string& prefix, const std::string& instance,
                     uint32_t part_id, uint32_t stripe) {
  const bool multipart_ns = part_id != 0 && stripe == 0;
  const bool with_instance = !instance.empty() && instance != "null";
  std::string oid;
  oid.reserve(marker.size() + prefix.size() + instance.size() + 40);
  if (!marker.empty()) {
    oid += marker;
    oid += '_';
  }
  oid += multipart_ns ? "_multipart" : "_shadow";
  if (with_instance) {
    oid += ':';
    oid += instance;
  }
  oid += '_';
  oid += prefix;
  char num[16];
  auto put = [&](uint32_t v) { oid.append(num, std::to_chars(num, num + sizeof num, v).ptr); };
  if (part_id == 0) {
    put(stripe);
  } else {
    oid += '.';
    put(part_id);
    if (stripe != 0) {
      oid += '_';
      put(stripe);
    }
  }
  return oid;
}

Result<Stripe> implicit_stripe(const Manifest& m, uint64_t ofs) {
  Stripe s;
  if (ofs < m.head_size) {
    s.where = Extent::Where::head;
    s.object = raw_obj(m.obj.bucket, m.obj.key);
    s.explicit_pool = m.obj.bucket.explicit_data_pool;
    s.start = 0;
    s.end = m.head_size;
    return s;
  }
  if (m.rules.empty()) return not_offloadable("manifest has no rule for offset " + std::to_string(ofs));
  auto next = m.rules.upper_bound(ofs);
  auto it = next;
  if (it != m.rules.begin()) --it;
  const ManifestRule& rule = it->second;
  if (ofs < rule.start_ofs)
    return not_offloadable("manifest rule starting at " + std::to_string(rule.start_ofs) + " does not cover offset " +
                           std::to_string(ofs));
  uint64_t part_index = rule.part_size > 0 ? (ofs - rule.start_ofs) / rule.part_size : 0;
  uint64_t part_id = uint64_t{rule.start_part_num} + part_index;
  if (part_id > static_cast<uint64_t>(std::numeric_limits<int>::max()))
    return not_offloadable("manifest part number out of range");
  uint64_t part_ofs = rule.start_ofs + part_index * rule.part_size;  // <= ofs: no overflow
  uint64_t stripe = 0, stripe_ofs = part_ofs;
  if (rule.stripe_max_size > 0) {
    stripe = (ofs - part_ofs) / rule.stripe_max_size;
    stripe_ofs = part_ofs + stripe * rule.stripe_max_size;
    if (part_id == 0 && m.head_size > 0) ++stripe;  // stripe numbers count the head
  }
  if (stripe > static_cast<uint64_t>(std::numeric_limits<int>::max()))
    return not_offloadable("manifest stripe number out of range");
  uint64_t end = m.obj_size;
  if (rule.stripe_max_size > 0) end = std::min(end, sat_add(stripe_ofs, rule.stripe_max_size));
  if (rule.part_size > 0) end = std::min(end, sat_add(part_ofs, rule.part_size));
  // Offsets at or past the next rule's key belong to that rule (as in RGW's seek()).
  if (next != m.rules.end()) end = std::min(end, next->first);

  const std::string& prefix = rule.override_prefix.empty() ? m.prefix : rule.override_prefix;
  if (part_id == 0 && ofs < m.max_head_size)  // RGW would read this from the head: inconsistent
    return not_offloadable("manifest maps offset " + std::to_string(ofs) + " past head_size into the head");
  const Bucket& bucket = m.tail_bucket.empty() ? m.obj.bucket : m.tail_bucket;
  s.where = Extent::Where::tail;
  s.object.oid = tail_oid(bucket.marker, prefix, m.tail_instance, static_cast<uint32_t>(part_id),
                          static_cast<uint32_t>(stripe));
  s.explicit_pool = bucket.explicit_data_pool;
  s.start = stripe_ofs;
  s.end = end;
  return s;
}

}  // namespace

const PlacementRule& extent_placement(const Manifest& m, const Extent& e) {
  static const PlacementRule kNone;
  switch (e.where) {
    case Extent::Where::head: return m.head_placement;
    case Extent::Where::tail: return m.tail_placement;
    case Extent::Where::explicit_part: break;
  }
  return kNone;
}

Result<std::vector<Extent>> manifest_extents(const Manifest& m, uint64_t offset, uint64_t length,
                                             size_t max_extents) {
  if (offset > m.obj_size || length > m.obj_size - offset)
    return error("range " + std::to_string(offset) + "+" + std::to_string(length) + " is outside the object of " +
                 std::to_string(m.obj_size) + " bytes");
  std::vector<Extent> out;
  uint64_t ofs = offset, stop = offset + length;
  while (ofs < stop) {
    if (out.size() >= max_extents) return not_offloadable("range needs more than " + std::to_string(max_extents) + " extents");
    auto stripe = m.explicit_objs ? explicit_stripe(m, ofs) : implicit_stripe(m, ofs);
    if (!stripe.ok()) return stripe.take_error();
    Stripe& s = *stripe;
    if (s.end <= ofs) return not_offloadable("manifest stripe at " + std::to_string(ofs) + " is empty");
    uint64_t n = std::min(s.end, stop) - ofs;
    Extent e;
    e.where = s.where;
    e.object = std::move(s.object);
    e.explicit_pool = std::move(s.explicit_pool);
    e.object_offset = sat_add(s.loc_ofs, ofs - s.start);
    e.length = n;
    e.logical_offset = ofs;
    if (e.object_offset > std::numeric_limits<uint64_t>::max() - n) return not_offloadable("part offset overflows");
    out.push_back(std::move(e));
    ofs += n;
  }
  return out;
}

}  // namespace xo::rgw
