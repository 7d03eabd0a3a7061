// Test helper: a fresh cluster CA and host certificates per test run, made
// with qa/pki/xo-pki in a temporary directory that is removed afterwards.
#pragma once

#include <string>
#include <vector>

namespace xo::handoff::test {

class TempPki {
 public:
  // A CA in DIR/<name>/ with certificates for `hosts`.
  TempPki(const std::vector<std::string>& hosts, const std::string& name = "cluster");
  ~TempPki();
  TempPki(const TempPki&) = delete;
  TempPki& operator=(const TempPki&) = delete;

  const std::string& dir() const { return dir_; }  // layout of xo-pki
  bool ok() const { return ok_; }

 private:
  std::string root_, dir_;
  bool ok_ = false;
};

}  // namespace xo::handoff::test
