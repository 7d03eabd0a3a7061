// TLS settings of the handoff control channel: TLS 1.3 only, mutual
// authentication against the cluster CA, host ids taken from certificates.
//
// There is no plaintext mode: the channel carries TLS session keys (OFFER's
// tls_state), so every build and every test runs it over mutual TLS.
#pragma once

#include <openssl/ssl.h>

#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <string>

#include "common/base/result.h"

namespace xo::handoff::channel {

// Files made by qa/pki/xo-pki: `xo-pki init DIR` + `xo-pki host DIR HOSTID`.
struct TlsIdentity {
  std::string ca_file;    // the cluster CA (PEM); the ONLY trust anchor
  std::string cert_file;  // this host's certificate (PEM chain), CN and SAN DNS = host id
  std::string key_file;   // its private key (PEM)

  // DIR/ca.crt, DIR/HOSTID.crt, DIR/HOSTID.key — xo-pki's layout.
  static TlsIdentity from_pki_dir(const std::string& dir, const std::string& host_id);
};

enum class Role { kServer, kClient };

// A context for one role: TLS 1.3 only (min = max = 1.3), peer certificate
// required and verified against ca_file only (no system trust store), no
// session tickets (no resumption: every connection authenticates in full).
Result<std::shared_ptr<boost::asio::ssl::context>> make_tls_context(const TlsIdentity& id, Role role);

// The host id in the verified peer certificate: its single SAN DNS name, or
// its CN when it has no SAN DNS name. Fails when there is no verified
// certificate or the name is not a valid host id.
Result<std::string> peer_host_id(SSL* ssl);

// Client side, before the handshake: the server must present a certificate
// for `host_id` (checked by OpenSSL against SAN DNS / CN), and SNI carries it.
Status expect_peer_host_id(SSL* ssl, const std::string& host_id);

// OpenSSL's error queue as text (and cleared), for log lines.
std::string openssl_errors();

}  // namespace xo::handoff::channel
