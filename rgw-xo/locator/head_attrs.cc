#include "rgw-xo/locator/head_attrs.h"

namespace xo::rgw {
namespace {

constexpr std::string_view kPrefix = "user.rgw.";

// RGW stores string attrs with their terminating NUL.
std::string c_string(std::string_view v) {
  auto nul = v.find('\0');
  return std::string(nul == std::string_view::npos ? v : v.substr(0, nul));
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

}  // namespace

Result<OlhInfo> decode_olh_info(std::string_view bytes) {
  DencReader r(bytes);
  OlhInfo info;
  auto f = r.begin_v("RGWOLHInfo", 1);
  decode(r, info.target);
  info.removed = r.boolean();
  r.finish("RGWOLHInfo", f);
  if (!r.ok()) return error("not offloadable: user.rgw.olh.info: " + r.error());
  return info;
}

HeadInfo classify_head(const std::map<std::string, std::string, std::less<>>& xattrs, uint64_t head_size) {
  std::vector<XattrView> views(xattrs.begin(), xattrs.end());
  return classify_head(views, head_size);
}

HeadInfo classify_head(const std::vector<XattrView>& xattrs, uint64_t head_size) {
  HeadInfo h;
  h.size = head_size;
  auto refuse = [&h](std::string why) {
    if (h.not_offloadable.empty()) h.not_offloadable = std::move(why);
  };
  for (const auto& [n, value] : xattrs) {
    if (!starts_with(n, kPrefix)) continue;
    std::string_view a = n.substr(kPrefix.size());
    if (a == "etag") {
      h.etag = c_string(value);
    } else if (a == "content_type") {
      h.content_type = c_string(value);
    } else if (starts_with(a, "x-amz-meta-")) {
      h.user_meta.emplace_back(std::string(a), c_string(value));
    } else if (a == "compression") {
      refuse("compressed object (user.rgw.compression)");
    } else if (starts_with(a, "crypt.")) {
      refuse("encrypted object (user.rgw." + std::string(a) + ")");
    } else if (a == "user_manifest") {
      refuse("Swift DLO manifest object (user.rgw.user_manifest)");
    } else if (a == "slo_manifest") {
      refuse("Swift SLO manifest object (user.rgw.slo_manifest)");
    } else if (starts_with(a, "olh.pending")) {
      refuse("versioning operation pending on the OLH (user.rgw." + std::string(a) + ")");
    } else if (a == "olh.info") {
      auto olh = decode_olh_info(value);
      if (!olh.ok()) {
        refuse(olh.error().message);
      } else {
        if (olh->removed) refuse("the current version is a delete marker");
        h.olh = std::move(*olh);
      }
    }
  }
  std::optional<std::string_view> manifest;
  for (const auto& [name, value] : xattrs)
    if (name == "user.rgw.manifest") manifest = value;
  if (manifest) {
    auto decoded = decode_manifest(*manifest);
    if (!decoded.ok()) {
      refuse(decoded.error().message);
    } else {
      h.size = decoded->obj_size;
      if (decoded->head_size > head_size && !decoded->explicit_objs)
        refuse("manifest head_size " + std::to_string(decoded->head_size) + " exceeds the head object's " +
               std::to_string(head_size) + " bytes");
      h.manifest = std::move(*decoded);
    }
  }
  return h;
}

}  // namespace xo::rgw
