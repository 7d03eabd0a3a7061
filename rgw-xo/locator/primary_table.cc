#include "rgw-xo/locator/primary_table.h"

#include <nlohmann/json.hpp>

#include "rgw-xo/locator/pg_hash.h"

namespace xo::rgw {
namespace {

constexpr int kHashRjenkins = 2;  // CEPH_STR_HASH_RJENKINS
constexpr int64_t kMaxPoolId = 1 << 16;
constexpr int64_t kMaxOsdId = 1 << 16;

// "198.18.0.20:6800" or "[2001:2::14]:6800" -> the IP.
std::string host_of(const std::string& addr) {
  if (!addr.empty() && addr[0] == '[') {
    auto close = addr.find(']');
    return close == std::string::npos ? std::string() : addr.substr(1, close - 1);
  }
  auto colon = addr.rfind(':');
  return colon == std::string::npos ? addr : addr.substr(0, colon);
}

}  // namespace

Result<PrimaryTable> PrimaryTable::from_json(std::string_view osd_dump_json, std::string_view pg_dump_json) {
  // nlohmann throws on a type mismatch ("pool": "x"): keep that inside.
  try {
    return parse(osd_dump_json, pg_dump_json);
  } catch (const nlohmann::json::exception& e) {
    return error(std::string("osd/pg dump JSON: ") + e.what());
  }
}

Result<PrimaryTable> PrimaryTable::parse(std::string_view osd_dump_json, std::string_view pg_dump_json) {
  auto osd = nlohmann::json::parse(osd_dump_json, nullptr, false);
  auto pg = nlohmann::json::parse(pg_dump_json, nullptr, false);
  if (osd.is_discarded() || !osd.is_object()) return error("osd dump: not a JSON object");
  if (pg.is_discarded() || !pg.is_object()) return error("pg dump: not a JSON object");
  PrimaryTable t;
  if (!osd.contains("epoch") || !osd["epoch"].is_number_unsigned()) return error("osd dump: no epoch");
  t.epoch_ = osd["epoch"].get<uint32_t>();

  if (!osd.contains("pools") || !osd["pools"].is_array()) return error("osd dump: no pools");
  for (const auto& p : osd["pools"]) {
    int64_t id = p.value("pool", int64_t{-1});
    uint32_t pg_num = p.value("pg_num", 0u);
    if (id < 0 || id > kMaxPoolId || pg_num == 0 || pg_num > (1u << 20)) return error("osd dump: bad pool entry");
    if (t.pools_.size() <= static_cast<size_t>(id)) t.pools_.resize(id + 1);
    PoolPgs& pp = t.pools_[id];
    pp.known = true;
    pp.rjenkins = p.value("object_hash", kHashRjenkins) == kHashRjenkins;
    pp.pg_num = pg_num;
    pp.pg_num_mask = pg_num_mask(pg_num);
    pp.primary.assign(pg_num, -1);
  }

  if (!osd.contains("osds") || !osd["osds"].is_array()) return error("osd dump: no osds");
  for (const auto& o : osd["osds"]) {
    int64_t id = o.value("osd", int64_t{-1});
    if (id < 0 || id > kMaxOsdId) return error("osd dump: bad osd entry");
    if (t.hosts_.size() <= static_cast<size_t>(id)) t.hosts_.resize(id + 1);
    if (o.value("up", 0) != 1) continue;
    std::string addr;
    if (o.contains("public_addrs") && o["public_addrs"].contains("addrvec")) {
      for (const auto& a : o["public_addrs"]["addrvec"])
        if (a.is_object() && a.contains("addr") && a["addr"].is_string()) {
          addr = a["addr"].get<std::string>();
          break;
        }
    }
    if (addr.empty() && o.contains("public_addr") && o["public_addr"].is_string()) addr = o["public_addr"].get<std::string>();
    t.hosts_[id] = host_of(addr);
  }

  const auto* stats = &pg;
  if (pg.contains("pg_map")) stats = &pg["pg_map"];  // `pg dump` (all) nests it
  if (!stats->contains("pg_stats") || !(*stats)["pg_stats"].is_array()) return error("pg dump: no pg_stats");
  for (const auto& s : (*stats)["pg_stats"]) {
    std::string pgid = s.value("pgid", "");
    auto dot = pgid.find('.');
    if (dot == std::string::npos) return error("pg dump: bad pgid '" + pgid + "'");
    int64_t pool = std::strtoll(pgid.c_str(), nullptr, 10);
    uint32_t ps = static_cast<uint32_t>(std::strtoul(pgid.c_str() + dot + 1, nullptr, 16));
    if (pool < 0 || static_cast<size_t>(pool) >= t.pools_.size() || !t.pools_[pool].known) continue;
    PoolPgs& pp = t.pools_[pool];
    if (ps >= pp.pg_num) continue;  // pg_num changed since the mgr's report
    int32_t primary = s.value("acting_primary", -1);
    std::string state = s.value("state", "");
    bool active = state.find("active") != std::string::npos;
    bool up = primary >= 0 && static_cast<size_t>(primary) < t.hosts_.size() && !t.hosts_[primary].empty();
    pp.primary[ps] = (active && up) ? primary : -1;
  }
  for (const auto& pp : t.pools_)
    for (int32_t p : pp.primary) t.pgs_without_primary_ += p < 0;
  return t;
}

bool PrimaryTable::pg_of(int64_t pool, std::string_view hash_key, uint32_t* ps) const {
  if (pool < 0 || static_cast<size_t>(pool) >= pools_.size()) return false;
  const PoolPgs& pp = pools_[pool];
  if (!pp.known || !pp.rjenkins) return false;
  *ps = stable_mod(rjenkins_hash(hash_key), pp.pg_num, pp.pg_num_mask);
  return true;
}

Primary PrimaryTable::lookup(int64_t pool, std::string_view hash_key) const {
  Primary r;
  if (!pg_of(pool, hash_key, &r.ps)) return r;
  r.osd = pools_[pool].primary[r.ps];
  r.host = osd_host(r.osd);
  return r;
}

const std::string* PrimaryTable::osd_host(int32_t osd) const {
  if (osd < 0 || static_cast<size_t>(osd) >= hosts_.size() || hosts_[osd].empty()) return nullptr;
  return &hosts_[osd];
}

}  // namespace xo::rgw
