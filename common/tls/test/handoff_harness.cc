#include "common/tls/test/handoff_harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <openssl/sha.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/base/fd.h"
#include "common/base/bytes.h"
#if XO_TLS_HAVE_TCP
#include "common/tcp/snapshot.h"
#endif
#include "common/tls/socket_io.h"

namespace xo::tls::testing {
namespace {

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "server %d: %s\n", getpid(), why.c_str());
  _exit(1);
}

// ---- the flow block around a TCP repair move (nftables, inside the private netns) ----
uint16_t local_port(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

void nft(const std::string& script) {
  FILE* p = ::popen("nft -f -", "w");
  if (!p) die("popen nft");
  std::fputs(script.c_str(), p);
  if (::pclose(p) != 0) die("nft failed: " + script);
}

// Both directions: a socket in repair mode still transmits from its send
// queue (pacing/TSQ timers), so bytes the snapshot counts as unsent could
// reach the client anyway and the restored socket would stall on them.
void block_port(uint16_t port) {
  std::string p = std::to_string(port);
  nft("table inet xo_tls_move {\n chain in {\n  type filter hook input priority 0;\n  tcp dport " + p +
      " drop\n }\n chain out {\n  type filter hook output priority 0;\n  tcp sport " + p + " drop\n }\n}\n");
}

void unblock() { nft("delete table inet xo_tls_move\n"); }

// ---- the channel between A and B: [type u8][index u32][conn u32][len u32][state] (+ fd) ----
enum Msg : uint8_t { kMove = 1, kDone = 2, kExit = 3 };

struct Message {
  Msg type = kExit;
  uint32_t index = 0, conn = 0;
  std::vector<uint8_t> state;
  std::vector<uint8_t> tcp;  // a TCP snapshot instead of an fd (tcp_repair plans)
  UniqueFd fd;
};

void send_msg(int chan, Msg type, uint32_t index, uint32_t conn, std::span<const uint8_t> state, int fd,
              std::span<const uint8_t> tcp = {}) {
  ByteWriter w;
  w.u8(type);
  w.u32(index);
  w.u32(conn);
  w.u32(uint32_t(tcp.size()));
  w.blob(state);
  w.raw(tcp);
  auto b = w.take();
  iovec iov{b.data(), b.size()};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  char cbuf[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    m.msg_control = cbuf;
    m.msg_controllen = sizeof cbuf;
    cmsghdr* c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  // One sendmsg carries the fd with the first byte; the rest follows.
  ssize_t n = ::sendmsg(chan, &m, MSG_NOSIGNAL);
  if (n < 0) die("sendmsg on channel: " + std::string(strerror(errno)));
  if (size_t(n) < b.size() && !send_all(chan, std::span(b).subspan(size_t(n))).ok()) die("channel send");
}

bool read_full(int fd, uint8_t* p, size_t n) {
  while (n > 0) {
    ssize_t r = ::read(fd, p, n);
    if (r <= 0) return false;
    p += r;
    n -= size_t(r);
  }
  return true;
}

Message recv_msg(int chan) {
  uint8_t head[17];
  iovec iov{head, sizeof head};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  char cbuf[CMSG_SPACE(sizeof(int))] = {};
  m.msg_control = cbuf;
  m.msg_controllen = sizeof cbuf;
  ssize_t n = ::recvmsg(chan, &m, MSG_WAITALL);
  Message msg;
  if (n == 0) return msg;  // peer gone: exit
  if (n != sizeof head) die("channel recvmsg");
  for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
      msg.fd.reset(fd);
    }
  ByteReader r(head);
  msg.type = Msg(*r.u8("type"));
  msg.index = *r.u32("index");
  msg.conn = *r.u32("conn");
  uint32_t tcp_len = *r.u32("tcp len");
  uint32_t len = *r.u32("len");
  msg.state.resize(len);
  if (len && !read_full(chan, msg.state.data(), len)) die("channel read");
  msg.tcp.resize(tcp_len);
  if (tcp_len && !read_full(chan, msg.tcp.data(), tcp_len)) die("channel read");
  return msg;
}

// ---- a minimal HTTP/1.1 request loop ----
struct Request {
  std::string method, path;
  size_t total = 0;  // head + body bytes in the buffer
  std::vector<uint8_t> body;
};

std::string hex_sha256(std::span<const uint8_t> b) {
  uint8_t d[32];
  SHA256(b.data(), b.size(), d);
  char out[65];
  for (int i = 0; i < 32; ++i) std::snprintf(out + 2 * i, 3, "%02x", d[i]);
  return out;
}

// Read until buf holds one whole request; false on end of stream.
Result<bool> read_request(RecordLayer& l, std::vector<uint8_t>& buf, Request& req) {
  for (;;) {
    std::string_view s(reinterpret_cast<const char*>(buf.data()), buf.size());
    size_t end = s.find("\r\n\r\n");
    if (end != std::string_view::npos) {
      std::string head(s.substr(0, end));
      std::istringstream in(head);
      std::string version;
      in >> req.method >> req.path >> version;
      size_t clen = 0;
      std::string lower = head;
      for (auto& c : lower) c = char(std::tolower(static_cast<unsigned char>(c)));
      if (auto p = lower.find("\r\ncontent-length:"); p != std::string::npos)
        clen = std::stoul(lower.substr(p + 17));
      if (buf.size() >= end + 4 + clen) {
        req.total = end + 4 + clen;
        req.body.assign(buf.begin() + ptrdiff_t(end + 4), buf.begin() + ptrdiff_t(req.total));
        return true;
      }
    }
    uint8_t tmp[16384];
    XO_ASSIGN_OR_RETURN(size_t n, l.read_some(tmp));
    if (n == 0) return false;
    buf.insert(buf.end(), tmp, tmp + n);
  }
}

Status respond(RecordLayer& l, const Request& req, char who, uint32_t index) {
  std::string body;
  std::vector<uint8_t> bytes;
  if (req.path.rfind("/bytes/", 0) == 0) {
    size_t n = std::stoul(req.path.substr(7));
    bytes.resize(n);
    for (size_t i = 0; i < n; ++i) bytes[i] = uint8_t((i * 7 + 13) & 0xff);
  } else if (req.method == "POST") {
    body = "sha256=" + hex_sha256(req.body) + "\n";
  } else {
    body = "path=" + req.path + " by=" + who + " n=" + std::to_string(index) + "\n";
  }
  if (bytes.empty()) bytes.assign(body.begin(), body.end());
  std::string head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
                     std::to_string(bytes.size()) + "\r\nX-Served-By: " + who + "\r\n\r\n";
  std::vector<uint8_t> out(head.begin(), head.end());
  out.insert(out.end(), bytes.begin(), bytes.end());
  return l.write_all(out);
}

void log_line(const ServerPlan& plan, const std::string& line) {
  if (plan.log_path.empty()) return;
  std::ofstream f(plan.log_path, std::ios::app);
  f << line << "\n";
}

enum class Outcome { kEnded, kMovedAway };

// Serve one connection while this process holds it. On a move, the state and
// fd go to the peer and the function returns kMovedAway.
Outcome serve(const ServerPlan& plan, char who, int chan, std::unique_ptr<RecordLayer> layer, UniqueFd fd,
              uint32_t conn, uint32_t index, bool arrived) {
  std::vector<uint8_t> buf;
  auto move = [&](uint32_t at) {
    if (plan.pull_before_freeze) {
      pollfd p{fd.get(), POLLIN, 0};
      ::poll(&p, 1, 300);
      if (auto st = layer->pull_available(); !st) die("pull_available: " + st.error().to_string());
    }
    auto t0 = std::chrono::steady_clock::now();
    auto state = layer->freeze(buf);
    auto t1 = std::chrono::steady_clock::now();
    if (!state) die("freeze: " + state.error().to_string());
    auto bytes = encode(*state);
    std::vector<uint8_t> tcp_bytes;
    if (plan.tcp_repair) {
      // Block the flow (a socket in repair mode still ACKs data, which would be
      // lost; a closed port would answer RST), then snapshot and drop the socket.
#if XO_TLS_HAVE_TCP
      block_port(local_port(fd.get()));
      auto snap = tcp::capture(fd.get());
      if (!snap) die("tcp capture: " + snap.error().to_string());
      tcp_bytes = tcp::encode(*snap);
      fd.reset();  // closed in repair mode: neither FIN nor RST
#else
      die("built without common/tcp: no TCP repair moves");
#endif
    }
    std::ostringstream l;
    l << "freeze conn=" << conn << " req=" << at << " by=" << who << " backend=" << layer->backend()
      << " version=" << to_string(state->version) << " cipher=" << cipher_info(state->cipher).name
      << " tx_seq=" << state->tx.seq() << " rx_seq=" << state->rx.seq()
      << " unread=" << state->unread_plaintext.size() << " pending=" << state->pending_ciphertext.size()
      << " us=" << std::chrono::duration<double, std::micro>(t1 - t0).count()
      << (plan.tcp_repair ? " tcp=repair" : " tcp=fd");
    log_line(plan, l.str());
    send_msg(chan, kMove, at, conn, bytes, plan.tcp_repair ? -1 : fd.get(), tcp_bytes);
    return Outcome::kMovedAway;
  };
  if (plan.move_after_handshake && index == 0 && !arrived) return move(0);
  for (;;) {
    Request req;
    auto got = read_request(*layer, buf, req);
    if (!got) {
      log_line(plan, std::string("error conn=") + std::to_string(conn) + " by=" + who + " " + got.error().to_string());
      return Outcome::kEnded;
    }
    if (!*got) return Outcome::kEnded;
    if (plan.move_at.count(int(index)) && !arrived) return move(index);
    arrived = false;
    if (auto st = respond(*layer, req, who, index); !st) {
      log_line(plan, std::string("error conn=") + std::to_string(conn) + " by=" + who + " " + st.error().to_string());
      return Outcome::kEnded;
    }
    buf.erase(buf.begin(), buf.begin() + ptrdiff_t(req.total));
    ++index;
  }
}

std::unique_ptr<RecordLayer> continue_moved(const ServerPlan& plan, Message& m) {
  if (!m.tcp.empty()) {
#if XO_TLS_HAVE_TCP
    auto snap = tcp::decode(m.tcp);
    if (!snap) die("tcp decode: " + snap.error().to_string());
    auto fd = tcp::restore(*snap);
    if (!fd) die("tcp restore: " + fd.error().to_string());
    m.fd = std::move(*fd);
    unblock();
#endif
  }
  auto state = decode(m.state);
  if (!state) die("decode: " + state.error().to_string());
  if (plan.corrupt_tx_seq) state->tx.set_seq(state->tx.seq() + 1);
  auto layer = make_best_layer(m.fd.get(), std::move(*state));
  if (!layer) die("import: " + layer.error().to_string());
  return std::move(*layer);
}

// Process B: wait for connections to arrive, serve them, send them back.
[[noreturn]] void run_b(const ServerPlan& plan, int chan) {
  for (;;) {
    Message m = recv_msg(chan);
    if (m.type != kMove) _exit(0);
    int fd = m.fd.get();
    auto layer = continue_moved(plan, m);
    if (serve(plan, 'B', chan, std::move(layer), std::move(m.fd), m.conn, m.index, true) == Outcome::kEnded) {
      (void)fd;
      send_msg(chan, kDone, 0, m.conn, {}, -1);
    }
  }
}

[[noreturn]] void run_a(const ServerPlan& plan, int listen_fd) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) die("socketpair");
  pid_t b = fork();
  if (b < 0) die("fork B");
  if (b == 0) {
    ::close(sv[0]);
    ::close(listen_fd);
    run_b(plan, sv[1]);
  }
  ::close(sv[1]);
  int chan = sv[0];
  auto ctx = ServerContext::create(plan.tls);
  if (!ctx) die("context: " + ctx.error().to_string());
  int rc = 0;
  for (int conn = 0; conn < plan.connections; ++conn) {
    UniqueFd fd(::accept(listen_fd, nullptr, nullptr));
    if (!fd) die("accept");
    auto layer = accept_openssl(*ctx, fd.get());
    if (!layer) {
      log_line(plan, "error conn=" + std::to_string(conn) + " handshake: " + layer.error().to_string());
      rc = 1;
      continue;
    }
    log_line(plan, "handshake conn=" + std::to_string(conn) + " version=" + SSL_get_version((*layer)->ssl()) +
                       " cipher=" + SSL_CIPHER_get_name(SSL_get_current_cipher((*layer)->ssl())) +
                       " resumed=" + std::to_string(SSL_session_reused((*layer)->ssl())) +
                       " tx_seq=" + std::to_string((*layer)->tx_records()) +
                       " rx_seq=" + std::to_string((*layer)->rx_records()));
    // The SSL object must outlive the moved connection only as memory; keep it.
    std::unique_ptr<RecordLayer> l = std::move(*layer);
    Outcome o = serve(plan, 'A', chan, std::move(l), std::move(fd), uint32_t(conn), 0, false);
    while (o == Outcome::kMovedAway) {
      Message m = recv_msg(chan);
      if (m.type != kMove) break;  // kDone: B ended it
      auto back = continue_moved(plan, m);
      o = serve(plan, 'A', chan, std::move(back), std::move(m.fd), m.conn, m.index, true);
    }
  }
  send_msg(chan, kExit, 0, 0, {}, -1);
  int st = 0;
  ::waitpid(b, &st, 0);
  _exit(rc != 0 ? rc : (WIFEXITED(st) ? WEXITSTATUS(st) : 1));
}

}  // namespace

void enter_private_netns() {
  if (::unshare(CLONE_NEWNET) != 0) {
    std::perror("unshare(CLONE_NEWNET)");
    std::abort();
  }
  UniqueFd s(::socket(AF_INET, SOCK_DGRAM, 0));
  ifreq ifr{};
  std::strcpy(ifr.ifr_name, "lo");
  ::ioctl(s.get(), SIOCGIFFLAGS, &ifr);
  ifr.ifr_flags = short(ifr.ifr_flags | IFF_UP);
  ::ioctl(s.get(), SIOCSIFFLAGS, &ifr);
}

int listen_loopback(int* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 16) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    return -1;
  *port = ntohs(a.sin_port);
  return fd;
}

int start_servers(const ServerPlan& plan, int listen_fd) {
  std::fflush(nullptr);
  pid_t a = fork();
  if (a == 0) run_a(plan, listen_fd);
  return a;
}

bool wait_servers(int pid, int timeout_s, std::string* why) {
  for (int i = 0; i < timeout_s * 10; ++i) {
    int st = 0;
    pid_t r = ::waitpid(pid, &st, WNOHANG);
    if (r == pid) {
      if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return true;
      *why = "server exited with status " + std::to_string(st);
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  *why = "server did not finish in time";
  return false;
}

Command run(const std::string& cmd, int timeout_s) {
  Command c;
  std::string full = "timeout -k 5 " + std::to_string(timeout_s) + " sh -c '" + cmd + "' 2>&1";
  FILE* p = ::popen(full.c_str(), "r");
  if (!p) return c;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) c.out.append(buf, n);
  int st = ::pclose(p);
  c.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  if (c.status == 124) c.status = -1;
  return c;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

}  // namespace xo::tls::testing
