// Kernel kTLS record layer: the kernel seals and opens records; XO installs
// the keys (setsockopt SOL_TLS) and reads the sequence numbers back.
//
// Limits of a stock kernel that shape this file:
//  * No rekeying before Linux 6.13 (and none for TLS 1.2): a TLS 1.3 KeyUpdate
//    from the peer cannot be followed, so read_some() fails with a clear error.
//  * A partial received record inside the kernel cannot be exported (the
//    record framing is not readable back): freeze() refuses.
#include <linux/sockios.h>
#include <linux/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <string>

#include "common/base/fd.h"
#include "common/tls/record.h"
#include "common/tls/record_layer.h"
#include "common/tls/socket_io.h"

#ifndef SOL_TLS
#define SOL_TLS 282
#endif
#ifndef TCP_ULP
#define TCP_ULP 31
#endif

namespace xo::tls {
namespace {

class KernelLayer final : public RecordLayer {
 public:
  KernelLayer(int fd, State s) : fd_(fd), state_(std::move(s)) {}

  // Open the carried ciphertext in userspace (whole records; a partial record
  // is completed from the socket first), then hand the keys to the kernel.
  Status install() {
    XO_ASSIGN_OR_RETURN(auto rx, RecordProtection::create(state_.version, state_.rx, false));
    XO_ASSIGN_OR_RETURN(auto tx, RecordProtection::create(state_.version, state_.tx, true));
    std::vector<uint8_t>& in = state_.pending_ciphertext;
    std::vector<uint8_t> out;
    size_t off = 0;
    while (off < in.size()) {
      XO_ASSIGN_OR_RETURN(size_t whole, whole_record_length(std::span(in).subspan(off)));
      if (whole == 0) {  // finish the partial record from the socket (bytes are on their way)
        XO_ASSIGN_OR_RETURN(size_t n, recv_append(fd_, in, kMaxCiphertext + kRecordHeaderLen - (in.size() - off)));
        if (n == 0) return error("peer closed TCP inside a TLS record");
        continue;
      }
      XO_ASSIGN_OR_RETURN(uint8_t type, rx.open(std::span(in).subspan(off, whole), state_.unread_plaintext));
      off += whole;
      if (type == kApplicationData) continue;
      auto& p = state_.unread_plaintext;  // the non-data body was appended; take it back out
      if (type == kAlert && p.size() >= 2 && p[p.size() - 1] == kCloseNotify) {
        p.resize(p.size() - 2);
        state_.rx_closed = true;
        continue;
      }
      if (type == kHandshake && state_.version == Version::tls13 && p.size() >= 5 &&
          p[p.size() - 5] == kHandshakeKeyUpdate) {
        bool request = p[p.size() - 1] == 1;
        p.resize(p.size() - 5);
        XO_TRY(rx.update_key());
        if (request) {
          uint8_t msg[5] = {kHandshakeKeyUpdate, 0, 0, 1, 0};
          XO_TRY(tx.seal(kHandshake, msg, out));
          XO_TRY(send_all(fd_, out));
          XO_TRY(tx.update_key());
        }
        continue;
      }
      return error("unexpected TLS record type " + std::to_string(type) + " in carried ciphertext");
    }
    in.clear();
    state_.tx = tx.direction();
    state_.rx = rx.direction();

    if (::setsockopt(fd_, IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls")) != 0)
      return sys_error(errno == ENOENT ? "setsockopt(TCP_ULP, \"tls\"): this kernel has no kTLS (CONFIG_TLS)"
                                       : "setsockopt(TCP_ULP, \"tls\")");
    if (::setsockopt(fd_, SOL_TLS, TLS_TX, &state_.tx.crypto, socklen_t(state_.tx.crypto_len())) != 0)
      return sys_error("setsockopt(SOL_TLS, TLS_TX)");
    if (::setsockopt(fd_, SOL_TLS, TLS_RX, &state_.rx.crypto, socklen_t(state_.rx.crypto_len())) != 0)
      return sys_error("setsockopt(SOL_TLS, TLS_RX)");
    return {};
  }

  const char* backend() const override { return "kernel"; }
  int fd() const override { return fd_; }

  Result<size_t> read_some(std::span<uint8_t> out) override {
    XO_TRY(usable());
    auto& p = state_.unread_plaintext;
    if (plain_off_ < p.size()) {
      size_t n = std::min(out.size(), p.size() - plain_off_);
      std::copy_n(p.begin() + ptrdiff_t(plain_off_), n, out.begin());
      plain_off_ += n;
      if (plain_off_ == p.size()) p.clear(), plain_off_ = 0;
      return n;
    }
    if (state_.rx_closed) return size_t{0};
    for (;;) {
      XO_ASSIGN_OR_RETURN(auto r, recv_record(out, 0));
      if (r.type == kApplicationData) return r.len;
      XO_TRY(handle_control(r.type, out.first(r.len)));
      if (state_.rx_closed) return size_t{0};
    }
  }

  Status write_all(std::span<const uint8_t> data) override {
    XO_TRY(usable());
    return send_all(fd_, data);  // the kernel cuts records of at most 16 KiB
  }

  Status key_update(bool) override {
    return error("kernel kTLS: this kernel cannot rekey TX; continue on the userspace layer for KeyUpdate");
  }

  Status close_notify() override {
    XO_TRY(usable());
    uint8_t alert[2] = {1, kCloseNotify};
    return send_typed(kAlert, alert);
  }

  Status pull_available() override {
    XO_TRY(usable());
    return drain_whole_records();
  }

  Result<State> freeze(std::span<const uint8_t> unconsumed) override {
    XO_TRY(usable());
    XO_TRY(drain_whole_records());
    int inq = 0;
    if (::ioctl(fd_, SIOCINQ, &inq) != 0) return sys_error("ioctl(SIOCINQ)");
    if (inq > 0)
      return error("kTLS socket holds " + std::to_string(inq) +
                   " bytes of a partial received record; a stock kernel cannot export it (needs the "
                   "repair-mode queue read patch): serve locally");
    State s = state_;
    for (auto [opt, dir] : {std::pair{TLS_TX, &s.tx}, std::pair{TLS_RX, &s.rx}}) {
      Direction k;
      socklen_t len = socklen_t(dir->crypto_len());
      if (::getsockopt(fd_, SOL_TLS, opt, &k.crypto, &len) != 0)
        return sys_error(opt == TLS_TX ? "getsockopt(TLS_TX)" : "getsockopt(TLS_RX)");
      // Keep our own key copy; take what the kernel advanced: rec_seq and the
      // TLS 1.2 explicit nonce.
      std::memcpy(dir->rec_seq().data(), k.rec_seq().data(), 8);
      if (s.version == Version::tls12 && s.cipher != Cipher::chacha20poly1305)
        std::memcpy(dir->iv().data(), k.iv().data(), dir->iv().size());
    }
    s.unread_plaintext.assign(unconsumed.begin(), unconsumed.end());
    s.unread_plaintext.insert(s.unread_plaintext.end(), state_.unread_plaintext.begin() + ptrdiff_t(plain_off_),
                              state_.unread_plaintext.end());
    s.pending_ciphertext.clear();
    frozen_ = true;
    return s;
  }

 private:
  struct Received {
    uint8_t type;
    size_t len;
  };

  Status usable() const {
    if (frozen_) return error("record layer already frozen: the connection moved on");
    return {};
  }

  // One recvmsg(): the kernel returns data of one record type and says which in a cmsg.
  Result<Received> recv_record(std::span<uint8_t> out, int flags) {
    char cbuf[CMSG_SPACE(sizeof(uint8_t))];
    iovec iov{out.data(), out.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf;
    msg.msg_controllen = sizeof cbuf;
    ssize_t n;
    do n = ::recvmsg(fd_, &msg, flags);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (errno == EIO || errno == EBADMSG) return sys_error("kTLS receive (bad record MAC or protocol error)");
      return sys_error("recvmsg on kTLS socket");
    }
    uint8_t type = kApplicationData;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
      if (c->cmsg_level == SOL_TLS && c->cmsg_type == TLS_GET_RECORD_TYPE) type = *CMSG_DATA(c);
    if (n == 0 && type == kApplicationData) state_.rx_closed = true;  // TCP EOF
    return Received{type, size_t(n)};
  }

  Status handle_control(uint8_t type, std::span<const uint8_t> body) {
    if (type == kAlert && body.size() == 2 && body[1] == kCloseNotify) {
      state_.rx_closed = true;
      return {};
    }
    if (type == kAlert) return error("peer sent TLS alert " + std::to_string(body.size() == 2 ? body[1] : 0));
    if (type == kHandshake && !body.empty() && body[0] == kHandshakeKeyUpdate)
      return error("peer sent a TLS 1.3 KeyUpdate; kernel kTLS on this kernel cannot rekey");
    return error("unexpected TLS record type " + std::to_string(type) + " on kTLS socket");
  }

  Status drain_whole_records() {
    uint8_t buf[kMaxPlaintext];
    for (;;) {
      char cbuf[CMSG_SPACE(sizeof(uint8_t))];
      iovec iov{buf, sizeof buf};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = cbuf;
      msg.msg_controllen = sizeof cbuf;
      ssize_t n = ::recvmsg(fd_, &msg, MSG_DONTWAIT);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return {};
      if (n < 0) return sys_error("recvmsg on kTLS socket");
      uint8_t type = kApplicationData;
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
        if (c->cmsg_level == SOL_TLS && c->cmsg_type == TLS_GET_RECORD_TYPE) type = *CMSG_DATA(c);
      if (n == 0 && type == kApplicationData) return {};
      if (type == kApplicationData) {
        state_.unread_plaintext.insert(state_.unread_plaintext.end(), buf, buf + n);
      } else {
        XO_TRY(handle_control(type, std::span(buf, size_t(n))));
        if (state_.rx_closed) return {};
      }
    }
  }

  Status send_typed(uint8_t type, std::span<const uint8_t> data) {
    char cbuf[CMSG_SPACE(sizeof(uint8_t))] = {};
    iovec iov{const_cast<uint8_t*>(data.data()), data.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf;
    msg.msg_controllen = sizeof cbuf;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_TLS;
    c->cmsg_type = TLS_SET_RECORD_TYPE;
    c->cmsg_len = CMSG_LEN(sizeof(uint8_t));
    *CMSG_DATA(c) = type;
    if (::sendmsg(fd_, &msg, MSG_NOSIGNAL) < 0) return sys_error("sendmsg(TLS_SET_RECORD_TYPE)");
    return {};
  }

  int fd_;
  State state_;
  size_t plain_off_ = 0;
  bool frozen_ = false;
};

}  // namespace

bool kernel_tls_available() {
  static bool available = [] {
    UniqueFd s(::socket(AF_INET, SOCK_STREAM, 0));
    if (!s) return false;
    // The ULP can only be attached to a connected socket; an unconnected one
    // answers ENOTCONN when the "tls" module exists and ENOENT when it does not.
    int rc = ::setsockopt(s.get(), IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls"));
    return rc == 0 || errno != ENOENT;
  }();
  return available;
}

Result<std::unique_ptr<RecordLayer>> make_kernel_layer(int fd, State state) {
  XO_TRY(validate(state));
  auto layer = std::make_unique<KernelLayer>(fd, std::move(state));
  XO_TRY(layer->install());
  return std::unique_ptr<RecordLayer>(std::move(layer));
}

}  // namespace xo::tls
