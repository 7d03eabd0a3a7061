// xo::tls::RecordLayer — application data over an established TLS connection,
// whoever does the record protection: OpenSSL (before the first move), XO's
// userspace record layer, or the kernel (kTLS). All three freeze into the same
// State, so a connection can move between processes, hosts and backends.
//
// Contract:
//  * The layer does not own the fd; the caller keeps it (UniqueFd) and passes
//    it on together with the frozen State.
//  * The fd is a connected, blocking TCP socket.
//  * After freeze() succeeds the layer must not be used again. If freeze()
//    fails (e.g. a kTLS socket holding a partial record) the layer is still
//    usable and the error says why the connection cannot move now.
#pragma once

#include <memory>
#include <span>

#include "common/base/result.h"
#include "common/tls/state.h"

namespace xo::tls {

class RecordLayer {
 public:
  virtual ~RecordLayer() = default;
  virtual const char* backend() const = 0;  // "openssl", "userspace", "kernel"
  virtual int fd() const = 0;

  // Up to out.size() bytes of application data; 0 once the peer sent
  // close_notify. Handles KeyUpdate (answering update_requested) on the way.
  virtual Result<size_t> read_some(std::span<uint8_t> out) = 0;
  // Seal and send all of `data` (records of at most 16 KiB).
  virtual Status write_all(std::span<const uint8_t> data) = 0;
  // TLS 1.3: send a KeyUpdate and switch the TX key (request_peer asks the
  // peer to update its key too).
  virtual Status key_update(bool request_peer) = 0;
  // Send close_notify. The fd stays open.
  virtual Status close_notify() = 0;
  // Read what the kernel already holds for this socket without blocking, so it
  // is carried in the State (bytes stay ciphertext until whole records arrive).
  virtual Status pull_available() = 0;
  // Stop at a record boundary and describe the connection. `unconsumed` is
  // plaintext the application read but did not consume (it goes first).
  virtual Result<State> freeze(std::span<const uint8_t> unconsumed = {}) = 0;
};

// XO's own record layer over `fd`, continuing `state`.
Result<std::unique_ptr<RecordLayer>> make_userspace_layer(int fd, State state);

// Kernel kTLS over `fd` (TCP_ULP "tls" + SOL_TLS TLS_TX/TLS_RX), continuing
// `state`. Fails with ENOENT (and a message saying so) where the kernel has no
// kTLS; callers fall back to make_userspace_layer().
Result<std::unique_ptr<RecordLayer>> make_kernel_layer(int fd, State state);

// True when this kernel offers the "tls" ULP (probed once on a loopback socket pair).
bool kernel_tls_available();

// Continue `state` on kTLS where possible, else userspace.
Result<std::unique_ptr<RecordLayer>> make_best_layer(int fd, State state);

}  // namespace xo::tls
