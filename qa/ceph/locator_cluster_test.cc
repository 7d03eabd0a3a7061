// The RGW locator against the real Ceph lab (label ceph, fixture ceph_lab): the corpus
// uploaded by corpus.py through radosgw with boto3 and s3cmd is located, its extents are
// read with librados and compared with what a GET through radosgw returns; the manifest
// view is compared with `radosgw-admin object stat`; the primary of every extent with
// the monitors' `osd map`, before and after an OSD is marked out.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <random>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "qa/ceph/ceph_lab_client.h"
#include "qa/ceph/s3_get.h"
#include "rgw-xo/locator/locator.h"
#include "rgw-xo/locator/pg_hash.h"

namespace xo::rgw {
namespace {

using ceph_lab::Client;
using nlohmann::json;
constexpr uint64_t MiB = 1 << 20;

struct CorpusEntry {
  std::string tenant, bucket, key, version_id, uploader, expect;
  std::string s3_bucket() const { return tenant.empty() ? bucket : tenant + ":" + bucket; }  // in a URL path
  uint64_t size = 0;
  std::string label() const {
    return s3_bucket() + "/" + key + (version_id.empty() ? "" : "?versionId=" + version_id) + " (" + uploader + ", " +
           std::to_string(size) + " B)";
  }
};

class LocatorCluster : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = Client::connect();
    ASSERT_TRUE(c.ok()) << c.error().to_string();
    client_ = std::move(*c);
    std::ifstream in(client_->state() + "/corpus.json");
    ASSERT_TRUE(in) << "no corpus.json in " << client_->state() << " (the ceph.corpus fixture uploads it)";
    for (const auto& e : json::parse(in)) {
      corpus_.push_back({e.value("tenant", ""), e["bucket"], e["key"], e["version_id"], e["uploader"], e["expect"],
                         e["size"]});
    }
    ASSERT_FALSE(corpus_.empty());
    auto zone = ceph_lab::run_capture("radosgw-admin -n client.admin zone get 2>/dev/null");
    ASSERT_TRUE(zone.ok()) << zone.error().to_string();
    auto placement = ZonePlacement::from_zone_json(*zone);
    ASSERT_TRUE(placement.ok()) << placement.error().to_string();
    map_ = std::make_shared<ClusterMap>(client_->rados());
    auto loaded = map_->load();
    ASSERT_TRUE(loaded.ok()) << loaded.error().to_string();
    LocatorConfig cfg;
    cfg.placement = std::move(*placement);
    locator_ = std::make_unique<Locator>(client_->rados(), map_, std::move(cfg));
  }

  Result<ObjectLocation> locate(const CorpusEntry& e, std::optional<std::pair<uint64_t, uint64_t>> range = {}) {
    return locator_->locate(e.tenant, e.bucket, e.key, e.version_id, range);
  }

  // The bytes the extents name, read with librados.
  std::string read_extents(const ObjectLocation& loc) {
    std::string out;
    for (const auto& le : loc.extents) {
      auto io = locator_->ioctx(le.pool);
      EXPECT_TRUE(io.ok());
      if (!io.ok()) return out;
      (*io)->locator_set_key(le.extent.object.locator);
      librados::bufferlist bl;
      int r = (*io)->read(le.extent.object.oid, bl, le.extent.length, le.extent.object_offset);
      EXPECT_EQ(r, static_cast<int>(le.extent.length)) << le.extent.object.oid << " @" << le.extent.object_offset;
      out += bl.to_str();
    }
    return out;
  }

  static void expect_same_bytes(const std::string& got, const std::string& want, const std::string& what) {
    ASSERT_EQ(got.size(), want.size()) << what;
    if (got != want) {
      size_t i = 0;
      while (i < got.size() && got[i] == want[i]) ++i;
      FAIL() << what << ": bytes differ first at offset " << i;
    }
  }

  std::vector<const CorpusEntry*> offloadable() const {
    std::vector<const CorpusEntry*> v;
    for (const auto& e : corpus_)
      if (e.expect == "offloadable") v.push_back(&e);
    return v;
  }

  std::unique_ptr<Client> client_;
  std::vector<CorpusEntry> corpus_;
  std::shared_ptr<ClusterMap> map_;
  std::unique_ptr<Locator> locator_;
};

TEST_F(LocatorCluster, WholeObjectsReadThroughExtentsEqualGet) {
  std::set<std::string> uploaders;
  for (const CorpusEntry* e : offloadable()) {
    SCOPED_TRACE(e->label());
    auto loc = locate(*e);
    ASSERT_TRUE(loc.ok()) << loc.error().to_string();
    ASSERT_TRUE(loc->offloadable()) << loc->not_offloadable;
    EXPECT_EQ(loc->head.size, e->size);
    auto get = ceph_lab::s3_get(client_->s3_port(), e->s3_bucket(), e->key, e->version_id);
    ASSERT_TRUE(get.ok()) << get.error().to_string();
    ASSERT_EQ(get->status, 200);
    expect_same_bytes(read_extents(*loc), get->body, e->label());
    EXPECT_EQ("\"" + loc->head.etag + "\"", get->etag);
    uploaders.insert(e->uploader);
  }
  EXPECT_GE(uploaders.size(), 5u) << "every uploader is covered, and a tenant's bucket";
}

TEST_F(LocatorCluster, RandomRangesReadThroughExtentsEqualRangedGet) {
  std::mt19937_64 rng(20261126);
  int checked = 0;
  for (const CorpusEntry* e : offloadable()) {
    if (e->size == 0) continue;
    std::vector<std::pair<uint64_t, uint64_t>> ranges;  // inclusive, as in HTTP
    for (uint64_t edge : {4 * MiB, 8 * MiB, 15 * MiB, 16 * MiB})  // head, stripe and part edges
      if (edge < e->size) ranges.push_back({edge - 1, std::min(e->size - 1, edge + 1)});
    for (int i = 0; i < 3; ++i) {
      uint64_t a = rng() % e->size, b = a + rng() % std::min<uint64_t>(e->size - a, 9 * MiB);
      ranges.push_back({a, b});
    }
    ranges.push_back({e->size - 1, e->size - 1});
    for (auto [first, last] : ranges) {
      std::string what = e->label() + " bytes=" + std::to_string(first) + "-" + std::to_string(last);
      SCOPED_TRACE(what);
      auto loc = locate(*e, std::make_pair(first, last - first + 1));
      ASSERT_TRUE(loc.ok()) << loc.error().to_string();
      ASSERT_TRUE(loc->offloadable()) << loc->not_offloadable;
      auto get = ceph_lab::s3_get(client_->s3_port(), e->s3_bucket(), e->key, e->version_id, std::make_pair(first, last));
      ASSERT_TRUE(get.ok()) << get.error().to_string();
      ASSERT_EQ(get->status, 206);
      expect_same_bytes(read_extents(*loc), get->body, what);
      ++checked;
    }
  }
  EXPECT_GT(checked, 100);
}

TEST_F(LocatorCluster, ManifestAgreesWithRadosgwAdminObjectStat) {
  for (const CorpusEntry* e : offloadable()) {
    if (e->version_id.empty() && e->bucket == "xo-versioned") continue;  // stat needs the instance
    SCOPED_TRACE(e->label());
    auto loc = locate(*e);
    ASSERT_TRUE(loc.ok()) << loc.error().to_string();
    std::string cmd = "radosgw-admin -n client.admin object stat --bucket=" +
                      ceph_lab::shell_quote(e->tenant.empty() ? e->bucket : e->tenant + "/" + e->bucket) +
                      " --object=" + ceph_lab::shell_quote(e->key);
    if (!e->version_id.empty()) cmd += " --object-version=" + ceph_lab::shell_quote(e->version_id);
    auto out = ceph_lab::run_capture(cmd + " 2>/dev/null");
    ASSERT_TRUE(out.ok()) << out.error().to_string();
    auto st = json::parse(*out);
    EXPECT_EQ(st["size"].get<uint64_t>(), e->size);
    EXPECT_EQ(st["etag"].get<std::string>(), loc->head.etag);
    if (e->size == 0 && !loc->head.manifest) continue;
    ASSERT_TRUE(loc->head.manifest.has_value());
    const Manifest& m = *loc->head.manifest;
    const json& jm = st["manifest"];
    EXPECT_EQ(jm["obj_size"].get<uint64_t>(), m.obj_size);
    EXPECT_EQ(jm["head_size"].get<uint64_t>(), m.head_size);
    EXPECT_EQ(jm["max_head_size"].get<uint64_t>(), m.max_head_size);
    EXPECT_EQ(jm["prefix"].get<std::string>(), m.prefix);
    EXPECT_EQ(jm["explicit_objs"].get<std::string>(), m.explicit_objs ? "true" : "false");
    EXPECT_EQ(jm["tail_instance"].get<std::string>(), m.tail_instance);
    EXPECT_EQ(jm["tail_placement"]["bucket"]["marker"].get<std::string>(), m.tail_bucket.marker);
    EXPECT_EQ(jm["tail_placement"]["placement_rule"].get<std::string>(), m.tail_placement.to_string());
    ASSERT_EQ(jm["rules"].size(), m.rules.size());
    for (const auto& r : jm["rules"]) {
      auto it = m.rules.find(r["key"].get<uint64_t>());
      ASSERT_NE(it, m.rules.end());
      EXPECT_EQ(r["val"]["start_part_num"].get<uint32_t>(), it->second.start_part_num);
      EXPECT_EQ(r["val"]["start_ofs"].get<uint64_t>(), it->second.start_ofs);
      EXPECT_EQ(r["val"]["part_size"].get<uint64_t>(), it->second.part_size);
      EXPECT_EQ(r["val"]["stripe_max_size"].get<uint64_t>(), it->second.stripe_max_size);
      EXPECT_EQ(r["val"]["override_prefix"].get<std::string>(), it->second.override_prefix);
    }
    // RGW's own iterator at offset 0 names the RADOS object of the first extent.
    if (e->size > 0) {
      const json& it = jm["begin_iter"];
      const json& obj = it["location"]["obj"];
      Bucket b;
      b.marker = obj["bucket"]["marker"];
      ObjKey k{obj["key"]["name"], obj["key"]["instance"], obj["key"]["ns"]};
      RawObj want = raw_obj(b, k);
      ASSERT_FALSE(loc->extents.empty());
      EXPECT_EQ(loc->extents[0].extent.object.oid, want.oid);
      EXPECT_EQ(loc->extents[0].extent.object.locator, want.locator);
      EXPECT_EQ(loc->extents[0].extent.length, std::min(it["stripe_size"].get<uint64_t>(), e->size));
      EXPECT_EQ(loc->extents[0].pool, "default.rgw.buckets.data");
    }
  }
}

// `ceph osd map` for the hash key (the locator when there is one: that is what RADOS hashes).
struct OsdMapAnswer {
  uint32_t ps = 0;
  int acting_primary = -1;
  uint32_t epoch = 0;
};
OsdMapAnswer osd_map(Client& c, const std::string& pool, const std::string& key) {
  json q = {{"prefix", "osd map"}, {"pool", pool}, {"object", key}, {"format", "json"}};
  auto out = c.mon(q.dump());
  EXPECT_TRUE(out.ok()) << out.error().to_string();
  if (!out.ok()) return {};
  auto j = json::parse(*out);
  std::string pgid = j["pgid"];
  return {static_cast<uint32_t>(std::stoul(pgid.substr(pgid.find('.') + 1), nullptr, 16)), j["acting_primary"].get<int>(),
          j["epoch"].get<uint32_t>()};
}

struct ExtentObject {
  std::string pool, hash_key, oid;
  int64_t pool_id;
};

std::vector<ExtentObject> all_extent_objects(LocatorCluster* t, Locator& locator, const std::vector<CorpusEntry>& corpus) {
  std::vector<ExtentObject> v;
  std::set<std::string> seen;
  for (const auto& e : corpus) {
    if (e.expect != "offloadable") continue;
    auto loc = locator.locate(e.tenant, e.bucket, e.key, e.version_id);
    EXPECT_TRUE(loc.ok() && loc->offloadable()) << e.label();
    if (!loc.ok()) continue;
    for (const auto& le : loc->extents) {
      const RawObj& o = le.extent.object;
      if (!seen.insert(le.pool + "/" + o.oid).second) continue;
      v.push_back({le.pool, o.locator.empty() ? o.oid : o.locator, o.oid, le.pool_id});
    }
  }
  (void)t;
  return v;
}

void expect_primaries_match(Client& c, const PrimaryTable& table, const std::vector<ExtentObject>& objs) {
  int mismatches = 0;
  for (const auto& o : objs) {
    Primary p = table.lookup(o.pool_id, o.hash_key);
    OsdMapAnswer want = osd_map(c, o.pool, o.hash_key);
    EXPECT_EQ(p.ps, want.ps) << o.oid;
    EXPECT_EQ(p.osd, want.acting_primary) << o.oid << " table epoch " << table.epoch() << ", osd map epoch " << want.epoch;
    ASSERT_NE(p.host, nullptr) << o.oid;
    mismatches += p.osd != want.acting_primary;
  }
  EXPECT_EQ(mismatches, 0);
}

TEST_F(LocatorCluster, PgHashMatchesLibrados) {
  librados::IoCtx io;
  ASSERT_EQ(client_->rados().ioctx_create("default.rgw.buckets.data", io), 0);
  auto table = map_->table();
  std::mt19937 rng(7);
  for (int i = 0; i < 20000; ++i) {
    std::string name = "obj-" + std::to_string(rng()) + std::string(i % 23, 'x') + "_" + std::to_string(i);
    uint32_t want = 0, got = 0;
    ASSERT_EQ(io.get_object_pg_hash_position2(name, &want), 0);
    ASSERT_TRUE(table->pg_of(io.get_id(), name, &got));
    ASSERT_EQ(got, want) << name;
  }
}

// pg stat through the manager: true when every PG is active+clean.
bool all_pgs_clean(Client& c) {
  auto out = c.mgr(R"({"prefix": "pg stat", "format": "json"})");
  if (!out.ok()) return false;
  auto top = json::parse(*out, nullptr, false);
  if (top.is_discarded()) return false;
  const json& j = top.contains("pg_summary") ? top["pg_summary"] : top;
  uint64_t total = j.value("num_pgs", 0), clean = 0;
  for (const auto& s : j["num_pg_by_state"])
    if (s["name"] == "active+clean") clean = s["num"];
  return total > 0 && clean == total;
}

// The manager's PG view trails the osdmap (stats every second in the lab): wait for it
// to show the change, then for active+clean twice, 3 s apart.
bool wait_clean(Client& c, std::chrono::seconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  std::this_thread::sleep_for(std::chrono::seconds(3));
  while (std::chrono::steady_clock::now() < deadline) {
    if (all_pgs_clean(c)) {
      std::this_thread::sleep_for(std::chrono::seconds(3));
      if (all_pgs_clean(c)) return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  return false;
}

TEST_F(LocatorCluster, PrimariesAgreeWithOsdMapAlsoAfterAnOsdIsMarkedOut) {
  auto objs = all_extent_objects(this, *locator_, corpus_);
  ASSERT_GT(objs.size(), 50u);
  auto before = map_->table();
  expect_primaries_match(*client_, *before, objs);

  // Mark out the OSD that is primary for most extents, so the map change matters.
  std::map<int, int> per_osd;
  for (const auto& o : objs) per_osd[before->lookup(o.pool_id, o.hash_key).osd]++;
  int victim = std::max_element(per_osd.begin(), per_osd.end(), [](auto& a, auto& b) { return a.second < b.second; })->first;
  ASSERT_GE(victim, 0);
  auto out = client_->mon(json({{"prefix", "osd out"}, {"ids", {std::to_string(victim)}}}).dump());
  ASSERT_TRUE(out.ok()) << out.error().to_string();
  bool clean = wait_clean(*client_, std::chrono::seconds(180));
  auto refreshed = map_->refresh();
  ASSERT_TRUE(refreshed.ok()) << refreshed.error().to_string();
  EXPECT_TRUE(*refreshed) << "the epoch moved, the table must reload";
  auto after = map_->table();
  EXPECT_GT(after->epoch(), before->epoch());
  if (clean) {
    expect_primaries_match(*client_, *after, objs);
    for (const auto& o : objs) EXPECT_NE(after->lookup(o.pool_id, o.hash_key).osd, victim) << o.oid;
  }
  // Bytes stay right through the change, whatever the table says.
  for (const CorpusEntry* e : offloadable()) {
    if (e->size > 20 * MiB) continue;
    auto loc = locate(*e);
    ASSERT_TRUE(loc.ok() && loc->offloadable());
    auto get = ceph_lab::s3_get(client_->s3_port(), e->s3_bucket(), e->key, e->version_id);
    ASSERT_TRUE(get.ok());
    expect_same_bytes(read_extents(*loc), get->body, e->label());
  }
  out = client_->mon(json({{"prefix", "osd in"}, {"ids", {std::to_string(victim)}}}).dump());
  ASSERT_TRUE(out.ok()) << out.error().to_string();
  ASSERT_TRUE(clean) << "PGs did not become active+clean within 180 s after osd." << victim << " was marked out";
  EXPECT_TRUE(wait_clean(*client_, std::chrono::seconds(180))) << "PGs not clean after osd." << victim << " came back";
}

TEST_F(LocatorCluster, CompressedAndDeleteMarkerAndMissingAreNotOffloadable) {
  int compressed = 0, delete_markers = 0;
  for (const auto& e : corpus_) {
    if (e.expect == "offloadable" || e.expect == "corruption_target") continue;
    SCOPED_TRACE(e.label());
    auto loc = locate(e);
    ASSERT_TRUE(loc.ok()) << loc.error().to_string();
    EXPECT_FALSE(loc->offloadable());
    if (e.expect == "compressed") {
      EXPECT_NE(loc->not_offloadable.find("compress"), std::string::npos) << loc->not_offloadable;
      ++compressed;
    } else if (e.expect == "delete_marker") {
      EXPECT_NE(loc->not_offloadable.find("delete marker"), std::string::npos) << loc->not_offloadable;
      ++delete_markers;
    }
  }
  EXPECT_GE(compressed, 2);
  EXPECT_GE(delete_markers, 1);
  auto missing = locator_->locate("", "xo-corpus", "no/such/key");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->found);
  auto no_bucket = locator_->locate("", "no-such-bucket", "k");
  ASSERT_FALSE(no_bucket.ok());
  EXPECT_EQ(no_bucket.error().code, ENOENT);
}

TEST_F(LocatorCluster, HeadFactsMatchWhatS3Stored) {
  auto it = std::find_if(corpus_.begin(), corpus_.end(), [](const CorpusEntry& e) { return e.key == "meta/colored"; });
  ASSERT_NE(it, corpus_.end());
  auto loc = locate(*it);
  ASSERT_TRUE(loc.ok() && loc->offloadable());
  EXPECT_EQ(loc->head.content_type, "text/x-xo");
  std::map<std::string, std::string> meta(loc->head.user_meta.begin(), loc->head.user_meta.end());
  EXPECT_EQ(meta["x-amz-meta-color"], "blue");
  EXPECT_EQ(meta["x-amz-meta-shape"], "round");
}

// A damaged or too-new manifest xattr on a real head: not offloadable with the reason,
// and offloadable again once the original bytes are back.
TEST_F(LocatorCluster, DamagedManifestXattrIsNotOffloadable) {
  auto it = std::find_if(corpus_.begin(), corpus_.end(), [](const CorpusEntry& e) { return e.expect == "corruption_target"; });
  ASSERT_NE(it, corpus_.end());
  auto loc = locate(*it);
  ASSERT_TRUE(loc.ok() && loc->offloadable()) << (loc.ok() ? loc->not_offloadable : loc.error().to_string());
  auto io = locator_->ioctx(loc->head_pool);
  ASSERT_TRUE(io.ok());
  (*io)->locator_set_key(loc->head_object.locator);
  librados::bufferlist original;
  ASSERT_GT((*io)->getxattr(loc->head_object.oid, "user.rgw.manifest", original), 0);
  const std::string good = original.to_str();

  struct Damage {
    std::string bytes, reason;
  };
  std::string future = good;
  future[1] = 9;  // compat version 9
  std::vector<Damage> damages = {{good.substr(0, good.size() / 2), "user.rgw.manifest"},
                                 {future, "decoder version 9"},
                                 {std::string(64, '\xff'), "user.rgw.manifest"},
                                 {std::string(), "user.rgw.manifest"}};
  for (const auto& d : damages) {
    librados::bufferlist bl;
    bl.append(d.bytes);
    ASSERT_EQ((*io)->setxattr(loc->head_object.oid, "user.rgw.manifest", bl), 0);
    auto bad = locate(*it);
    (*io)->locator_set_key(loc->head_object.locator);
    ASSERT_TRUE(bad.ok()) << bad.error().to_string();
    EXPECT_FALSE(bad->offloadable());
    EXPECT_TRUE(bad->extents.empty());
    EXPECT_NE(bad->not_offloadable.find(d.reason), std::string::npos) << bad->not_offloadable;
  }
  librados::bufferlist bl;
  bl.append(good);
  ASSERT_EQ((*io)->setxattr(loc->head_object.oid, "user.rgw.manifest", bl), 0);
  auto again = locate(*it);
  ASSERT_TRUE(again.ok() && again->offloadable());
  EXPECT_EQ(again->extents.size(), loc->extents.size());
}

TEST_F(LocatorCluster, LeadingUnderscoreKeysUseLocatorAndVersionsUseInstances) {
  int underscored = 0, versioned = 0;
  for (const CorpusEntry* e : offloadable()) {
    auto loc = locate(*e);
    ASSERT_TRUE(loc.ok() && loc->offloadable()) << e->label();
    if (e->key[0] == '_') {
      ++underscored;
      EXPECT_FALSE(loc->head_object.locator.empty()) << e->label();
      EXPECT_EQ(loc->head_object.locator.substr(loc->head_object.locator.size() - e->key.size()), e->key);
    } else {
      EXPECT_TRUE(loc->head_object.locator.empty()) << e->label();
    }
    if (!e->version_id.empty()) {
      ++versioned;
      EXPECT_NE(loc->head_object.oid.find("_:" + e->version_id + "_"), std::string::npos) << loc->head_object.oid;
    }
  }
  EXPECT_GE(underscored, 5);
  EXPECT_GE(versioned, 5);
}

}  // namespace
}  // namespace xo::rgw
