// decode() on arbitrary bytes: never crash; whatever it accepts re-encodes to
// the same bytes (the format has one encoding per snapshot) and decodes again.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "common/tcp/snapshot.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto s = xo::tcp::decode({data, size});
  if (!s.ok()) return 0;
  auto again = xo::tcp::encode(*s);
  auto s2 = xo::tcp::decode(again);
  if (!s2.ok()) std::abort();
  // Input of the current version re-encodes byte for byte.
  if (size >= 6 && data[4] == 0 && data[5] == xo::tcp::Snapshot::kVersion &&
      (again.size() != size || std::memcmp(again.data(), data, size) != 0))
    std::abort();
  return 0;
}
