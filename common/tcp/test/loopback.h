// Test and benchmark helpers: a private network namespace with lo up, TCP
// loopback pairs, nft rules that hold packets back, and an RST counter.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/base/fd.h"
#include "common/base/result.h"

namespace xo::tcp::testing {

// unshare(CLONE_NEWNET) for the calling process (call while single-threaded)
// and bring lo up. Everything the tests do stays inside.
Status enter_private_netns();

struct Pair {
  UniqueFd client, server;
  uint16_t client_port = 0, server_port = 0;
};
// A connected pair over 127.0.0.1 (AF_INET) or ::1 (AF_INET6). A non-zero
// client_rcvbuf is set (locked) on the client before connect().
Result<Pair> loopback_pair(int family, int client_rcvbuf = 0);

// Runs `nft -f -` with `script`; fails with nft's exit status.
Status nft(const std::string& script);
// Drops every TCP segment from src_port to dst_port (on input) in table
// `table` (inet family), except those restore() injects (SO_MARK
// kInjectMark), as a real flow block must. delete_table() lifts it.
Status drop_flow(const std::string& table, uint16_t src_port, uint16_t dst_port);
Status delete_table(const std::string& table);
// Counts RST segments leaving any socket of the namespace (output hook).
Status install_rst_counter();
Result<long> rst_count();

// Reads exactly n bytes (blocking, with a timeout in ms); error on EOF/timeout.
Result<std::vector<uint8_t>> read_exactly(int fd, size_t n, int timeout_ms = 5000);
Status write_all(int fd, const std::vector<uint8_t>& bytes);
std::vector<uint8_t> pattern(size_t n, uint32_t seed);
int tcp_state(int fd);

// Close a socket without FIN or RST (repair mode), as after a handoff.
void close_silently(UniqueFd& fd);

}  // namespace xo::tcp::testing
