// Fuzz the decoders of everything the locator reads from RADOS: arbitrary bytes must
// give an Error or a manifest whose extents tile the requested range exactly.
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>

#include "rgw-xo/locator/bucket_meta.h"
#include "rgw-xo/locator/head_attrs.h"
#include "rgw-xo/locator/manifest.h"

namespace {

std::string unhex(std::string_view h) {
  std::string out;
  for (size_t i = 0; i + 1 < h.size(); i += 2) out.push_back(static_cast<char>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
  return out;
}

// Real Pacific manifests (see manifest_test.cc): mutating them reaches the extent
// logic far faster than random bytes, which rarely survive the framing checks.
const std::string kTemplates[] = {
    unhex(
        "0706250100000000a00000000000000000000006067f0000000a0a6a000000030000006578702b00000030643437376564652d643330362d"
        "343265322d616139382d6530623738353965303238622e343135302e332b00000030643437376564652d643330362d343265322d61613938"
        "2d6530623738353965303238622e343135302e33000000000000000000030000006269670000000000004000000000000000400000000000"
        "210000002e4957775967714e6c6541414e646d42394e6b77356e7771593030364b5a676b5f01000000000000000000000002012000000000"
        "0000000000400000000000000000000000000000004000000000000000000000001100000064656661756c742d706c6163656d656e741100"
        "000064656661756c742d706c6163656d656e74"),
    unhex(
        "0706440100000000400100000000000000000006067e0000000a0a6a000000030000006578702b00000030643437376564652d643330362d"
        "343265322d616139382d6530623738353965303238622e343135302e332b00000030643437376564652d643330362d343265322d61613938"
        "2d6530623738353965303238622e343135302e33000000000000000000020000006d700000000000000000000000000000000000000000"
        "240000006d702e327e74644f5744393662336d6b6e76753758317233676f2d5469787233446573750200000000000000000000000201200000"
        "000100000000000000000000000000800000000000000040000000000000000000000000010000000002012000000003000000000000010000"
        "000000004000000000000000400000000000000000000000000000001100000064656661756c742d706c6163656d656e74"),
};

void check_tiling(const xo::rgw::Manifest& m, uint64_t offset, uint64_t length) {
  auto ex = xo::rgw::manifest_extents(m, offset, length, 4096);
  if (!ex.ok()) return;
  uint64_t at = offset;
  for (const auto& e : *ex) {
    if (e.logical_offset != at || e.length == 0 || e.object.oid.empty()) std::abort();
    at += e.length;
  }
  if (at != offset + length) std::abort();
}

void fuzz_one(std::string_view bytes) {
  auto m = xo::rgw::decode_manifest(bytes);
  if (m.ok()) {
    uint64_t n = m->obj_size;
    check_tiling(*m, 0, n);
    if (n > 0) check_tiling(*m, n / 3, n - n / 3);
    if (n > 2) check_tiling(*m, n / 2, 1);
  }
  (void)xo::rgw::decode_bucket_entrypoint(bytes);
  (void)xo::rgw::decode_bucket_instance(bytes);
  (void)xo::rgw::decode_olh_info(bytes);
  std::map<std::string, std::string, std::less<>> attrs{{"user.rgw.manifest", std::string(bytes)},
                                                        {"user.rgw.olh.info", std::string(bytes)}};
  (void)xo::rgw::classify_head(attrs, bytes.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz_one(std::string_view(reinterpret_cast<const char*>(data), size));
  // Also: a real manifest with input-chosen bytes overwritten by input bytes.
  if (size >= 3) {
    std::string m = kTemplates[data[0] % 2];
    for (size_t i = 1; i + 1 < size; i += 2) m[(data[i] * 7u + i) % m.size()] = static_cast<char>(data[i + 1]);
    fuzz_one(m);
  }
  return 0;
}
