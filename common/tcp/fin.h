// FIN accounting of the half-closed states, as libsoccr does it.
//
// A FIN occupies one sequence number but no byte of the queues. SIOCOUTQ /
// SIOCOUTQNSD count our FIN and TCP_QUEUE_SEQ includes it; the peer's FIN
// is in rcv_nxt but SIOCINQ leaves it out. So capture() subtracts our FIN
// from the queue lengths, and restore() starts the sequence spaces one
// before the FINs and puts each FIN back by the event that made it:
// shutdown(SHUT_WR) for ours, an injected FIN segment for the peer's.
//
//   state        our FIN            peer's FIN
//   ESTABLISHED  -                  -
//   FIN_WAIT1    sent, not acked    -
//   FIN_WAIT2    sent, acked        -
//   CLOSING      sent, not acked    received (after ours: restore ours first)
//   CLOSE_WAIT   -                  received
//   LAST_ACK     sent, not acked    received (before ours: restore theirs first)
#pragma once

namespace xo::tcp::fin {

bool supported_state(int state);
bool we_sent_fin(int state);      // FIN_WAIT1, FIN_WAIT2, CLOSING, LAST_ACK
bool our_fin_acked(int state);    // FIN_WAIT2
bool peer_sent_fin(int state);    // CLOSE_WAIT, LAST_ACK, CLOSING

}  // namespace xo::tcp::fin
