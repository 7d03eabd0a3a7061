#include "common/tcp/fin.h"

#include <netinet/tcp.h>

#include "common/tcp/snapshot.h"

namespace xo::tcp {
namespace fin {
namespace {
constexpr unsigned bit(int s) { return 1u << s; }
}  // namespace

bool supported_state(int state) {
  return state >= 0 && state < 32 &&
         (bit(state) & (bit(TCP_ESTABLISHED) | bit(TCP_FIN_WAIT1) | bit(TCP_FIN_WAIT2) |
                        bit(TCP_CLOSING) | bit(TCP_CLOSE_WAIT) | bit(TCP_LAST_ACK)));
}
bool we_sent_fin(int state) {
  return state == TCP_FIN_WAIT1 || state == TCP_FIN_WAIT2 || state == TCP_CLOSING ||
         state == TCP_LAST_ACK;
}
bool our_fin_acked(int state) { return state == TCP_FIN_WAIT2; }
bool peer_sent_fin(int state) {
  return state == TCP_CLOSE_WAIT || state == TCP_LAST_ACK || state == TCP_CLOSING;
}

}  // namespace fin

const char* state_name(int state) {
  switch (state) {
    case TCP_ESTABLISHED: return "ESTABLISHED";
    case TCP_SYN_SENT: return "SYN_SENT";
    case TCP_SYN_RECV: return "SYN_RECV";
    case TCP_FIN_WAIT1: return "FIN_WAIT1";
    case TCP_FIN_WAIT2: return "FIN_WAIT2";
    case TCP_TIME_WAIT: return "TIME_WAIT";
    case TCP_CLOSE: return "CLOSE";
    case TCP_CLOSE_WAIT: return "CLOSE_WAIT";
    case TCP_LAST_ACK: return "LAST_ACK";
    case TCP_LISTEN: return "LISTEN";
    case TCP_CLOSING: return "CLOSING";
    default: return "UNKNOWN";
  }
}

}  // namespace xo::tcp
