// Object name -> placement group, as the OSD client computes it, without a lock or a
// call into librados (librados' IoCtx::get_object_pg_hash_position2 gives the same
// answer behind the Objecter's map lock; the tests compare both).
//   hash  = Bob Jenkins' lookup2 ("rjenkins", CEPH_STR_HASH_RJENKINS) of the locator,
//           or of the object name when there is no locator (pool namespace empty,
//           as for every RGW data object)
//   ps    = ceph_stable_mod(hash, pg_num, pg_num_mask)
#pragma once

#include <cstdint>
#include <string_view>

namespace xo::rgw {

uint32_t rjenkins_hash(std::string_view key);

// Ceph's stable modulo: keeps most objects in place when pg_num grows.
inline uint32_t stable_mod(uint32_t x, uint32_t b, uint32_t bmask) {
  return (x & bmask) < b ? (x & bmask) : (x & (bmask >> 1));
}

// pg_num_mask as the OSDMap computes it: (1 << ceil(log2(pg_num))) - 1.
inline uint32_t pg_num_mask(uint32_t pg_num) {
  if (pg_num <= 1) return 0;
  return (~uint32_t{0}) >> __builtin_clz(pg_num - 1);
}

}  // namespace xo::rgw
