// GoogleTest assertions for xo::Result / xo::Status, shared by the tests.
#pragma once

#include <gtest/gtest.h>

#include <utility>

#include "common/base/result.h"

// Fails the test (and returns from the test function) unless `expr` is ok;
// the message names the expression and the error.
#define ASSERT_OK(expr)                                                          \
  do {                                                                           \
    auto xo_assert_ok_ = (expr);                                                 \
    ASSERT_TRUE(xo_assert_ok_.ok()) << #expr << ": " << xo_assert_ok_.error().to_string(); \
  } while (0)

// `ASSERT_OK_AND(auto x, f());` declares (or assigns) lhs from an ok Result.
#define ASSERT_OK_AND(lhs, expr)                                                 \
  auto XO_CONCAT_(xo_assert_r_, __LINE__) = (expr);                              \
  ASSERT_TRUE(XO_CONCAT_(xo_assert_r_, __LINE__).ok())                           \
      << #expr << ": " << XO_CONCAT_(xo_assert_r_, __LINE__).error().to_string(); \
  lhs = std::move(XO_CONCAT_(xo_assert_r_, __LINE__)).value()
