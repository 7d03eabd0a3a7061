// TlsStream: HTTPS for the test server — a Stream over a TLS record layer.
//
// A connection starts on OpenSSL (accept(): the server handshake), and after a
// handover continues on XO's own record layer (resume(): kTLS where the kernel
// has it, userspace otherwise) from the xo::tls::State that freeze() produced.
// The HTTP code above sees the same read_some/write_some either way.
//
// Handover with TLS: after the HTTP layer decided to hand over, call
// freeze(unconsumed) with the plaintext it read but did not consume (pipelined
// requests); send encode(state) with the ResumeState and the fd; the new owner
// calls TlsStream::resume(fd, decode(...)). freeze() refuses (and the stream
// stays usable) when TLS is not at a record boundary. testserver::Server does
// all of this itself with a TlsStreamFactory (ServerOptions::streams).
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "common/tls/openssl_layer.h"
#include "common/tls/record_layer.h"
#include "qa/server/stream.h"

namespace xo::testserver {

class TlsStream final : public Stream {
 public:
  // Run the TLS server handshake (OpenSSL) on the connected socket `fd`,
  // which the caller keeps owning.
  static Result<std::unique_ptr<TlsStream>> accept(const std::shared_ptr<tls::ServerContext>& ctx, int fd);
  // Continue a frozen TLS connection on XO's record layer.
  static Result<std::unique_ptr<TlsStream>> resume(int fd, tls::State state);

  Result<size_t> read_some(std::span<uint8_t> out) override { return layer_->read_some(out); }
  Result<size_t> write_some(std::span<const uint8_t> in) override;
  int fd() const override { return layer_->fd(); }

  // Stop at a record boundary and describe the TLS connection.
  Result<tls::State> freeze(std::span<const uint8_t> unconsumed = {}) { return layer_->freeze(unconsumed); }
  // The server's handover: freeze() as tls::encode() bytes.
  Result<std::vector<uint8_t>> freeze_for_handover() override;
  // Send close_notify (the fd stays open).
  Status close_notify() override { return layer_->close_notify(); }
  const char* backend() const { return layer_->backend(); }

 private:
  explicit TlsStream(std::unique_ptr<tls::RecordLayer> l) : layer_(std::move(l)) {}
  std::unique_ptr<tls::RecordLayer> layer_;
};

// HTTPS for testserver::Server (ServerOptions::streams): accepted connections
// run the OpenSSL handshake; handed-over ones continue from the carried
// tls::encode() bytes on XO's record layer.
class TlsStreamFactory final : public StreamFactory {
 public:
  explicit TlsStreamFactory(std::shared_ptr<tls::ServerContext> ctx) : ctx_(std::move(ctx)) {}
  Result<std::unique_ptr<Stream>> accept(int fd) override;
  Result<std::unique_ptr<Stream>> resume(int fd, std::span<const uint8_t> carried) override;

  // Tests: look at (or spoil, for a negative control) each decoded state
  // before it is resumed. Runs on the connection's thread.
  std::function<void(tls::State&)> on_resume;

 private:
  std::shared_ptr<tls::ServerContext> ctx_;
};

}  // namespace xo::testserver
