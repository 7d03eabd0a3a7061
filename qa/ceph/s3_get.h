// Anonymous S3 GET through radosgw (corpus buckets allow public reads), with an
// optional Range and versionId: what a client receives, for byte comparisons.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "common/base/result.h"

namespace xo::ceph_lab {

struct GetResponse {
  int status = 0;
  std::string body;
  std::string etag;
};

// Runs in the calling thread's network namespace (radosgw is on 127.0.0.1 of the
// frontend host). range: inclusive [first, last] as in the HTTP Range header.
Result<GetResponse> s3_get(uint16_t port, const std::string& bucket, const std::string& key,
                           const std::string& version_id = {},
                           std::optional<std::pair<uint64_t, uint64_t>> range = std::nullopt);

// RFC 3986 percent-encoding of a key for a path ('/' kept).
std::string uri_encode(const std::string& s, bool keep_slash = true);

}  // namespace xo::ceph_lab
