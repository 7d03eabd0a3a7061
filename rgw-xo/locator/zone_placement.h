// Which RADOS pool holds the data of a placement rule (zone placement targets and
// their storage classes). Read once at start from the zone's JSON (`radosgw-admin
// zone get`, or the admin API's /admin/zone): placement changes need an RGW restart
// too, so a restart of the locator's daemon is the same contract.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "common/base/result.h"
#include "rgw-xo/locator/rgw_types.h"

namespace xo::rgw {

class ZonePlacement {
 public:
  // Parses the zone JSON (placement_pools[].key / val.storage_classes.*.data_pool).
  // default_placement names the zonegroup's default placement target.
  static Result<ZonePlacement> from_zone_json(std::string_view zone_json,
                                              std::string default_placement = "default-placement");
  // A table for a zone with default names: default-placement -> default.rgw.buckets.data.
  static ZonePlacement defaults();

  void set_data_pool(const PlacementRule& rule, std::string pool);
  // The data pool of `rule` (empty name: the default placement; empty class: STANDARD).
  Result<std::string> data_pool(const PlacementRule& rule) const;
  // Does this rule compress new objects? (RGW marks each object anyway; informative.)
  bool compressed(const PlacementRule& rule) const;

 private:
  static Result<ZonePlacement> parse(std::string_view zone_json, std::string default_placement);
  static std::string key(const PlacementRule& rule, const std::string& default_placement);
  std::string default_placement_ = "default-placement";
  std::map<std::string, std::string> data_pools_;  // "target/CLASS" -> pool
  std::map<std::string, bool> compression_;
};

}  // namespace xo::rgw
