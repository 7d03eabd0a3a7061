// Fuzz the TLS state decoder: it must reject or accept every input without
// crashing, and whatever it accepts must re-encode to the same bytes.
#include <cstdint>
#include <algorithm>
#include <cstdlib>
#include <span>

#include "common/tls/state.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto s = xo::tls::decode(std::span(data, size));
  if (s.ok()) {
    auto again = xo::tls::encode(*s);
    if (again.size() != size || !std::equal(again.begin(), again.end(), data)) std::abort();
  }
  return 0;
}
