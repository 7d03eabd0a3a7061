// Test harness for TLS handoff between processes: a private network namespace,
// an HTTPS server process "A" (OpenSSL, then XO's record layer) and a peer
// process "B", which pass the live connection back and forth (fd over a unix
// socket + the encoded xo::tls::State), and unmodified clients run as commands.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "common/tls/openssl_layer.h"

namespace xo::tls::testing {

// Move this test process into a fresh network namespace with loopback up, so
// clients and servers talk over 127.0.0.1 that no other test sees.
void enter_private_netns();

struct ServerPlan {
  ServerConfig tls;
  int connections = 1;           // accepted one after another
  std::set<int> move_at;         // request indices (per connection) at which the holder moves it, before answering
  bool move_after_handshake = false;  // freeze right after SSL_accept (before any request)
  bool pull_before_freeze = false;    // wait ≤300 ms for bytes and pull them into the state first
  bool corrupt_tx_seq = false;        // negative control: the receiver adds 1 to tx rec_seq
  bool tcp_repair = false;            // move the TCP socket by TCP_REPAIR snapshot (common/tcp), not fd passing
  std::string log_path;          // one line per freeze / connection
};

// Fork the server processes; returns A's pid. A exits when all connections are done.
int start_servers(const ServerPlan& plan, int listen_fd);
// Wait for A (and through it B); true when it exited 0 within the timeout.
bool wait_servers(int pid, int timeout_s, std::string* why);

struct Command {
  int status = -1;   // exit status (shell convention), -1 on timeout
  std::string out;   // stdout + stderr
};
Command run(const std::string& shell_command, int timeout_s = 60);

// A listening TCP socket on 127.0.0.1, ephemeral port.
int listen_loopback(int* port);

std::string read_file(const std::string& path);

}  // namespace xo::tls::testing
