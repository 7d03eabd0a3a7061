// xo::Result<T> — the one error-handling style of the code base.
//
// Every fallible call returns Result<T> (or Status == Result<void>). An Error
// carries an errno-style code (0 when no errno applies) and a message that says
// what failed and why, in words an operator can act on. No exceptions cross
// library boundaries; Boost/Asio error_codes are converted at the edge.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <variant>

namespace xo {

struct Error {
  int code = 0;         // errno value, or 0
  std::string message;  // "what: why"

  std::string to_string() const {
    if (code == 0) return message;
    return message + ": " + std::strerror(code);
  }
};

// Build an Error from the current errno: sys_error("setsockopt(TCP_REPAIR)").
inline Error sys_error(std::string what, int err = errno) { return Error{err, std::move(what)}; }
inline Error error(std::string what, int code = 0) { return Error{code, std::move(what)}; }

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}          // NOLINT: implicit by design
  Result(Error err) : v_(std::move(err)) {}          // NOLINT
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const { return std::get<1>(v_); }
  Error take_error() { return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error err) : err_(std::move(err)), ok_(false) {}  // NOLINT
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return err_; }
  Error take_error() { return std::move(err_); }

 private:
  Error err_;
  bool ok_ = true;
};

using Status = Result<void>;

// Prefix context onto a failed result: return annotate(r, "restore");
inline Error annotate(Error e, const std::string& context) {
  e.message = context + ": " + e.message;
  return e;
}

}  // namespace xo

// Propagate a failure to the caller; the expression must yield a Result.
#define XO_TRY(expr)                                 \
  do {                                               \
    auto xo_try_r_ = (expr);                         \
    if (!xo_try_r_.ok()) return xo_try_r_.take_error(); \
  } while (0)

// Assign the value of a Result to `lhs` or propagate its failure.
#define XO_ASSIGN_OR_RETURN(lhs, expr)                      \
  auto XO_CONCAT_(xo_r_, __LINE__) = (expr);                \
  if (!XO_CONCAT_(xo_r_, __LINE__).ok())                    \
    return XO_CONCAT_(xo_r_, __LINE__).take_error();        \
  lhs = std::move(XO_CONCAT_(xo_r_, __LINE__)).value()
#define XO_CONCAT_(a, b) XO_CONCAT2_(a, b)
#define XO_CONCAT2_(a, b) a##b
