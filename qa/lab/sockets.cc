#include "qa/lab/sockets.h"

#include <unistd.h>

#include <sstream>
#include <thread>

#include "qa/lab/run.h"

namespace xo::lab {

Result<std::vector<SocketRow>> tcp_sockets(const std::string& ns) {
  XO_ASSIGN_OR_RETURN(std::string out, run_ok(ns, {"ss", "-tanH"}));
  std::vector<SocketRow> rows;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    SocketRow r;
    std::string recvq, sendq;
    if (f >> r.state >> recvq >> sendq >> r.local >> r.peer) rows.push_back(r);
  }
  return rows;
}

Result<std::vector<SocketRow>> connection_sockets(const std::string& ns) {
  XO_ASSIGN_OR_RETURN(auto rows, tcp_sockets(ns));
  std::vector<SocketRow> conns;
  for (auto& r : rows)
    if (r.state != "LISTEN" && r.state != "TIME-WAIT") conns.push_back(r);
  return conns;
}

Result<std::vector<SocketRow>> wait_no_connections(const std::string& ns, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    XO_ASSIGN_OR_RETURN(auto conns, connection_sockets(ns));
    if (conns.empty() || std::chrono::steady_clock::now() >= deadline) return conns;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

std::string to_string(const std::vector<SocketRow>& rows) {
  std::string s;
  for (const auto& r : rows) s += r.state + " " + r.local + " -> " + r.peer + "\n";
  return s;
}

}  // namespace xo::lab
