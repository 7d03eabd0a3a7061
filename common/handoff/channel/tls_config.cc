#include "common/handoff/channel/tls_config.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "common/handoff/wire/messages.h"

namespace xo::handoff::channel {
namespace ssl = boost::asio::ssl;

TlsIdentity TlsIdentity::from_pki_dir(const std::string& dir, const std::string& host_id) {
  return {dir + "/ca.crt", dir + "/" + host_id + ".crt", dir + "/" + host_id + ".key"};
}

std::string openssl_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

Result<std::shared_ptr<ssl::context>> make_tls_context(const TlsIdentity& id, Role role) {
  auto ctx = std::make_shared<ssl::context>(role == Role::kServer ? ssl::context::tls_server
                                                                  : ssl::context::tls_client);
  SSL_CTX* native = ctx->native_handle();
  // TLS 1.3 only: both bounds, so neither side can be talked down.
  if (SSL_CTX_set_min_proto_version(native, TLS1_3_VERSION) != 1 ||
      SSL_CTX_set_max_proto_version(native, TLS1_3_VERSION) != 1)
    return error("tls context: cannot restrict to TLS 1.3: " + openssl_errors());
  SSL_CTX_set_options(native, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  // No tickets, no resumption: each connection proves its certificate.
  SSL_CTX_set_num_tickets(native, 0);
  SSL_CTX_set_session_cache_mode(native, SSL_SESS_CACHE_OFF);

  boost::system::error_code ec;
  ctx->load_verify_file(id.ca_file, ec);
  if (ec) return error("tls context: cluster CA " + id.ca_file + ": " + ec.message());
  ctx->use_certificate_chain_file(id.cert_file, ec);
  if (ec) return error("tls context: certificate " + id.cert_file + ": " + ec.message());
  ctx->use_private_key_file(id.key_file, ssl::context::pem, ec);
  if (ec) return error("tls context: private key " + id.key_file + ": " + ec.message());
  if (SSL_CTX_check_private_key(native) != 1)
    return error("tls context: " + id.key_file + " does not match " + id.cert_file);
  // Both roles require and verify the peer's certificate.
  ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert, ec);
  if (ec) return error("tls context: set_verify_mode: " + ec.message());
  ctx->set_verify_depth(4, ec);
  return ctx;
}

Result<std::string> peer_host_id(SSL* ssl) {
  if (SSL_get_verify_result(ssl) != X509_V_OK)
    return error(std::string("peer certificate not verified: ") +
                 X509_verify_cert_error_string(SSL_get_verify_result(ssl)));
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (!cert) return error("peer presented no certificate");

  std::string name;
  int dns_names = 0;
  auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (sans) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans, i);
      if (gn->type != GEN_DNS) continue;
      ++dns_names;
      const ASN1_IA5STRING* s = gn->d.dNSName;
      name.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                  static_cast<size_t>(ASN1_STRING_length(s)));
    }
    GENERAL_NAMES_free(sans);
  }
  if (dns_names > 1) return error("peer certificate names " + std::to_string(dns_names) + " hosts, expected one");
  if (dns_names == 0) {
    char cn[256] = {};
    int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
    if (n <= 0) return error("peer certificate has neither SAN DNS nor CN");
    name.assign(cn, static_cast<size_t>(n));
  }
  if (auto st = wire::validate_host_id(name, "peer certificate host id"); !st.ok()) return st.take_error();
  return name;
}

Status expect_peer_host_id(SSL* ssl, const std::string& host_id) {
  XO_TRY(wire::validate_host_id(host_id, "expected peer host id"));
  SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  if (SSL_set1_host(ssl, host_id.c_str()) != 1)
    return error("SSL_set1_host(" + host_id + "): " + openssl_errors());
  if (SSL_set_tlsext_host_name(ssl, host_id.c_str()) != 1)
    return error("SNI " + host_id + ": " + openssl_errors());
  return {};
}

}  // namespace xo::handoff::channel
