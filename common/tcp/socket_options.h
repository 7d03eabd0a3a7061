// The ordinary socket options that travel with a connection (SocketOptions).
#pragma once

#include "common/base/result.h"
#include "common/tcp/snapshot.h"

namespace xo::tcp {

// Read before TCP_REPAIR=1: repair mode forces sk_reuse, so SO_REUSEADDR read
// in repair mode would always say "on".
Result<bool> read_reuseaddr(int fd);

// Everything but reuseaddr (see read_reuseaddr). Keepalive timings are read
// only when keepalive is on; buffer sizes only when locked (SO_BUF_LOCK).
Status read_socket_options(int fd, SocketOptions& out);

// Applies nodelay, keepalive (+timings), congestion, notsent_lowat. Buffer
// sizes and SO_REUSEADDR are applied by restore() at their own steps.
Status apply_socket_options(int fd, const SocketOptions& opts);

}  // namespace xo::tcp
