// qa/bench output, shared by every benchmark program: one JSON object per
// line on stdout — latency lines with p50/p99 of the samples, or a single
// value — each saying what was measured.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace xo::bench {

// Nearest-rank percentile, p in [0, 1]; 0 without samples.
inline double percentile(std::vector<double> samples, double p) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  const auto rank = static_cast<size_t>(p * static_cast<double>(samples.size()));
  return samples[std::min(samples.size() - 1, rank)];
}

inline std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\u%04x", c);
      out += esc;
      continue;
    }
    out += c;
  }
  return out + "\"";
}

// {"name":…,"unit":…,"p50":…,"p99":…,"n":…,"what":…}
inline void print_latency(std::string_view name, std::string_view unit, const std::vector<double>& samples,
                          std::string_view what) {
  std::printf("{\"name\":%s,\"unit\":%s,\"p50\":%.3f,\"p99\":%.3f,\"n\":%zu,\"what\":%s}\n", json_string(name).c_str(),
              json_string(unit).c_str(), percentile(samples, 0.5), percentile(samples, 0.99), samples.size(),
              json_string(what).c_str());
  std::fflush(stdout);
}

// {"name":…,"unit":…,"value":…,"n":…,"what":…}
inline void print_value(std::string_view name, std::string_view unit, double value, uint64_t n,
                        std::string_view what) {
  std::printf("{\"name\":%s,\"unit\":%s,\"value\":%.4f,\"n\":%llu,\"what\":%s}\n", json_string(name).c_str(),
              json_string(unit).c_str(), value, static_cast<unsigned long long>(n), json_string(what).c_str());
  std::fflush(stdout);
}

}  // namespace xo::bench
