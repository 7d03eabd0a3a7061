// XO's userspace record layer: OpenSSL EVP AEAD, TLS 1.3 and 1.2 framing.
#include <algorithm>
#include <string>

#include "common/tls/record.h"
#include "common/tls/record_layer.h"
#include "common/tls/socket_io.h"

namespace xo::tls {
namespace {

constexpr size_t kRecvChunk = 64 * 1024;
constexpr size_t kSendBatch = 64 * 1024;

class UserspaceLayer final : public RecordLayer {
 public:
  UserspaceLayer(int fd, State s, RecordProtection tx, RecordProtection rx)
      : fd_(fd), version_(s.version), cipher_(s.cipher), tx_(std::move(tx)), rx_(std::move(rx)),
        plain_(std::move(s.unread_plaintext)), plain_end_(plain_.size()), in_(std::move(s.pending_ciphertext)),
        rx_closed_(s.rx_closed) {}

  const char* backend() const override { return "userspace"; }
  int fd() const override { return fd_; }

  Result<size_t> read_some(std::span<uint8_t> out) override {
    XO_TRY(usable());
    while (plain_off_ == plain_end_) {
      if (rx_closed_) return size_t{0};
      XO_ASSIGN_OR_RETURN(bool progressed, open_one());
      if (progressed) continue;
      XO_ASSIGN_OR_RETURN(size_t n, recv_append(fd_, in_, kRecvChunk));
      if (n == 0) {
        if (in_.size() > in_off_) return fail(error("peer closed TCP inside a TLS record"));
        rx_closed_ = true;  // EOF without close_notify: treat as end of stream
        return size_t{0};
      }
    }
    size_t n = std::min(out.size(), plain_end_ - plain_off_);
    std::copy_n(plain_.begin() + ptrdiff_t(plain_off_), n, out.begin());
    plain_off_ += n;
    return n;
  }

  Status write_all(std::span<const uint8_t> data) override {
    XO_TRY(usable());
    // Records are sealed straight into one reused batch buffer (no zero-fill,
    // no allocation) and sent about 64 KiB at a time.
    if (batch_.size() < kSendBatch + kMaxCiphertext + kRecordHeaderLen) batch_.resize(kSendBatch + kMaxCiphertext + kRecordHeaderLen);
    size_t used = 0;
    while (!data.empty()) {
      size_t n = std::min(data.size(), kMaxPlaintext);
      auto sealed = tx_.seal_into(kApplicationData, data.first(n), std::span(batch_).subspan(used));
      if (!sealed) return fail(sealed.take_error());
      used += *sealed;
      data = data.subspan(n);
      if (used >= kSendBatch || data.empty()) {
        if (auto st = send_all(fd_, std::span(batch_).first(used)); !st) return fail(st.take_error());
        used = 0;
      }
    }
    return {};
  }

  Status key_update(bool request_peer) override {
    XO_TRY(usable());
    if (version_ != Version::tls13) return error("KeyUpdate needs TLS 1.3");
    return send_key_update(request_peer);
  }

  Status close_notify() override {
    XO_TRY(usable());
    return send_alert(kCloseNotify);
  }

  Status pull_available() override {
    XO_TRY(usable());
    for (;;) {
      bool would_block = false;
      XO_ASSIGN_OR_RETURN(size_t n, recv_append(fd_, in_, kRecvChunk, true, &would_block));
      if (would_block || n == 0) return {};
    }
  }

  Result<State> freeze(std::span<const uint8_t> unconsumed) override {
    XO_TRY(usable());
    State s;
    s.version = version_;
    s.cipher = cipher_;
    s.tx = tx_.direction();
    s.rx = rx_.direction();
    s.unread_plaintext.assign(unconsumed.begin(), unconsumed.end());
    s.unread_plaintext.insert(s.unread_plaintext.end(), plain_.begin() + ptrdiff_t(plain_off_),
                              plain_.begin() + ptrdiff_t(plain_end_));
    s.pending_ciphertext.assign(in_.begin() + ptrdiff_t(in_off_), in_.end());
    s.rx_closed = rx_closed_;
    frozen_ = true;
    return s;
  }

 private:
  Status usable() const {
    if (frozen_) return error("record layer already frozen: the connection moved on");
    if (!failure_.message.empty()) return failure_;
    return {};
  }
  Error fail(Error e) {
    failure_ = e;
    return e;
  }

  Status send_alert(uint8_t description) {
    uint8_t alert[2] = {uint8_t(description == kCloseNotify ? 1 : 2), description};
    out_.clear();
    XO_TRY(tx_.seal(kAlert, alert, out_));
    return send_all(fd_, out_);
  }

  Status send_key_update(bool request_peer) {
    uint8_t msg[5] = {kHandshakeKeyUpdate, 0, 0, 1, uint8_t(request_peer ? 1 : 0)};
    out_.clear();
    XO_TRY(tx_.seal(kHandshake, msg, out_));
    XO_TRY(send_all(fd_, out_));
    return tx_.update_key();  // records after the KeyUpdate use the next key
  }

  // Open the next whole record in in_, if any. Returns whether one was opened.
  Result<bool> open_one() {
    auto whole = whole_record_length(std::span(in_).subspan(in_off_));
    if (!whole) return fail(whole.take_error());
    if (*whole == 0) {
      if (in_off_ > 0) {  // compact: keep only the partial record
        in_.erase(in_.begin(), in_.begin() + ptrdiff_t(in_off_));
        in_off_ = 0;
      }
      return false;
    }
    auto record = std::span(in_).subspan(in_off_, *whole);
    // Only called once all plaintext was consumed: decrypt into the reused
    // record buffer (its size is kept, so no zero-fill per record).
    plain_off_ = 0;
    if (plain_.size() < kMaxCiphertext + kRecordHeaderLen) plain_.resize(kMaxCiphertext + kRecordHeaderLen);
    auto opened = rx_.open_into(record, plain_);
    if (!opened) {
      plain_end_ = 0;
      (void)send_alert(opened.error().code == EBADMSG ? kBadRecordMac : kDecodeError);
      return fail(annotate(opened.take_error(), "TLS receive"));
    }
    in_off_ += *whole;
    auto type = &opened->type;
    if (*type == kApplicationData) {
      plain_end_ = opened->len;
      return true;
    }
    plain_end_ = 0;
    std::vector<uint8_t> body(plain_.begin(), plain_.begin() + ptrdiff_t(opened->len));
    if (*type == kAlert) {
      if (body.size() != 2) return fail(error("malformed alert"));
      if (body[1] == kCloseNotify) {
        rx_closed_ = true;
        return true;
      }
      return fail(error("peer sent TLS alert " + std::to_string(body[1])));
    }
    if (*type == kHandshake && version_ == Version::tls13) {
      // Post-handshake messages; a KeyUpdate never shares a record with data
      // of the next epoch (RFC 8446 5.1), so whole messages per record.
      size_t off = 0;
      while (off + 4 <= body.size()) {
        uint8_t msg_type = body[off];
        size_t len = size_t(body[off + 1]) << 16 | size_t(body[off + 2]) << 8 | body[off + 3];
        if (off + 4 + len > body.size()) return fail(error("handshake message split across records"));
        if (msg_type != kHandshakeKeyUpdate || len != 1)
          return fail(error("unexpected post-handshake message type " + std::to_string(msg_type)));
        uint8_t request = body[off + 4];
        if (request > 1) return fail(error("KeyUpdate with invalid request_update"));
        if (auto st = rx_.update_key(); !st) return fail(st.take_error());
        if (request == 1)
          if (auto st = send_key_update(false); !st) return fail(st.take_error());
        off += 4 + len;
      }
      if (off != body.size()) return fail(error("truncated handshake message"));
      return true;
    }
    (void)send_alert(kUnexpectedMessage);
    return fail(error("unexpected TLS record type " + std::to_string(*type) + " after the handshake"));
  }

  int fd_;
  Version version_;
  Cipher cipher_;
  RecordProtection tx_, rx_;
  // Plaintext not yet read: [plain_off_, plain_end_) of plain_ (first the
  // carried bytes, then one record at a time).
  std::vector<uint8_t> plain_;
  size_t plain_end_ = 0;
  size_t plain_off_ = 0;
  std::vector<uint8_t> in_;
  size_t in_off_ = 0;
  std::vector<uint8_t> out_;    // control records (alerts, KeyUpdate)
  std::vector<uint8_t> batch_;  // application records being sent
  bool rx_closed_ = false;
  bool frozen_ = false;
  Error failure_;
};

}  // namespace

Result<std::unique_ptr<RecordLayer>> make_userspace_layer(int fd, State state) {
  XO_TRY(validate(state));
  XO_ASSIGN_OR_RETURN(auto tx, RecordProtection::create(state.version, state.tx, true));
  XO_ASSIGN_OR_RETURN(auto rx, RecordProtection::create(state.version, state.rx, false));
  return std::unique_ptr<RecordLayer>(new UserspaceLayer(fd, std::move(state), std::move(tx), std::move(rx)));
}

Result<std::unique_ptr<RecordLayer>> make_best_layer(int fd, State state) {
  if (kernel_tls_available()) return make_kernel_layer(fd, std::move(state));
  return make_userspace_layer(fd, std::move(state));
}

}  // namespace xo::tls
