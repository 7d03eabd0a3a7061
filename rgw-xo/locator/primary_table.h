// RADOS object -> acting primary OSD -> that OSD's host address, from a local table.
//
// Built from two monitor/manager answers: `osd dump` (epoch, pools with pg_num and
// hash type, OSD addresses and up/in state) and `pg dump pgs_brief` (acting primary of
// every PG). A lookup hashes the name and indexes two vectors: no lock, no RPC. A
// table is an immutable snapshot; ClusterMap (librados side) swaps in a new one when
// the osdmap epoch changes. Locality is an optimization only: reads through librados
// are correct whatever this table says.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.h"

namespace xo::rgw {

struct Primary {
  int32_t osd = -1;         // -1: unknown (PG not active, OSD down, pool unknown)
  uint32_t ps = 0;          // placement seed: the PG is <pool>.<ps in hex>
  const std::string* host = nullptr;  // the OSD's public IP, nullptr when unknown
};

class PrimaryTable {
 public:
  static Result<PrimaryTable> from_json(std::string_view osd_dump_json, std::string_view pg_dump_json);

  uint32_t epoch() const { return epoch_; }
  // hash_key: the object's locator if it has one, else its name.
  Primary lookup(int64_t pool, std::string_view hash_key) const;
  // The PG of a name (no primary), for comparisons with `ceph osd map`.
  bool pg_of(int64_t pool, std::string_view hash_key, uint32_t* ps) const;
  const std::string* osd_host(int32_t osd) const;
  size_t pgs_without_primary() const { return pgs_without_primary_; }

 private:
  static Result<PrimaryTable> parse(std::string_view osd_dump_json, std::string_view pg_dump_json);
  struct PoolPgs {
    bool known = false;
    bool rjenkins = true;
    uint32_t pg_num = 0;
    uint32_t pg_num_mask = 0;
    std::vector<int32_t> primary;  // by ps
  };
  uint32_t epoch_ = 0;
  std::vector<PoolPgs> pools_;        // by pool id
  std::vector<std::string> hosts_;    // by OSD id; empty when down
  size_t pgs_without_primary_ = 0;
};

}  // namespace xo::rgw
