// tls_bench — numbers for qa/bench tls (JSON lines on stdout, progress on stderr).
//
//   tls.export / tls.import           µs, warm: freeze()+encode() of an OpenSSL server
//                                     connection after a request; decode()+userspace import
//   tls.seal.<c> / tls.open.<c>       GB/s, 16 KiB records, one core (XO's record layer)
//   tls.openssl.<c>                   GB/s, `openssl speed -aead -evp <c> -bytes 16384`
//   tls.seal_vs_openssl.<c>           ratio of the medians
// Ours and openssl speed alternate, 5 rounds each; medians reported.
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <time.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "common/base/fd.h"
#include "common/tls/crypto.h"
#include "common/tls/openssl_layer.h"
#include "common/tls/record.h"
#include "common/tls/record_layer.h"

using namespace xo::tls;
using Clock = std::chrono::steady_clock;

namespace {

void die(const std::string& why) {
  std::fprintf(stderr, "tls_bench: %s\n", why.c_str());
  std::exit(1);
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, size_t(p * double(v.size())))];
}

void emit_latency(const char* name, const char* what, const std::vector<double>& us) {
  std::printf("{\"name\":\"%s\",\"unit\":\"us\",\"p50\":%.3f,\"p99\":%.3f,\"n\":%zu,\"what\":\"%s\"}\n", name,
              percentile(us, 0.5), percentile(us, 0.99), us.size(), what);
}

void emit_value(const std::string& name, const char* unit, double value, size_t n, const std::string& what) {
  std::printf("{\"name\":\"%s\",\"unit\":\"%s\",\"value\":%.4f,\"n\":%zu,\"what\":\"%s\"}\n", name.c_str(), unit, value,
              n, what.c_str());
}

// One server connection: OpenSSL client thread on the other end of a socket pair.
struct Conn {
  xo::UniqueFd server_fd, client_fd;
  std::unique_ptr<OpensslLayer> server;
  SSL* client = nullptr;
};

Conn connect_pair(const std::shared_ptr<ServerContext>& sctx, SSL_CTX* cctx) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) die("socketpair");
  Conn c;
  c.server_fd.reset(sv[0]);
  c.client_fd.reset(sv[1]);
  c.client = SSL_new(cctx);
  SSL_set_fd(c.client, c.client_fd.get());
  std::thread t([&] {
    if (SSL_connect(c.client) != 1) die("SSL_connect");
    const char req[] = "GET /object HTTP/1.1\r\nHost: bench\r\n\r\n";
    SSL_write(c.client, req, sizeof req - 1);
  });
  auto l = accept_openssl(sctx, c.server_fd.get());
  t.join();
  if (!l) die("accept: " + l.error().to_string());
  c.server = std::move(*l);
  uint8_t buf[256];
  auto n = c.server->read_some(buf);
  if (!n || *n == 0) die("read request");
  return c;
}

void bench_export_import() {
  auto pem = make_self_signed("bench");
  if (!pem) die(pem.error().to_string());
  ServerConfig cfg;
  cfg.cert_pem = pem->cert_pem;
  cfg.key_pem = pem->key_pem;
  auto sctx = ServerContext::create(cfg);
  if (!sctx) die(sctx.error().to_string());
  SSL_CTX* cctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, nullptr);

  std::vector<double> export_us;
  std::vector<uint8_t> encoded;
  const int kConns = 300;
  for (int i = 0; i < kConns; ++i) {
    Conn c = connect_pair(*sctx, cctx);
    auto t0 = Clock::now();
    auto st = c.server->freeze();
    if (!st) die("freeze: " + st.error().to_string());
    auto bytes = encode(*st);
    auto t1 = Clock::now();
    if (i >= 10) export_us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());  // warm
    encoded = std::move(bytes);
    SSL_free(c.client);
  }
  emit_latency("tls.export", "freeze()+encode() of an OpenSSL 3.0 server connection after one request (TLS 1.3, keys derived in the keylog callback)", export_us);

  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) die("socketpair");
  xo::UniqueFd a(sv[0]), b(sv[1]);
  std::vector<double> import_us;
  for (int i = 0; i < 5000; ++i) {
    auto t0 = Clock::now();
    auto st = decode(encoded);
    if (!st) die("decode: " + st.error().to_string());
    auto layer = make_userspace_layer(a.get(), std::move(*st));
    auto t1 = Clock::now();
    if (!layer) die("import: " + layer.error().to_string());
    if (i >= 100) import_us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  emit_latency("tls.import", "decode()+make_userspace_layer() of that state (warm process)", import_us);
  SSL_CTX_free(cctx);
}

Direction direction_for(Cipher c) {
  Direction d;
  std::vector<uint8_t> secret(cipher_info(c).secret_len, 0x42);
  if (!set_tls13_direction(d, c, secret).ok()) die("keys");
  return d;
}

constexpr size_t kRecord = 16384;

// Throughput is bytes per second of this thread's CPU time, as `openssl speed`
// reports by default (its -elapsed option switches to wall time): on a shared
// machine wall time would charge us for other processes' time slices.
double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

double seal_gbps(Cipher c, double seconds) {
  auto p = RecordProtection::create(Version::tls13, direction_for(c), true);
  if (!p) die(p.error().to_string());
  // seal_into() a reused buffer: what the userspace layer's write_all() does.
  std::vector<uint8_t> plain(kRecord, 0x61), out(kRecord + 64);
  size_t bytes = 0;
  double t0 = cpu_seconds();
  double elapsed = 0;
  while (elapsed < seconds) {
    for (int i = 0; i < 64; ++i) {
      if (!p->seal_into(kApplicationData, plain, out).ok()) die("seal");
      bytes += kRecord;
    }
    elapsed = cpu_seconds() - t0;
  }
  return double(bytes) / elapsed / 1e9;
}

double open_gbps(Cipher c, double seconds) {
  Direction d = direction_for(c);
  auto sealer = RecordProtection::create(Version::tls13, d, true);
  if (!sealer) die("sealer");
  std::vector<std::vector<uint8_t>> records(64);
  std::vector<uint8_t> plain(kRecord, 0x62), out(kRecord + 64);
  for (auto& r : records)
    if (!sealer->seal(kApplicationData, plain, r).ok()) die("seal");
  size_t bytes = 0;
  double t0 = cpu_seconds();
  double elapsed = 0;
  while (elapsed < seconds) {
    auto opener = RecordProtection::create(Version::tls13, d, false);  // same sequence again
    if (!opener) die("opener");
    for (auto& r : records) {
      if (!opener->open_into(r, out).ok()) die("open");
      bytes += kRecord;
    }
    elapsed = cpu_seconds() - t0;
  }
  return double(bytes) / elapsed / 1e9;
}

// `openssl speed -aead -evp <cipher> -bytes 16384 -seconds 1`: last "NNN.NNk" on the result line.
double openssl_speed_gbps(const char* evp) {
  std::string cmd = std::string("openssl speed -aead -evp ") + evp + " -bytes 16384 -seconds 1 2>/dev/null";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) die("popen openssl speed");
  char line[512];
  double kbps = -1;
  while (std::fgets(line, sizeof line, p)) {
    // The result line is "<CIPHER>   5346376.89k": its last token ends in 'k'.
    std::string l(line);
    while (!l.empty() && std::isspace(static_cast<unsigned char>(l.back()))) l.pop_back();
    size_t sp = l.find_last_of(" \t");
    std::string tok = sp == std::string::npos ? l : l.substr(sp + 1);
    if (tok.size() < 2 || tok.back() != 'k' || !std::isdigit(static_cast<unsigned char>(tok[0]))) continue;
    kbps = std::strtod(tok.c_str(), nullptr);
  }
  ::pclose(p);
  if (kbps <= 0) die(std::string("could not parse openssl speed output for ") + evp);
  return kbps * 1000 / 1e9;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main() {
  if (!warm_up().ok()) die("OpenSSL warm-up failed");
  std::fprintf(stderr, "tls_bench: export/import\n");
  bench_export_import();
  struct {
    Cipher c;
    const char* evp;
  } ciphers[] = {{Cipher::aes128gcm, "aes-128-gcm"}, {Cipher::aes256gcm, "aes-256-gcm"},
                 {Cipher::chacha20poly1305, "chacha20-poly1305"}};
  const int kRounds = 5;
  for (auto& c : ciphers) {
    std::vector<double> seal, open, ossl;
    for (int r = 0; r < kRounds; ++r) {
      std::fprintf(stderr, "tls_bench: %s round %d\n", cipher_info(c.c).name, r + 1);
      seal.push_back(seal_gbps(c.c, 0.5));
      ossl.push_back(openssl_speed_gbps(c.evp));
      open.push_back(open_gbps(c.c, 0.5));
    }
    std::string n = cipher_info(c.c).name;
    emit_value("tls.seal." + n, "GB/s", median(seal), seal.size(),
               "XO userspace record layer seal, TLS 1.3, 16 KiB records, one core, per CPU second like openssl speed; median of 5 x 0.5 s");
    emit_value("tls.open." + n, "GB/s", median(open), open.size(),
               "XO userspace record layer open, TLS 1.3, 16 KiB records, one core, per CPU second like openssl speed; median of 5 x 0.5 s");
    emit_value("tls.openssl." + n, "GB/s", median(ossl), ossl.size(),
               std::string("openssl speed -aead -evp ") + c.evp + " -bytes 16384 -seconds 1; median of 5, interleaved");
    emit_value("tls.seal_vs_openssl." + n, "ratio", median(seal) / median(ossl), seal.size(),
               "median tls.seal / median tls.openssl (target >= 0.9)");
    std::fflush(stdout);
  }
  return 0;
}
