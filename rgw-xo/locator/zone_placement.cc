#include "rgw-xo/locator/zone_placement.h"

#include <nlohmann/json.hpp>

namespace xo::rgw {

std::string ZonePlacement::key(const PlacementRule& rule, const std::string& default_placement) {
  const std::string& target = rule.name.empty() ? default_placement : rule.name;
  return target + "/" + (rule.storage_class.empty() ? std::string("STANDARD") : rule.storage_class);
}

Result<ZonePlacement> ZonePlacement::from_zone_json(std::string_view zone_json, std::string default_placement) {
  try {
    return parse(zone_json, std::move(default_placement));
  } catch (const nlohmann::json::exception& e) {  // type mismatches throw
    return error(std::string("zone JSON: ") + e.what());
  }
}

Result<ZonePlacement> ZonePlacement::parse(std::string_view zone_json, std::string default_placement) {
  auto j = nlohmann::json::parse(zone_json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return error("zone JSON: not a JSON object");
  auto pp = j.find("placement_pools");
  if (pp == j.end() || !pp->is_array()) return error("zone JSON: no placement_pools array");
  ZonePlacement z;
  z.default_placement_ = std::move(default_placement);
  for (const auto& entry : *pp) {
    if (!entry.is_object() || !entry.contains("key") || !entry["key"].is_string() || !entry.contains("val"))
      return error("zone JSON: malformed placement_pools entry");
    const std::string target = entry["key"].get<std::string>();
    const auto& classes = entry["val"].value("storage_classes", nlohmann::json::object());
    if (!classes.is_object()) return error("zone JSON: storage_classes of " + target + " is not an object");
    for (const auto& [cls, val] : classes.items()) {
      if (!val.is_object()) continue;
      auto pool = val.find("data_pool");
      if (pool != val.end() && pool->is_string()) z.data_pools_[target + "/" + cls] = pool->get<std::string>();
      auto comp = val.find("compression_type");
      z.compression_[target + "/" + cls] = comp != val.end() && comp->is_string() && !comp->get<std::string>().empty() &&
                                           comp->get<std::string>() != "none";
    }
  }
  if (z.data_pools_.empty()) return error("zone JSON: no data pools");
  return z;
}

ZonePlacement ZonePlacement::defaults() {
  ZonePlacement z;
  z.set_data_pool({"default-placement", ""}, "default.rgw.buckets.data");
  return z;
}

void ZonePlacement::set_data_pool(const PlacementRule& rule, std::string pool) {
  data_pools_[key(rule, default_placement_)] = std::move(pool);
}

Result<std::string> ZonePlacement::data_pool(const PlacementRule& rule) const {
  auto it = data_pools_.find(key(rule, default_placement_));
  if (it == data_pools_.end()) return error("no data pool known for placement rule '" + key(rule, default_placement_) + "'");
  return it->second;
}

bool ZonePlacement::compressed(const PlacementRule& rule) const {
  auto it = compression_.find(key(rule, default_placement_));
  return it != compression_.end() && it->second;
}

}  // namespace xo::rgw
