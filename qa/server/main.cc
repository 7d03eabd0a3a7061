// xo-testserver: the test server as a process (run it inside a lab host).
//   xo-testserver --name frontend [--port 80] [--listen ::]
// Prints "ready <port>" on stdout once listening; stops on SIGTERM/SIGINT.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "qa/server/server.h"

int main(int argc, char** argv) {
  xo::testserver::ServerOptions opts;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--name") opts.name = argv[i + 1];
    else if (k == "--port") opts.port = static_cast<uint16_t>(std::atoi(argv[i + 1]));
    else if (k == "--listen") opts.listen = argv[i + 1];
    else {
      std::fprintf(stderr, "usage: xo-testserver --name NAME [--port N] [--listen ADDR]\n");
      return 2;
    }
  }
  if (opts.name.empty()) {
    std::fprintf(stderr, "xo-testserver: --name is required (it goes into X-Served-By)\n");
    return 2;
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);  // threads inherit: only sigwait sees them
  auto server = xo::testserver::Server::start(opts);
  if (!server.ok()) {
    std::fprintf(stderr, "xo-testserver: %s\n", server.error().to_string().c_str());
    return 1;
  }
  std::printf("ready %u\n", (*server)->port());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&set, &sig);
  (*server)->stop();
  return 0;
}
