#include "rgw-xo/locator/cluster_map.h"

#include <nlohmann/json.hpp>

namespace xo::rgw {

Result<std::string> ClusterMap::command(bool mgr, const std::string& json) {
  librados::bufferlist in, out;
  std::string status;
  int r = mgr ? rados_.mgr_command(json, in, &out, &status) : rados_.mon_command(json, in, &out, &status);
  if (r < 0) return error((mgr ? "mgr command " : "mon command ") + json + ": " + status, -r);
  return out.to_str();
}

Result<uint32_t> ClusterMap::current_epoch() {
  XO_ASSIGN_OR_RETURN(std::string stat, command(false, R"({"prefix": "osd stat", "format": "json"})"));
  auto j = nlohmann::json::parse(stat, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("epoch") || !j["epoch"].is_number_unsigned())
    return error("osd stat: no epoch in " + stat);
  return j["epoch"].get<uint32_t>();
}

Status ClusterMap::load() {
  XO_ASSIGN_OR_RETURN(std::string osd_dump, command(false, R"({"prefix": "osd dump", "format": "json"})"));
  XO_ASSIGN_OR_RETURN(std::string pg_dump,
                      command(true, R"({"prefix": "pg dump", "dumpcontents": ["pgs_brief"], "format": "json"})"));
  auto t = PrimaryTable::from_json(osd_dump, pg_dump);
  if (!t.ok()) return t.take_error();
  table_.store(std::make_shared<const PrimaryTable>(std::move(*t)), std::memory_order_release);
  return {};
}

Result<bool> ClusterMap::refresh() {
  auto t = table();
  XO_ASSIGN_OR_RETURN(uint32_t epoch, current_epoch());
  auto now = std::chrono::steady_clock::now();
  if (!t || t->epoch() != epoch) last_change_ = now;
  // The manager's PG report trails the map: keep reloading for a while after a change.
  bool settling = now - last_change_ < kSettle;
  if (t && t->epoch() == epoch && t->pgs_without_primary() == 0 && !settling) return false;
  XO_TRY(load());
  return true;
}

}  // namespace xo::rgw
