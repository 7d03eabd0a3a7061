// The lab fixture shared by qa/system/tls's tests: HTTPS test servers on the
// frontend and backend0 (OpenSSL first, XO's record layer after each move), a
// Mover that carries the TCP snapshot and the TLS state as encoded bytes, and
// the checks every test ends with: no RST on the client's wire, no socket left.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>

#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/base/testing.h"
#include "common/tls/openssl_layer.h"
#include "qa/lab/lab.h"
#include "qa/lab/packet_counter.h"
#include "qa/lab/run.h"
#include "qa/server/content.h"
#include "qa/server/tls_stream.h"
#include "qa/system/tcp/move_checks.h"
#include "qa/system/tcp/move_lab.h"

namespace xo::tcpmove::tlslab {

using testserver::RequestInfo;

constexpr uint16_t kPort = 443;

inline bool content_ok(std::string_view body, uint64_t size, uint64_t seed) {
  return body.size() == size &&
         testserver::content_mismatch(seed, 0, std::span(reinterpret_cast<const uint8_t*>(body.data()), body.size())) == -1;
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

inline void WriteFile(const std::string& path, const std::string& data) { std::ofstream(path, std::ios::binary) << data; }

// Plan: request `seq` is answered by hosts[seq]; requests not listed (and
// POSTs, which the server never hands over) stay where they are.
inline Plan by_seq(std::map<uint64_t, std::string> hosts) {
  Plan p;
  p.before = [hosts](const std::string&, const RequestInfo& r) -> std::optional<std::string> {
    auto it = hosts.find(r.seq);
    if (it == hosts.end()) return std::nullopt;
    return it->second;
  };
  return p;
}

// Each resumed TLS state as the new owner decoded it.
struct Resumed {
  std::string version, cipher;
  uint64_t tx_seq = 0, rx_seq = 0;
  size_t pending_ciphertext = 0, unread_plaintext = 0;  // carried TLS bytes
};

class TlsMove : public ::testing::Test {
 protected:
  // Lab, HTTPS servers and the wire counter. corrupt_tx_seq: every resumed
  // state sends with TX sequence + 1 (the negative control). `tls` adjusts the
  // servers' TLS configuration (certificate filled in afterwards).
  void Start(Plan plan, bool corrupt_tx_seq = false, tls::ServerConfig tls = {}) {
    dir_ = TempDir();
    auto pem = tls::make_self_signed("xo-lab");
    ASSERT_TRUE(pem.ok()) << pem.error().to_string();
    cafile_ = dir_ + "/ca.pem";
    WriteFile(cafile_, pem->cert_pem);
    tls.cert_pem = pem->cert_pem;
    tls.key_pem = pem->key_pem;
    auto ctx = tls::ServerContext::create(tls);
    ASSERT_TRUE(ctx.ok()) << ctx.error().to_string();
    factory_ = std::make_unique<testserver::TlsStreamFactory>(*ctx);
    factory_->on_resume = [this, corrupt_tx_seq](tls::State& st) {
      std::lock_guard lock(mu_);
      resumed_.push_back({tls::to_string(st.version), tls::cipher_info(st.cipher).name, st.tx.seq(), st.rx.seq(),
                          st.pending_ciphertext.size(), st.unread_plaintext.size()});
      if (corrupt_tx_seq) st.tx.set_seq(st.tx.seq() + 1);
    };

    auto lab = lab::Lab::up({.backends = 1});
    ASSERT_TRUE(lab.ok()) << lab.error().to_string();
    lab_ = std::make_unique<lab::Lab>(std::move(*lab));
    auto ml = MoveLab::start(*lab_, std::move(plan), kPort, factory_.get());
    ASSERT_TRUE(ml.ok()) << ml.error().to_string();
    ml_ = std::move(*ml);
    auto pc = lab::PacketCounter::start(lab_->client().ns);
    ASSERT_TRUE(pc.ok()) << pc.error().to_string();
    counter_ = std::move(*pc);
  }

  void TearDown() override {
    if (lab_) {
      expect_clean_finish(*lab_, counter_.get(), expect_no_rst_);
      ml_.reset();
      lab_.reset();
    }
    if (!dir_.empty()) (void)lab::run_in("", {"rm", "-rf", dir_});
  }

  static std::string TempDir() {
    char tmpl[] = "/tmp/xo-tls-move-XXXXXX";
    return ::mkdtemp(tmpl) ? tmpl : "/tmp";
  }

  std::string Url(const std::string& path) const {
    return "https://" + lab_->service_ip() + ":" + std::to_string(kPort) + path;
  }

  // Every move so far succeeded; returns them.
  std::vector<MoveRecord> Moves(size_t expected) { return expect_moves_ok(ml_->mover(), expected); }

  std::vector<Resumed> ResumedStates() {
    std::lock_guard lock(mu_);
    return resumed_;
  }

  std::string dir_, cafile_;
  std::unique_ptr<testserver::TlsStreamFactory> factory_;
  std::unique_ptr<lab::Lab> lab_;
  std::unique_ptr<MoveLab> ml_;
  std::unique_ptr<lab::PacketCounter> counter_;
  bool expect_no_rst_ = true;
  std::mutex mu_;
  std::vector<Resumed> resumed_;
};

#define START(...)       \
  Start(__VA_ARGS__);    \
  if (HasFatalFailure()) return

}  // namespace xo::tcpmove::tlslab
