#include "common/handoff/test/pki.h"

#include <cstdlib>
#include <filesystem>

namespace xo::handoff::test {

TempPki::TempPki(const std::vector<std::string>& hosts, const std::string& name) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "xo-handoff-pki.XXXXXX").string();
  if (!mkdtemp(tmpl.data())) return;
  root_ = tmpl;
  dir_ = root_ + "/" + name;
  const std::string script = XO_PKI_SCRIPT;
  if (std::system((script + " init '" + dir_ + "' >/dev/null").c_str()) != 0) return;
  for (const auto& h : hosts)
    if (std::system((script + " host '" + dir_ + "' '" + h + "' >/dev/null").c_str()) != 0) return;
  ok_ = true;
}

TempPki::~TempPki() {
  std::error_code ec;
  if (!root_.empty()) std::filesystem::remove_all(root_, ec);
}

}  // namespace xo::handoff::test
