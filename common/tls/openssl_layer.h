// The first leg of a TLS connection: an OpenSSL 3.0 server SSL*, instrumented
// so that it can be frozen into a State and continued elsewhere.
//
// How the state is known without reaching into OpenSSL's internals:
//  * Keys: SSL_CTX_set_keylog_callback. TLS 1.3 traffic secrets are turned
//    into key/IV right there (HKDF), so freeze() only copies; TLS 1.2's
//    CLIENT_RANDOM master secret is expanded with the PRF at the same moment.
//  * Sequence numbers: counted from SSL_set_msg_callback, which sees every
//    record header (SSL3_RT_HEADER) in both directions. The application epoch
//    starts after the Finished message (TLS 1.3) or ChangeCipherSpec (TLS 1.2)
//    of each direction; KeyUpdates restart it. Session tickets, resumption and
//    KeyUpdates all change the numbers, so nothing is assumed.
//  * Bytes: OpenSSL reads and writes memory BIOs, and this class moves bytes
//    between them and the socket. Only whole records enter the read BIO, so
//    OpenSSL never holds a partial record; what it has not consumed is exactly
//    the read BIO's contents plus our partial-record buffer.
//  * TLS 1.2 AES-GCM's explicit nonce starts random in OpenSSL and counts up:
//    the next one is the last one seen on the wire plus one.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "common/base/result.h"
#include "common/tls/record_layer.h"

namespace xo::tls {

struct ServerConfig {
  std::string cert_pem, key_pem;
  int min_version = TLS1_2_VERSION, max_version = TLS1_3_VERSION;
  std::string ciphersuites;  // TLS 1.3 suites; empty: OpenSSL's default
  std::string cipher_list = "ECDHE+AESGCM:ECDHE+CHACHA20";  // TLS 1.2: AEAD + ECDHE only
  int num_tickets = 2;       // TLS 1.3 tickets sent after the handshake
};

// An SSL_CTX with XO's callbacks installed.
class ServerContext {
 public:
  static Result<std::shared_ptr<ServerContext>> create(const ServerConfig& cfg);
  ~ServerContext();
  SSL_CTX* get() const { return ctx_; }

 private:
  SSL_CTX* ctx_ = nullptr;
};

// A self-signed ECDSA P-256 certificate and key (PEM), for tests and labs.
struct PemPair {
  std::string cert_pem, key_pem;
};
Result<PemPair> make_self_signed(const std::string& common_name);

class OpensslLayer;
// Run the server handshake on the connected blocking socket `fd`.
Result<std::unique_ptr<OpensslLayer>> accept_openssl(std::shared_ptr<ServerContext> ctx, int fd);

class OpensslLayer final : public RecordLayer {
 public:
  ~OpensslLayer() override;
  const char* backend() const override { return "openssl"; }
  int fd() const override { return fd_; }
  Result<size_t> read_some(std::span<uint8_t> out) override;
  Status write_all(std::span<const uint8_t> data) override;
  Status key_update(bool request_peer) override;
  Status close_notify() override;
  Status pull_available() override;
  // Refuses (layer stays usable) when: the handshake is not finished, bytes
  // are still queued for writing, OpenSSL wants something other than to read,
  // keys or cipher are unknown, or a callback failed. A KeyUpdate the peer
  // requested is answered before the freeze.
  Result<State> freeze(std::span<const uint8_t> unconsumed = {}) override;

  SSL* ssl() const { return ssl_; }
  uint64_t tx_records() const;  // records sent in the current application epoch
  uint64_t rx_records() const;

  struct Tracker;  // callback state, attached to the SSL (internal)

 private:
  friend Result<std::unique_ptr<OpensslLayer>> accept_openssl(std::shared_ptr<ServerContext>, int);
  OpensslLayer() = default;
  Status handshake();
  Status flush();                // write BIO -> socket
  Result<bool> read_more();      // socket -> whole records -> read BIO; false on EOF
  void feed_whole_records();

  std::shared_ptr<ServerContext> ctx_;
  SSL* ssl_ = nullptr;
  BIO* rbio_ = nullptr;  // owned by ssl_
  BIO* wbio_ = nullptr;  // owned by ssl_
  int fd_ = -1;
  std::vector<uint8_t> in_;       // received bytes not yet in rbio_ (a partial record)
  std::vector<uint8_t> out_;      // scratch for flush()
  std::unique_ptr<Tracker> tracker_;
  bool frozen_ = false;
  bool eof_ = false;
};

}  // namespace xo::tls
