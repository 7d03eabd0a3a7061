// Stream: the byte pipe a test-server connection is served over.
//
// Connections are served by a blocking thread each, over this small interface,
// so a TLS implementation can slide in under the same HTTP code. FdStream is
// the plain TCP one. BeastStream adapts any Stream to Beast's
// SyncReadStream/SyncWriteStream.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "common/base/result.h"

namespace xo::testserver {

class Stream {
 public:
  virtual ~Stream() = default;
  // 0 bytes: the peer closed its write side.
  virtual Result<size_t> read_some(std::span<uint8_t> out) = 0;
  virtual Result<size_t> write_some(std::span<const uint8_t> in) = 0;
  // The socket underneath (for handover).
  virtual int fd() const = 0;
  // Handover: stop at a boundary and describe what the new owner needs to
  // continue this stream (StreamFactory::resume takes it). Empty for plain
  // TCP. On error the connection cannot move now (the stream stays usable).
  virtual Result<std::vector<uint8_t>> freeze_for_handover() { return std::vector<uint8_t>{}; }
  // Closing: tell the peer this side is done (TLS: close_notify). The fd
  // stays open; plain TCP has nothing to send here.
  virtual Status close_notify() { return {}; }
};

// How a server carries its connections' bytes (ServerOptions::streams);
// without one a server speaks plain TCP (FdStream). Called on the
// connection's thread, so accept() may run a handshake.
class StreamFactory {
 public:
  virtual ~StreamFactory() = default;
  // A freshly accepted connection on `fd` (the caller keeps the fd).
  virtual Result<std::unique_ptr<Stream>> accept(int fd) = 0;
  // A handed-over connection: `carried` is what freeze_for_handover() returned.
  virtual Result<std::unique_ptr<Stream>> resume(int fd, std::span<const uint8_t> carried) = 0;
};

// Plain TCP on a connected socket the caller owns.
class FdStream final : public Stream {
 public:
  explicit FdStream(int fd) : fd_(fd) {}
  Result<size_t> read_some(std::span<uint8_t> out) override {
    for (;;) {
      ssize_t n = ::recv(fd_, out.data(), out.size(), 0);
      if (n >= 0) return static_cast<size_t>(n);
      if (errno != EINTR) return sys_error("recv");
    }
  }
  Result<size_t> write_some(std::span<const uint8_t> in) override {
    for (;;) {
      // MSG_NOSIGNAL: a vanished client is an error, not a SIGPIPE.
      ssize_t n = ::send(fd_, in.data(), in.size(), MSG_NOSIGNAL);
      if (n >= 0) return static_cast<size_t>(n);
      if (errno != EINTR) return sys_error("send");
    }
  }
  int fd() const override { return fd_; }

 private:
  int fd_;
};

}  // namespace xo::testserver
