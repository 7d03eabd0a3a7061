// List a lab host's TCP sockets (`ss -tanH` in its namespace) for leak checks.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "common/base/result.h"

namespace xo::lab {

struct SocketRow {
  std::string state;  // ss spelling: ESTAB, LISTEN, TIME-WAIT, CLOSE-WAIT, ...
  std::string local, peer;
};

Result<std::vector<SocketRow>> tcp_sockets(const std::string& ns);

// Sockets that hold a connection: everything but LISTEN and TIME-WAIT.
Result<std::vector<SocketRow>> connection_sockets(const std::string& ns);

// Polls until the host holds no connection socket or `timeout` passes; returns
// what is left (empty = no leak). A closing peer needs a moment for FIN/ACK.
Result<std::vector<SocketRow>> wait_no_connections(const std::string& ns,
                                                   std::chrono::milliseconds timeout = std::chrono::seconds(3));

std::string to_string(const std::vector<SocketRow>& rows);

}  // namespace xo::lab
