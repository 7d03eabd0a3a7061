// Writes content.h's bytes for <size> <seed> [offset] to stdout (checks the Python twin).
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "qa/server/content.h"

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  uint64_t size = std::strtoull(argv[1], nullptr, 10), seed = std::strtoull(argv[2], nullptr, 10);
  uint64_t offset = argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 0;
  std::vector<uint8_t> out(size);
  xo::testserver::content_fill(seed, offset, out);
  return std::fwrite(out.data(), 1, out.size(), stdout) == out.size() ? 0 : 1;
}
