// ByteWriter / ByteReader — big-endian, bounds-checked primitives for XO's own
// wire formats (TCP snapshot, TLS state, handoff messages).
//
// The reader never reads past its span: every get_*() returns an Error naming
// the field that was cut short, so a decoder can say exactly what was wrong.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/result.h"

namespace xo {

class ByteWriter {
 public:
  void u8(uint8_t v) { out_.push_back(v); }
  void u16(uint16_t v) { be(v, 2); }
  void u32(uint32_t v) { be(v, 4); }
  void u64(uint64_t v) { be(v, 8); }
  void i32(int32_t v) { u32(static_cast<uint32_t>(v)); }
  void raw(std::span<const uint8_t> b) { out_.insert(out_.end(), b.begin(), b.end()); }
  void raw(const void* p, size_t n) { raw({static_cast<const uint8_t*>(p), n}); }
  // Length-prefixed (u32) bytes / string.
  void blob(std::span<const uint8_t> b) {
    u32(static_cast<uint32_t>(b.size()));
    raw(b);
  }
  void str(std::string_view s) { blob({reinterpret_cast<const uint8_t*>(s.data()), s.size()}); }

  // Overwrite a u32 written earlier (e.g. a length known only at the end).
  void patch_u32(size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) out_[at + i] = static_cast<uint8_t>(v >> (8 * (3 - i)));
  }
  size_t size() const { return out_.size(); }
  void reserve(size_t n) { out_.reserve(n); }
  std::vector<uint8_t> take() { return std::move(out_); }

 private:
  void be(uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i) out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  std::vector<uint8_t> out_;
};

class ByteReader {
 public:
  explicit ByteReader(std::span<const uint8_t> in) : in_(in) {}

  size_t remaining() const { return in_.size() - pos_; }
  size_t position() const { return pos_; }
  bool empty() const { return remaining() == 0; }

  Result<uint8_t> u8(const char* what) { return get<uint8_t>(what); }
  Result<uint16_t> u16(const char* what) { return get<uint16_t>(what); }
  Result<uint32_t> u32(const char* what) { return get<uint32_t>(what); }
  Result<uint64_t> u64(const char* what) { return get<uint64_t>(what); }
  Result<int32_t> i32(const char* what) {
    auto v = get<uint32_t>(what);
    if (!v) return v.take_error();
    return static_cast<int32_t>(*v);
  }

  // `n` raw bytes, as a view into the input.
  Result<std::span<const uint8_t>> raw(size_t n, const char* what) {
    if (remaining() < n) return truncated(what, n);
    auto s = in_.subspan(pos_, n);
    pos_ += n;
    return s;
  }
  // u32 length + bytes; the length must not exceed `max` nor the input left.
  Result<std::span<const uint8_t>> blob(size_t max, const char* what) {
    auto len = u32(what);
    if (!len) return len.take_error();
    if (*len > max)
      return error(std::string(what) + ": length " + std::to_string(*len) + " exceeds the limit " +
                   std::to_string(max));
    return raw(*len, what);
  }
  Result<std::string> str(size_t max, const char* what) {
    auto b = blob(max, what);
    if (!b) return b.take_error();
    return std::string(reinterpret_cast<const char*>(b->data()), b->size());
  }

 private:
  template <class T>
  Result<T> get(const char* what) {
    if (remaining() < sizeof(T)) return truncated(what, sizeof(T));
    uint64_t v = 0;
    for (size_t i = 0; i < sizeof(T); ++i) v = (v << 8) | in_[pos_ + i];
    pos_ += sizeof(T);
    return static_cast<T>(v);
  }
  Error truncated(const char* what, size_t want) const {
    return error(std::string("truncated input: ") + what + " needs " + std::to_string(want) +
                 " bytes at offset " + std::to_string(pos_) + ", " + std::to_string(remaining()) +
                 " left");
  }

  std::span<const uint8_t> in_;
  size_t pos_ = 0;
};

}  // namespace xo
