#include "common/tls/openssl_layer.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/socket.h>

#include <cstring>
#include <string_view>

#include "common/tls/crypto.h"
#include "common/tls/record.h"
#include "common/tls/socket_io.h"

namespace xo::tls {

struct OpensslLayer::Tracker {
  bool cipher_known = false;
  Version version = Version::tls13;
  Cipher cipher = Cipher::aes128gcm;
  Direction tx, rx;            // keys and counted sequence of the current epoch
  Direction next_tx, next_rx;  // derived in the keylog callback, installed at the epoch switch
  bool have_next_tx = false, have_next_rx = false;
  bool tx_app = false, rx_app = false;  // counting application-epoch records
  // TLS 1.3: the Finished was seen but its keys not yet (or the other way round).
  bool tx_switch_due = false, rx_switch_due = false;
  // TLS 1.2 AES-GCM: explicit nonce of the last record written after ChangeCipherSpec.
  std::vector<uint8_t> tx_wire;
  bool tx_after_ccs = false, tx_explicit_seen = false;
  uint64_t last_tx_explicit = 0;
  std::string failure;  // first error inside a callback; freeze() refuses with it

  void fail(std::string what) {
    if (failure.empty()) failure = std::move(what);
  }
};

namespace {

constexpr size_t kRecvChunk = 64 * 1024;

int tracker_index() {
  static int idx = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return idx;
}

OpensslLayer::Tracker* tracker_of(const SSL* ssl) {
  return static_cast<OpensslLayer::Tracker*>(SSL_get_ex_data(ssl, tracker_index()));
}

bool learn_cipher(const SSL* ssl, OpensslLayer::Tracker& t) {
  const SSL_CIPHER* c = SSL_get_pending_cipher(ssl);
  if (!c) c = SSL_get_current_cipher(ssl);
  if (!c) return false;
  switch (SSL_CIPHER_get_cipher_nid(c)) {
    case NID_aes_128_gcm: t.cipher = Cipher::aes128gcm; break;
    case NID_aes_256_gcm: t.cipher = Cipher::aes256gcm; break;
    case NID_chacha20_poly1305: t.cipher = Cipher::chacha20poly1305; break;
    default:
      t.fail(std::string("cipher ") + SSL_CIPHER_get_name(c) + " has no kTLS form (want AES-GCM or ChaCha20-Poly1305)");
      return false;
  }
  int v = SSL_version(ssl);
  if (v != TLS1_3_VERSION && v != TLS1_2_VERSION) {
    t.fail("protocol version " + std::to_string(v) + " cannot be carried (TLS 1.2 or 1.3 only)");
    return false;
  }
  t.version = v == TLS1_3_VERSION ? Version::tls13 : Version::tls12;
  t.cipher_known = true;
  return true;
}

std::vector<uint8_t> from_hex(std::string_view h) {
  std::vector<uint8_t> out;
  auto nib = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i + 1 < h.size(); i += 2) {
    int a = nib(h[i]), b = nib(h[i + 1]);
    if (a < 0 || b < 0) return {};
    out.push_back(uint8_t(a << 4 | b));
  }
  return out;
}

void derive_tls12(const SSL* ssl, OpensslLayer::Tracker& t, std::span<const uint8_t> master) {
  uint8_t cr[SSL3_RANDOM_SIZE], sr[SSL3_RANDOM_SIZE];
  if (SSL_get_client_random(ssl, cr, sizeof cr) != sizeof cr || SSL_get_server_random(ssl, sr, sizeof sr) != sizeof sr)
    return t.fail("TLS 1.2: client/server random unavailable");
  auto kb = tls12_key_block(t.cipher, master, cr, sr);
  if (!kb) return t.fail("TLS 1.2 key block: " + kb.error().to_string());
  t.next_tx = Direction{};
  t.next_rx = Direction{};
  t.next_tx.set_keys(Version::tls12, t.cipher, kb->server_key, kb->server_iv);
  t.next_rx.set_keys(Version::tls12, t.cipher, kb->client_key, kb->client_iv);
  t.have_next_tx = t.have_next_rx = true;
}

void switch_epoch(const SSL* ssl, OpensslLayer::Tracker& t, bool tx) {
  bool& have = tx ? t.have_next_tx : t.have_next_rx;
  if (!have && t.version == Version::tls12) {
    // Abbreviated (resumed) TLS 1.2 handshakes may not log CLIENT_RANDOM: the
    // session's master secret is the same input.
    uint8_t master[SSL_MAX_MASTER_KEY_LENGTH];
    size_t n = SSL_SESSION_get_master_key(SSL_get_session(ssl), master, sizeof master);
    if (n > 0) derive_tls12(ssl, t, std::span(master, n));
  }
  if (!have) return t.fail(std::string("no ") + (tx ? "server" : "client") + " traffic keys at the epoch switch");
  (tx ? t.tx : t.rx) = tx ? t.next_tx : t.next_rx;
  (tx ? t.tx : t.rx).set_seq(0);
  (tx ? t.tx_app : t.rx_app) = true;
  have = false;
}

// Keys are derived here, during the handshake, so that freeze() only copies.
void keylog_callback(const SSL* ssl, const char* line) {
  OpensslLayer::Tracker* t = tracker_of(ssl);
  if (!t) return;
  std::string_view l(line);
  size_t sp1 = l.find(' '), sp2 = l.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 == sp1) return;
  std::string_view label = l.substr(0, sp1);
  std::vector<uint8_t> secret = from_hex(l.substr(sp2 + 1));
  bool server = label == "SERVER_TRAFFIC_SECRET_0", client = label == "CLIENT_TRAFFIC_SECRET_0";
  if (!server && !client && label != "CLIENT_RANDOM") return;
  if (!learn_cipher(ssl, *t)) return;
  if (label == "CLIENT_RANDOM") return derive_tls12(ssl, *t, secret);
  Direction& d = server ? t->next_tx : t->next_rx;
  d = Direction{};
  if (auto st = set_tls13_direction(d, t->cipher, secret); !st) return t->fail("TLS 1.3 traffic keys: " + st.error().to_string());
  (server ? t->have_next_tx : t->have_next_rx) = true;
  // OpenSSL logs the server secret after writing its Finished (post-work), the
  // client secret around reading the client's: switch when both are known.
  bool& due = server ? t->tx_switch_due : t->rx_switch_due;
  if (due) {
    due = false;
    switch_epoch(ssl, *t, server);
  }
}

void key_update(OpensslLayer::Tracker& t, bool tx) {
  Direction& d = tx ? t.tx : t.rx;
  auto next = next_traffic_secret(t.cipher, d.traffic_secret);
  if (!next) return t.fail("KeyUpdate: " + next.error().to_string());
  if (auto st = set_tls13_direction(d, t.cipher, *next); !st) return t.fail("KeyUpdate: " + st.error().to_string());
}

void msg_callback(int write_p, int /*version*/, int content_type, const void* buf, size_t len, SSL* ssl, void*) {
  OpensslLayer::Tracker* t = tracker_of(ssl);
  if (!t || len == 0) return;
  auto* b = static_cast<const uint8_t*>(buf);
  bool tx = write_p != 0;
  if (content_type == SSL3_RT_HEADER) {
    bool& app = tx ? t->tx_app : t->rx_app;
    Direction& d = tx ? t->tx : t->rx;
    if (app) {
      d.set_seq(d.seq() + 1);
    } else if (b[0] == SSL3_RT_CHANGE_CIPHER_SPEC && SSL_version(ssl) == TLS1_2_VERSION) {
      if (!t->cipher_known) learn_cipher(ssl, *t);
      switch_epoch(ssl, *t, tx);  // TLS 1.2: the next record is sequence 0 under the new keys
    }
    return;
  }
  if (content_type == SSL3_RT_HANDSHAKE && SSL_version(ssl) == TLS1_3_VERSION) {
    // The message callback runs after the record carrying the message.
    if (b[0] == SSL3_MT_FINISHED && !(tx ? t->tx_app : t->rx_app)) {
      if (tx ? t->have_next_tx : t->have_next_rx) switch_epoch(ssl, *t, tx);
      else (tx ? t->tx_switch_due : t->rx_switch_due) = true;
    }
    else if (b[0] == SSL3_MT_KEY_UPDATE && (tx ? t->tx_app : t->rx_app)) key_update(*t, tx);
  }
}

std::string ossl_error(const char* what) { return openssl_error(what); }

}  // namespace

ServerContext::~ServerContext() { SSL_CTX_free(ctx_); }

Result<std::shared_ptr<ServerContext>> ServerContext::create(const ServerConfig& cfg) {
  XO_TRY(warm_up());
  auto sc = std::shared_ptr<ServerContext>(new ServerContext);
  sc->ctx_ = SSL_CTX_new(TLS_server_method());
  SSL_CTX* c = sc->ctx_;
  if (!c) return error(ossl_error("SSL_CTX_new"));
  if (SSL_CTX_set_min_proto_version(c, cfg.min_version) != 1 || SSL_CTX_set_max_proto_version(c, cfg.max_version) != 1)
    return error(ossl_error("SSL_CTX_set_{min,max}_proto_version"));
  if (!cfg.ciphersuites.empty() && SSL_CTX_set_ciphersuites(c, cfg.ciphersuites.c_str()) != 1)
    return error(ossl_error(("SSL_CTX_set_ciphersuites(" + cfg.ciphersuites + ")").c_str()));
  if (!cfg.cipher_list.empty() && SSL_CTX_set_cipher_list(c, cfg.cipher_list.c_str()) != 1)
    return error(ossl_error(("SSL_CTX_set_cipher_list(" + cfg.cipher_list + ")").c_str()));
  SSL_CTX_set_num_tickets(c, size_t(cfg.num_tickets));
  // Renegotiation would start a new epoch mid-connection; XO does not carry it.
  SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION);
  static const unsigned char sid_ctx[] = "xo";
  SSL_CTX_set_session_id_context(c, sid_ctx, sizeof sid_ctx - 1);

  BIO* cb = BIO_new_mem_buf(cfg.cert_pem.data(), int(cfg.cert_pem.size()));
  X509* cert = cb ? PEM_read_bio_X509(cb, nullptr, nullptr, nullptr) : nullptr;
  BIO_free(cb);
  BIO* kb = BIO_new_mem_buf(cfg.key_pem.data(), int(cfg.key_pem.size()));
  EVP_PKEY* key = kb ? PEM_read_bio_PrivateKey(kb, nullptr, nullptr, nullptr) : nullptr;
  BIO_free(kb);
  bool ok = cert && key && SSL_CTX_use_certificate(c, cert) == 1 && SSL_CTX_use_PrivateKey(c, key) == 1 &&
            SSL_CTX_check_private_key(c) == 1;
  X509_free(cert);
  EVP_PKEY_free(key);
  if (!ok) return error(ossl_error("server certificate/key (PEM)"));
  SSL_CTX_set_keylog_callback(c, keylog_callback);
  return sc;
}

Result<PemPair> make_self_signed(const std::string& cn) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x = X509_new();
  PemPair out;
  bool ok = key && x && X509_set_version(x, 2) == 1 && ASN1_INTEGER_set(X509_get_serialNumber(x), 1) == 1 &&
            X509_gmtime_adj(X509_getm_notBefore(x), -3600) && X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 365) &&
            X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                       reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0) == 1 &&
            X509_set_issuer_name(x, X509_get_subject_name(x)) == 1 && X509_set_pubkey(x, key) == 1 &&
            X509_sign(x, key, EVP_sha256()) > 0;
  if (ok) {
    BIO* b = BIO_new(BIO_s_mem());
    char* p = nullptr;
    ok = b && PEM_write_bio_X509(b, x) == 1;
    if (ok) out.cert_pem.assign(p, size_t(BIO_get_mem_data(b, &p)));
    BIO_free(b);
    b = BIO_new(BIO_s_mem());
    ok = ok && b && PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
    if (ok) out.key_pem.assign(p, size_t(BIO_get_mem_data(b, &p)));
    BIO_free(b);
  }
  X509_free(x);
  EVP_PKEY_free(key);
  if (!ok) return error(ossl_error("self-signed certificate"));
  return out;
}

Result<std::unique_ptr<OpensslLayer>> accept_openssl(std::shared_ptr<ServerContext> ctx, int fd) {
  std::unique_ptr<OpensslLayer> l(new OpensslLayer);
  l->ctx_ = std::move(ctx);
  l->fd_ = fd;
  l->tracker_ = std::make_unique<OpensslLayer::Tracker>();
  l->ssl_ = SSL_new(l->ctx_->get());
  if (!l->ssl_) return error(ossl_error("SSL_new"));
  l->rbio_ = BIO_new(BIO_s_mem());
  l->wbio_ = BIO_new(BIO_s_mem());
  if (!l->rbio_ || !l->wbio_) {
    BIO_free(l->rbio_);
    BIO_free(l->wbio_);
    return error(ossl_error("BIO_new(mem)"));
  }
  SSL_set_bio(l->ssl_, l->rbio_, l->wbio_);
  SSL_set_ex_data(l->ssl_, tracker_index(), l->tracker_.get());
  SSL_set_msg_callback(l->ssl_, msg_callback);
  SSL_set_accept_state(l->ssl_);
  XO_TRY(l->handshake());
  if (!l->tracker_->failure.empty()) return error("TLS state tracking: " + l->tracker_->failure);
  return l;
}

OpensslLayer::~OpensslLayer() { SSL_free(ssl_); }

uint64_t OpensslLayer::tx_records() const { return tracker_->tx.seq(); }
uint64_t OpensslLayer::rx_records() const { return tracker_->rx.seq(); }

Status OpensslLayer::handshake() {
  for (;;) {
    int r = SSL_do_handshake(ssl_);
    XO_TRY(flush());
    if (r == 1) return {};
    int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_WANT_READ) {
      XO_ASSIGN_OR_RETURN(bool more, read_more());
      if (!more) return error("peer closed the connection during the TLS handshake");
      continue;
    }
    return error(ossl_error("TLS handshake"));
  }
}

void OpensslLayer::feed_whole_records() {
  size_t off = 0;
  for (;;) {
    auto whole = whole_record_length(std::span(in_).subspan(off));
    if (!whole) {  // not TLS: let OpenSSL see it and raise the proper alert
      BIO_write(rbio_, in_.data() + off, int(in_.size() - off));
      off = in_.size();
      break;
    }
    if (*whole == 0) break;
    BIO_write(rbio_, in_.data() + off, int(*whole));
    off += *whole;
  }
  in_.erase(in_.begin(), in_.begin() + ptrdiff_t(off));
}

Result<bool> OpensslLayer::read_more() {
  if (eof_) return false;
  size_t before = size_t(BIO_ctrl_pending(rbio_));
  while (size_t(BIO_ctrl_pending(rbio_)) == before) {
    XO_ASSIGN_OR_RETURN(size_t n, recv_append(fd_, in_, kRecvChunk));
    if (n == 0) {
      eof_ = true;
      return false;
    }
    feed_whole_records();
  }
  return true;
}

Status OpensslLayer::flush() {
  Tracker& t = *tracker_;
  for (;;) {
    size_t pending = BIO_ctrl_pending(wbio_);
    if (pending == 0) return {};
    out_.resize(pending);
    int n = BIO_read(wbio_, out_.data(), int(pending));
    if (n <= 0) return error("BIO_read(write BIO) failed");
    out_.resize(size_t(n));
    if (t.version == Version::tls12 && t.cipher_known && t.cipher != Cipher::chacha20poly1305) {
      // Follow the TLS 1.2 GCM explicit nonce on the wire (bytes 5..12 of each protected record).
      t.tx_wire.insert(t.tx_wire.end(), out_.begin(), out_.end());
      size_t off = 0;
      for (;;) {
        auto whole = whole_record_length(std::span(t.tx_wire).subspan(off));
        if (!whole || *whole == 0) break;
        const uint8_t* r = &t.tx_wire[off];
        if (r[0] == SSL3_RT_CHANGE_CIPHER_SPEC) {
          t.tx_after_ccs = true;
        } else if (t.tx_after_ccs && *whole >= kRecordHeaderLen + 8) {
          uint64_t v = 0;
          for (int i = 0; i < 8; ++i) v = v << 8 | r[kRecordHeaderLen + i];
          t.last_tx_explicit = v;
          t.tx_explicit_seen = true;
        }
        off += *whole;
      }
      t.tx_wire.erase(t.tx_wire.begin(), t.tx_wire.begin() + ptrdiff_t(off));
    }
    XO_TRY(send_all(fd_, out_));
  }
}

Result<size_t> OpensslLayer::read_some(std::span<uint8_t> out) {
  if (frozen_) return error("record layer already frozen: the connection moved on");
  for (;;) {
    size_t n = 0;
    int r = SSL_read_ex(ssl_, out.data(), out.size(), &n);
    XO_TRY(flush());  // KeyUpdate answers, alerts
    if (r == 1) return n;
    int e = SSL_get_error(ssl_, r);
    if (e == SSL_ERROR_ZERO_RETURN) return size_t{0};
    if (e == SSL_ERROR_WANT_READ) {
      XO_ASSIGN_OR_RETURN(bool more, read_more());
      if (!more) return size_t{0};
      continue;
    }
    return error(ossl_error("SSL_read"));
  }
}

Status OpensslLayer::write_all(std::span<const uint8_t> data) {
  if (frozen_) return error("record layer already frozen: the connection moved on");
  while (!data.empty()) {
    size_t chunk = std::min<size_t>(data.size(), 64 * 1024), n = 0;
    if (SSL_write_ex(ssl_, data.data(), chunk, &n) != 1) return error(ossl_error("SSL_write"));
    data = data.subspan(n);
    XO_TRY(flush());
  }
  return {};
}

Status OpensslLayer::key_update(bool request_peer) {
  if (frozen_) return error("record layer already frozen: the connection moved on");
  if (SSL_key_update(ssl_, request_peer ? SSL_KEY_UPDATE_REQUESTED : SSL_KEY_UPDATE_NOT_REQUESTED) != 1)
    return error(ossl_error("SSL_key_update"));
  if (SSL_do_handshake(ssl_) != 1) return error(ossl_error("SSL_do_handshake (KeyUpdate)"));
  return flush();
}

Status OpensslLayer::close_notify() {
  if (frozen_) return error("record layer already frozen: the connection moved on");
  if (SSL_shutdown(ssl_) < 0) return error(ossl_error("SSL_shutdown"));
  return flush();
}

Status OpensslLayer::pull_available() {
  if (frozen_) return error("record layer already frozen: the connection moved on");
  for (;;) {
    bool would_block = false;
    XO_ASSIGN_OR_RETURN(size_t n, recv_append(fd_, in_, kRecvChunk, true, &would_block));
    if (would_block) break;
    if (n == 0) {
      eof_ = true;
      break;
    }
  }
  feed_whole_records();
  return {};
}

Result<State> OpensslLayer::freeze(std::span<const uint8_t> unconsumed) {
  if (frozen_) return error("record layer already frozen: the connection moved on");
  Tracker& t = *tracker_;
  auto refuse = [](const std::string& why) { return error("cannot freeze TLS now: " + why); };
  if (!t.failure.empty()) return refuse(t.failure);
  if (!SSL_is_init_finished(ssl_)) return refuse("handshake not finished");
  if (SSL_get_key_update_type(ssl_) != SSL_KEY_UPDATE_NONE) {
    // A KeyUpdate the peer requested is still owed: answer it under OpenSSL
    // first. OpenSSL 3.0 sends that answer lazily, from its next SSL_write
    // (only ssl3_write_bytes puts the state machine back in init), so
    // SSL_do_handshake alone would return 1 without sending it and the owed
    // KeyUpdate would be lost in the move (RFC 8446 4.6.3: it MUST precede
    // the next application data). Schedule it explicitly, then send it.
    if (SSL_key_update(ssl_, SSL_KEY_UPDATE_NOT_REQUESTED) != 1 || SSL_do_handshake(ssl_) != 1)
      return refuse(ossl_error("answering the peer's KeyUpdate"));
  }
  XO_TRY(flush());
  if (BIO_ctrl_pending(wbio_) != 0) return refuse("bytes still queued for writing");
  int want = SSL_want(ssl_);
  if (want != SSL_NOTHING && want != SSL_READING) return refuse("OpenSSL wants to " + std::to_string(want));
  if (!t.cipher_known || !t.tx_app || !t.rx_app) return refuse("application traffic keys not known");
  if (!t.failure.empty()) return refuse(t.failure);

  State s;
  s.version = t.version;
  s.cipher = t.cipher;
  s.tx = t.tx;
  s.rx = t.rx;
  if (t.version == Version::tls12 && t.cipher != Cipher::chacha20poly1305) {
    if (!t.tx_explicit_seen) return refuse("TLS 1.2 explicit nonce not seen on the wire");
    s.tx.set_explicit_nonce(t.last_tx_explicit + 1);
  }
  // Plaintext OpenSSL decrypted but nobody read yet (the rest of the current record).
  s.unread_plaintext.assign(unconsumed.begin(), unconsumed.end());
  while (SSL_pending(ssl_) > 0) {
    size_t at = s.unread_plaintext.size(), n = 0;
    s.unread_plaintext.resize(at + size_t(SSL_pending(ssl_)));
    if (SSL_read_ex(ssl_, s.unread_plaintext.data() + at, s.unread_plaintext.size() - at, &n) != 1)
      return refuse(ossl_error("draining SSL_pending"));
    s.unread_plaintext.resize(at + n);
  }
  // Whole records still in the read BIO, then the partial record we hold.
  char* p = nullptr;
  long rn = BIO_get_mem_data(rbio_, &p);
  if (rn > 0) s.pending_ciphertext.assign(p, p + rn);
  s.pending_ciphertext.insert(s.pending_ciphertext.end(), in_.begin(), in_.end());
  s.rx_closed = (SSL_get_shutdown(ssl_) & SSL_RECEIVED_SHUTDOWN) != 0 || eof_;
  frozen_ = true;
  return s;
}

}  // namespace xo::tls
