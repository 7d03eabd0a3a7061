// A bounds-checked reader for Ceph's little-endian "denc" encoding, enough for the
// RGW structures the locator decodes (manifest, bucket entrypoint/instance, OLH info).
//
// Every read checks the remaining length and sets a sticky failure instead of
// throwing, so arbitrary bytes (a corrupt xattr, a fuzzer) can never read out of
// bounds; callers check ok() once and turn a failure into "not offloadable".
//
// Versioned structs follow Ceph's ENCODE_START/DECODE_START framing:
//   u8 struct_v, u8 struct_compat, u32 struct_len, <struct_len bytes>
// and the legacy variants (DECODE_START_LEGACY_COMPAT_LEN[_32]) where very old
// encodings lack the compat byte and/or the length.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace xo::rgw {

class DencReader {
 public:
  explicit DencReader(std::string_view bytes) : p_(bytes.data()), end_(bytes.data() + bytes.size()) {}

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  size_t remaining() const { return ok() ? static_cast<size_t>(end_ - p_) : 0; }

  // Record the first failure only: it names the field that went wrong.
  void fail(std::string what) {
    if (error_.empty()) error_ = std::move(what);
    p_ = end_;
  }

  uint8_t u8() { return fixed<uint8_t>(); }
  uint32_t u32() { return fixed<uint32_t>(); }
  uint64_t u64() { return fixed<uint64_t>(); }
  bool boolean() { return u8() != 0; }

  // Ceph strings: u32 length + bytes.
  std::string str() {
    uint32_t n = u32();
    if (!ok()) return {};
    if (n > remaining()) {
      fail("string length " + std::to_string(n) + " exceeds the " + std::to_string(remaining()) + " bytes left");
      return {};
    }
    std::string s(p_, n);
    p_ += n;
    return s;
  }

  void skip(size_t n) {
    if (!ok()) return;
    if (n > remaining()) return fail("skip past the end");
    p_ += n;
  }

  // A container count, bounded by what the remaining bytes could possibly hold
  // (each element needs at least min_element_bytes), so a huge count from corrupt
  // data cannot make the caller loop or allocate for long.
  uint32_t count(size_t min_element_bytes) {
    uint32_t n = u32();
    if (ok() && min_element_bytes > 0 && n > remaining() / min_element_bytes) {
      fail("element count " + std::to_string(n) + " cannot fit in the bytes left");
      return 0;
    }
    return n;
  }

  // Opens a versioned struct. `max_v` is the newest version this decoder knows;
  // a struct whose compat version is newer cannot be read (Ceph throws there too).
  // lenv/compatv/legacy_skip model DECODE_START_LEGACY_COMPAT_LEN(v, compatv, lenv)
  // and its _32 variant (legacy_skip = 3: versions before compatv were u32 values).
  struct Frame {
    uint8_t v = 0;
    const char* end = nullptr;  // nullptr: the legacy encoding carries no length
  };
  Frame begin(const char* what, uint8_t max_v, uint8_t compatv = 1, uint8_t lenv = 1, size_t legacy_skip = 0) {
    Frame f;
    f.v = u8();
    if (!ok()) return f;
    if (f.v >= compatv) {
      uint8_t compat = u8();
      if (ok() && compat > max_v) {
        fail(std::string(what) + ": encoding needs decoder version " + std::to_string(compat) + ", this one knows " +
             std::to_string(max_v));
        return f;
      }
    } else {
      skip(legacy_skip);
    }
    if (f.v >= lenv) {
      uint32_t len = u32();
      if (!ok()) return f;
      if (len > remaining()) {
        fail(std::string(what) + ": struct length " + std::to_string(len) + " exceeds the bytes left");
        return f;
      }
      f.end = p_ + len;
    }
    return f;
  }
  Frame begin_v(const char* what, uint8_t max_v) { return begin(what, max_v, 1, 1, 0); }

  // Closes a struct: fields a newer encoder appended are skipped; reading past the
  // struct's own length means the bytes were malformed.
  void finish(const char* what, const Frame& f) {
    if (!ok() || f.end == nullptr) return;
    if (p_ > f.end) return fail(std::string(what) + ": fields overran the struct length");
    p_ = f.end;
  }
  // Remaining bytes inside the current struct (0 when it has no length).
  size_t left_in(const Frame& f) const { return (ok() && f.end && f.end > p_) ? static_cast<size_t>(f.end - p_) : 0; }

 private:
  template <class T>
  T fixed() {
    if (!ok()) return T{};
    if (sizeof(T) > remaining()) {
      fail("truncated: wanted " + std::to_string(sizeof(T)) + " bytes, " + std::to_string(remaining()) + " left");
      return T{};
    }
    T v;
    std::memcpy(&v, p_, sizeof(T));  // Ceph encodes little-endian; so is every host XO supports.
    p_ += sizeof(T);
    return v;
  }

  const char* p_;
  const char* end_;
  std::string error_;
};

}  // namespace xo::rgw
