#include "qa/server/tls_stream.h"

namespace xo::testserver {

Result<std::unique_ptr<TlsStream>> TlsStream::accept(const std::shared_ptr<tls::ServerContext>& ctx, int fd) {
  XO_ASSIGN_OR_RETURN(auto layer, tls::accept_openssl(ctx, fd));
  return std::unique_ptr<TlsStream>(new TlsStream(std::move(layer)));
}

Result<std::unique_ptr<TlsStream>> TlsStream::resume(int fd, tls::State state) {
  XO_ASSIGN_OR_RETURN(auto layer, tls::make_best_layer(fd, std::move(state)));
  return std::unique_ptr<TlsStream>(new TlsStream(std::move(layer)));
}

Result<size_t> TlsStream::write_some(std::span<const uint8_t> in) {
  // Records are sealed and sent whole: a short write would leave a partial
  // record in our hands, which no handover could carry.
  XO_TRY(layer_->write_all(in));
  return in.size();
}

Result<std::vector<uint8_t>> TlsStream::freeze_for_handover() {
  // The HTTP layer keeps its own unconsumed bytes (ResumeState::unread);
  // plaintext the record layer decrypted but did not hand out is in the State.
  XO_ASSIGN_OR_RETURN(tls::State state, layer_->freeze());
  return tls::encode(state);
}

Result<std::unique_ptr<Stream>> TlsStreamFactory::accept(int fd) {
  XO_ASSIGN_OR_RETURN(auto s, TlsStream::accept(ctx_, fd));
  return std::unique_ptr<Stream>(std::move(s));
}

Result<std::unique_ptr<Stream>> TlsStreamFactory::resume(int fd, std::span<const uint8_t> carried) {
  XO_ASSIGN_OR_RETURN(tls::State state, tls::decode(carried));
  if (on_resume) on_resume(state);
  XO_ASSIGN_OR_RETURN(auto s, TlsStream::resume(fd, std::move(state)));
  return std::unique_ptr<Stream>(std::move(s));
}

}  // namespace xo::testserver
