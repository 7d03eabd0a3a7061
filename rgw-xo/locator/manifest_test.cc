// Decoder tests on manifests captured from Ceph 16.2.15 (Pacific, encoding v7) and on
// damaged copies of them. The cluster tests (qa/ceph) check the same code against
// radosgw-admin and GETs through radosgw.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "rgw-xo/locator/bucket_meta.h"
#include "rgw-xo/locator/head_attrs.h"
#include "rgw-xo/locator/manifest.h"
#include "rgw-xo/locator/pg_hash.h"
#include "rgw-xo/locator/primary_table.h"
#include "rgw-xo/locator/zone_placement.h"

namespace xo::rgw {
namespace {

std::string unhex(std::string_view h) {
  std::string out;
  for (size_t i = 0; i + 1 < h.size(); i += 2) out.push_back(static_cast<char>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
  return out;
}

constexpr std::string_view kMarker = "0d477ede-d306-42e2-aa98-e0b7859e028b.4150.3";

// boto3 put_object of 10 MiB into bucket "exp", key "big".
const std::string kBig = unhex(
    "0706250100000000a00000000000000000000006067f0000000a0a6a000000030000006578702b00000030643437376564652d643330362d"
    "343265322d616139382d6530623738353965303238622e343135302e332b00000030643437376564652d643330362d343265322d61613938"
    "2d6530623738353965303238622e343135302e33000000000000000000030000006269670000000000004000000000000000400000000000"
    "210000002e4957775967714e6c6541414e646d42394e6b77356e7771593030364b5a676b5f01000000000000000000000002012000000000"
    "0000000000400000000000000000000000000000004000000000000000000000001100000064656661756c742d706c6163656d656e741100"
    "000064656661756c742d706c6163656d656e74");
// boto3 upload_file of 20 MiB with 8 MiB parts, key "mp".
const std::string kMultipart = unhex(
    "0706440100000000400100000000000000000006067e0000000a0a6a000000030000006578702b00000030643437376564652d643330362d"
    "343265322d616139382d6530623738353965303238622e343135302e332b00000030643437376564652d643330362d343265322d61613938"
    "2d6530623738353965303238622e343135302e33000000000000000000020000006d700000000000000000000000000000000000000000"
    "240000006d702e327e74644f5744393662336d6b6e76753758317233676f2d5469787233446573750200000000000000000000000201200000"
    "000100000000000000000000000000800000000000000040000000000000000000000000010000000002012000000003000000000000010000"
    "000000004000000000000000400000000000000000000000000000001100000064656661756c742d706c6163656d656e74");
// put_object of 10 bytes, key "_under" (escaped oid + locator).
const std::string kUnder = unhex(
    "0706280100000a0000000000000000000000000606820000000a0a6a000000030000006578702b00000030643437376564652d643330362d"
    "343265322d616139382d6530623738353965303238622e343135302e332b00000030643437376564652d643330362d343265322d61613938"
    "2d6530623738353965303238622e343135302e33000000000000000000060000005f756e646572000000000a000000000000000000400000"
    "000000210000002e46655f4c625044493656706b6a514b78443458634d696470727178675361345f01000000000000000000000002012000"
    "0000000000000000400000000000000000000000000000004000000000000000000000001100000064656661756c742d706c6163656d656e"
    "741100000064656661756c742d706c6163656d656e74");
const std::string kEntrypoint = unhex(
    "0a089f0000000a0a6a000000030000006578702b00000030643437376564652d643330362d343265322d616139382d6530623738353965"
    "303238622e343135302e332b00000030643437376564652d643330362d343265322d616139382d6530623738353965303238622e343135"
    "302e330000000000040000006d61696e01d061086b0000000002011000000000000000040000006d61696e00000000d061086b47cd0e33");

constexpr uint64_t MiB = 1 << 20;

TEST(Manifest, PlainUploadHeadAndShadowStripes) {
  auto m = decode_manifest(kBig);
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_EQ(m->version, 7);
  EXPECT_EQ(m->obj_size, 10 * MiB);
  EXPECT_EQ(m->head_size, 4 * MiB);
  EXPECT_EQ(m->head_placement.name, "default-placement");
  auto ex = manifest_extents(*m, 0, m->obj_size);
  ASSERT_TRUE(ex.ok()) << ex.error().message;
  ASSERT_EQ(ex->size(), 3u);
  const std::string m_ = std::string(kMarker);
  EXPECT_EQ((*ex)[0].object.oid, m_ + "_big");
  EXPECT_EQ((*ex)[0].length, 4 * MiB);
  EXPECT_EQ((*ex)[1].object.oid, m_ + "__shadow_.IWwYgqNleAANdmB9Nkw5nwqY006KZgk_1");
  EXPECT_EQ((*ex)[1].object_offset, 0u);
  EXPECT_EQ((*ex)[2].object.oid, m_ + "__shadow_.IWwYgqNleAANdmB9Nkw5nwqY006KZgk_2");
  EXPECT_EQ((*ex)[2].length, 2 * MiB);
  EXPECT_EQ((*ex)[2].logical_offset, 8 * MiB);
  // A range straddling head and first stripe.
  auto mid = manifest_extents(*m, 4 * MiB - 10, 20);
  ASSERT_TRUE(mid.ok());
  ASSERT_EQ(mid->size(), 2u);
  EXPECT_EQ((*mid)[0].object_offset, 4 * MiB - 10);
  EXPECT_EQ((*mid)[1].object_offset, 0u);
  EXPECT_EQ((*mid)[1].length, 10u);
}

TEST(Manifest, MultipartPartsAndTheirStripes) {
  auto m = decode_manifest(kMultipart);
  ASSERT_TRUE(m.ok()) << m.error().message;
  EXPECT_EQ(m->obj_size, 20 * MiB);
  EXPECT_EQ(m->head_size, 0u);
  auto ex = manifest_extents(*m, 0, m->obj_size);
  ASSERT_TRUE(ex.ok()) << ex.error().message;
  const std::string p = std::string(kMarker) + "_";
  const std::string up = "mp.2~tdOWD96b3mknvu7X1r3go-Tixr3Desu";
  std::vector<std::string> want = {p + "_multipart_" + up + ".1", p + "_shadow_" + up + ".1_1",
                                   p + "_multipart_" + up + ".2", p + "_shadow_" + up + ".2_1",
                                   p + "_multipart_" + up + ".3"};
  ASSERT_EQ(ex->size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ((*ex)[i].object.oid, want[i]) << i;
    EXPECT_EQ((*ex)[i].length, 4 * MiB) << i;
    EXPECT_EQ((*ex)[i].logical_offset, i * 4 * MiB) << i;
    EXPECT_TRUE((*ex)[i].object.locator.empty());
  }
}

TEST(Manifest, LeadingUnderscoreGetsEscapedOidAndLocator) {
  auto m = decode_manifest(kUnder);
  ASSERT_TRUE(m.ok()) << m.error().message;
  auto ex = manifest_extents(*m, 0, m->obj_size);
  ASSERT_TRUE(ex.ok());
  ASSERT_EQ(ex->size(), 1u);
  EXPECT_EQ((*ex)[0].object.oid, std::string(kMarker) + "___under");
  EXPECT_EQ((*ex)[0].object.locator, std::string(kMarker) + "__under");
}

TEST(Manifest, EveryTruncationIsRefusedNeverMisread) {
  for (const std::string* full : {&kBig, &kMultipart, &kUnder}) {
    for (size_t n = 0; n < full->size(); ++n) {
      auto m = decode_manifest(std::string_view(*full).substr(0, n));
      EXPECT_FALSE(m.ok()) << "prefix of " << n << " bytes decoded";
      if (!m.ok()) {
        EXPECT_NE(m.error().message.find("not offloadable"), std::string::npos);
      }
    }
  }
}

TEST(Manifest, NewerIncompatibleEncodingIsRefused) {
  std::string future = kBig;
  future[0] = 9;
  future[1] = 9;  // compat 9: a decoder of v8 must not read it
  auto m = decode_manifest(future);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message.find("decoder version 9"), std::string::npos) << m.error().message;
}

TEST(Manifest, ReefV8CloudTierIsNotOffloadable) {
  // v8 = v7 + tier_type + tier_config; compat stays 6.
  std::string v8 = kBig;
  v8[0] = 8;
  std::string tier = "cloud-s3";
  std::string extra = std::string("\x08\x00\x00\x00", 4) + tier + std::string("\x01\x01\x00\x00\x00\x00", 6);
  uint32_t len;
  std::memcpy(&len, v8.data() + 2, 4);
  len += extra.size();
  std::memcpy(v8.data() + 2, &len, 4);
  v8 += extra;
  auto m = decode_manifest(v8);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message.find("cloud-s3"), std::string::npos) << m.error().message;
}

// Older encodings the Pacific decoder still accepts, rebuilt from the v7 capture
// (layout: 6-byte header | body up to the rules | 2 bools | 2 placement strings).
std::string reencode(uint8_t version, const std::string& body) {
  std::string out;
  out.push_back(static_cast<char>(version));
  out.push_back(2);  // compat
  uint32_t len = static_cast<uint32_t>(body.size());
  out.append(reinterpret_cast<const char*>(&len), 4);
  return out + body;
}

TEST(Manifest, OlderVersionsV3ToV6DecodeToTheSameExtents) {
  constexpr size_t kBoolsAt = 255, kBucketAt = 25, kBucketLen = 112;
  ASSERT_EQ(kBig.size(), 299u);
  const std::string upto_rules = kBig.substr(6, kBoolsAt - 6);
  const std::string bucket = kBig.substr(kBucketAt, kBucketLen);
  const std::string no_instance(4, '\0');  // empty tail_instance string
  std::vector<std::pair<uint8_t, std::string>> versions = {
      {3, upto_rules},                                           // no tail bucket / instance
      {4, upto_rules + bucket},                                  // + tail bucket, always
      {5, upto_rules + bucket + no_instance},                    // + tail instance, always
      {6, kBig.substr(6, kBoolsAt + 2 - 6)},                     // both behind bools
  };
  auto v7 = manifest_extents(*decode_manifest(kBig), 0, 10 * MiB);
  ASSERT_TRUE(v7.ok());
  for (const auto& [v, body] : versions) {
    auto m = decode_manifest(reencode(v, body));
    ASSERT_TRUE(m.ok()) << "v" << int(v) << ": " << m.error().message;
    EXPECT_EQ(m->version, v);
    EXPECT_TRUE(m->head_placement.empty()) << "placement rules arrived in v7";
    EXPECT_EQ(m->tail_bucket.marker, kMarker) << int(v);
    auto ex = manifest_extents(*m, 0, m->obj_size);
    ASSERT_TRUE(ex.ok()) << ex.error().message;
    ASSERT_EQ(ex->size(), v7->size()) << int(v);
    for (size_t i = 0; i < ex->size(); ++i) {
      EXPECT_EQ((*ex)[i].object.oid, (*v7)[i].object.oid) << "v" << int(v) << " extent " << i;
      EXPECT_EQ((*ex)[i].length, (*v7)[i].length);
    }
  }
}

TEST(Manifest, RangeOutsideObjectIsAnError) {
  auto m = decode_manifest(kBig);
  ASSERT_TRUE(m.ok());
  EXPECT_FALSE(manifest_extents(*m, 10 * MiB, 1).ok());
  EXPECT_TRUE(manifest_extents(*m, 10 * MiB, 0).ok());
}

TEST(HeadAttrs, MarkersMakeObjectsNotOffloadable) {
  std::map<std::string, std::string, std::less<>> a{{"user.rgw.manifest", kBig},
                                                    {"user.rgw.etag", std::string("abc\0", 4)},
                                                    {"user.rgw.content_type", std::string("text/plain\0", 11)},
                                                    {"user.rgw.x-amz-meta-color", "blue"}};
  auto h = classify_head(a, 4 * MiB);
  EXPECT_TRUE(h.offloadable()) << h.not_offloadable;
  EXPECT_EQ(h.size, 10 * MiB);
  EXPECT_EQ(h.etag, "abc");
  EXPECT_EQ(h.content_type, "text/plain");
  ASSERT_EQ(h.user_meta.size(), 1u);
  for (const char* marker : {"user.rgw.compression", "user.rgw.crypt.mode", "user.rgw.user_manifest",
                             "user.rgw.slo_manifest", "user.rgw.olh.pending.0001"}) {
    auto b = a;
    b[marker] = "x";
    EXPECT_FALSE(classify_head(b, 4 * MiB).offloadable()) << marker;
  }
  auto bad = a;
  bad["user.rgw.manifest"] = kBig.substr(0, 40);
  auto hb = classify_head(bad, 4 * MiB);
  EXPECT_FALSE(hb.offloadable());
  EXPECT_NE(hb.not_offloadable.find("user.rgw.manifest"), std::string::npos);
}

TEST(BucketMeta, EntrypointGivesMarkerAndId) {
  auto b = decode_bucket_entrypoint(kEntrypoint);
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ(b->name, "exp");
  EXPECT_EQ(b->marker, kMarker);
  EXPECT_EQ(b->bucket_id, kMarker);
  EXPECT_EQ(bucket_instance_oid(*b), ".bucket.meta.exp:" + std::string(kMarker));
  EXPECT_EQ(bucket_entrypoint_oid("t1", "exp"), "t1/exp");
}

TEST(ObjKey, RgwNamingRules) {
  EXPECT_EQ((ObjKey{"a", "", ""}.oid()), "a");
  EXPECT_EQ((ObjKey{"_a", "", ""}.oid()), "__a");
  EXPECT_EQ((ObjKey{"_a", "", ""}.locator()), "_a");
  EXPECT_EQ((ObjKey{"a", "v1", ""}.oid()), "_:v1_a");
  EXPECT_EQ((ObjKey{"_a", "v1", ""}.locator()), "_a");
  EXPECT_EQ((ObjKey{"a", "null", ""}.oid()), "a");
  EXPECT_EQ((ObjKey{"p.1", "", "multipart"}.oid()), "_multipart_p.1");
  EXPECT_EQ((ObjKey{"p.1_2", "v1", "shadow"}.oid()), "_shadow:v1_p.1_2");
}

TEST(PgHash, StableModAndMask) {
  EXPECT_EQ(pg_num_mask(8), 7u);
  EXPECT_EQ(pg_num_mask(12), 15u);
  EXPECT_EQ(pg_num_mask(1), 0u);
  EXPECT_EQ(stable_mod(13, 12, 15), 5u);  // 13 & 15 = 13 >= 12 -> 13 & 7
  EXPECT_EQ(stable_mod(11, 12, 15), 11u);
}

TEST(PrimaryTable, FromMonitorJson) {
  // Trimmed shapes of `osd dump -f json` and `pg dump pgs_brief -f json` (Pacific).
  const char* osd_dump = R"({"epoch": 42, "pools": [{"pool": 7, "pool_name": "data", "pg_num": 8, "object_hash": 2}],
    "osds": [{"osd": 0, "up": 1, "public_addrs": {"addrvec": [{"type": "v2", "addr": "198.18.0.20:6800"}]}},
             {"osd": 1, "up": 1, "public_addrs": {"addrvec": [{"type": "v2", "addr": "[2001:2::15]:6800"}]}},
             {"osd": 2, "up": 0, "public_addrs": {"addrvec": []}}]})";
  const char* pg_dump = R"({"pg_ready": true, "pg_stats": [
    {"pgid": "7.0", "state": "active+clean", "acting_primary": 0},
    {"pgid": "7.1", "state": "active+clean", "acting_primary": 1},
    {"pgid": "7.2", "state": "peering", "acting_primary": 0},
    {"pgid": "7.3", "state": "active+undersized", "acting_primary": 2},
    {"pgid": "9.0", "state": "active+clean", "acting_primary": 0}]})";
  auto t = PrimaryTable::from_json(osd_dump, pg_dump);
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_EQ(t->epoch(), 42u);
  ASSERT_NE(t->osd_host(0), nullptr);
  EXPECT_EQ(*t->osd_host(0), "198.18.0.20");
  EXPECT_EQ(*t->osd_host(1), "2001:2::15");
  EXPECT_EQ(t->osd_host(2), nullptr) << "down OSD";
  // pgs 7.2 (not active), 7.3 (primary down), 7.4-7.7 (not reported) have no primary.
  EXPECT_EQ(t->pgs_without_primary(), 6u);
  // Find names landing in 7.0 and 7.2 and check what lookup() says for them.
  int seen0 = 0, seen2 = 0;
  for (int i = 0; i < 200; ++i) {
    std::string name = "n" + std::to_string(i);
    Primary p = t->lookup(7, name);
    EXPECT_EQ(p.ps, stable_mod(rjenkins_hash(name), 8, 7));
    if (p.ps == 0) {
      ++seen0;
      EXPECT_EQ(p.osd, 0);
      ASSERT_NE(p.host, nullptr);
    }
    if (p.ps == 2) {
      ++seen2;
      EXPECT_EQ(p.osd, -1);
    }
  }
  EXPECT_GT(seen0, 0);
  EXPECT_GT(seen2, 0);
  EXPECT_EQ(t->lookup(99, "x").osd, -1) << "unknown pool";
  EXPECT_FALSE(PrimaryTable::from_json("{", pg_dump).ok());
  EXPECT_FALSE(PrimaryTable::from_json(R"({"epoch": "x"})", pg_dump).ok());
  EXPECT_FALSE(PrimaryTable::from_json(R"({"epoch": 1, "pools": [{"pool": "7"}], "osds": []})", pg_dump).ok());
}

TEST(ZonePlacement, FromZoneJson) {
  const char* zone = R"({"placement_pools": [
    {"key": "default-placement", "val": {"storage_classes": {"STANDARD": {"data_pool": "default.rgw.buckets.data"}}}},
    {"key": "compressed", "val": {"storage_classes": {"STANDARD": {"data_pool": "z.data", "compression_type": "zlib"}}}}]})";
  auto z = ZonePlacement::from_zone_json(zone);
  ASSERT_TRUE(z.ok()) << z.error().message;
  EXPECT_EQ(*z->data_pool({"", ""}), "default.rgw.buckets.data");
  EXPECT_EQ(*z->data_pool({"compressed", "STANDARD"}), "z.data");
  EXPECT_TRUE(z->compressed({"compressed", ""}));
  EXPECT_FALSE(z->data_pool({"cold", ""}).ok());
  EXPECT_FALSE(ZonePlacement::from_zone_json(R"({"placement_pools": 3})").ok());
  EXPECT_FALSE(ZonePlacement::from_zone_json(R"({"placement_pools": [{"key": 1, "val": {}}]})").ok());
}

}  // namespace
}  // namespace xo::rgw
