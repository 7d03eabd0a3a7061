// What the head object's xattrs say about an S3 object, read in one RADOS round trip:
// size, ETag, content type, user metadata, the manifest, and every marker that makes
// the object unfit for an offloaded GET (XO serves the stored bytes verbatim, so any
// transformation RGW applies on read must keep the request in RGW):
//   user.rgw.compression        compressed (RGWCompressionInfo)
//   user.rgw.crypt.*            server-side encryption (SSE-C, SSE-KMS, SSE-S3)
//   user.rgw.user_manifest      Swift DLO: the body is other objects
//   user.rgw.slo_manifest       Swift SLO: same
//   user.rgw.olh.info           an OLH (versioned bucket's "current version" pointer):
//                               the target instance must be read; removed = delete marker
//   user.rgw.olh.pending.*      a versioning operation is in flight
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/base/result.h"
#include "rgw-xo/locator/manifest.h"

namespace xo::rgw {

struct OlhInfo {  // RGWOLHInfo
  Obj target;
  bool removed = false;  // the current version is a delete marker
};
Result<OlhInfo> decode_olh_info(std::string_view bytes);

struct HeadInfo {
  uint64_t size = 0;  // object size (manifest obj_size, else the head's own size)
  std::string etag;
  std::string content_type;
  std::vector<std::pair<std::string, std::string>> user_meta;  // x-amz-meta-*, as stored
  std::optional<Manifest> manifest;
  std::optional<OlhInfo> olh;  // set when the head is an OLH: read olh->target instead
  std::string not_offloadable;  // empty when the bytes in RADOS are the body
  bool offloadable() const { return not_offloadable.empty(); }
};

// Classify the xattrs of a head object (names as RADOS returns them). head_size is the
// RADOS object's own size from the same round trip. Never fails: anything malformed
// lands in not_offloadable with the reason.
using XattrView = std::pair<std::string_view, std::string_view>;  // name, value
HeadInfo classify_head(const std::vector<XattrView>& xattrs, uint64_t head_size);
HeadInfo classify_head(const std::map<std::string, std::string, std::less<>>& xattrs, uint64_t head_size);

}  // namespace xo::rgw
