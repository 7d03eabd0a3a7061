// xo::handoff::node::run_io_loop — the Node thread's event loop: an
// io_context run that keeps polling for a while after each piece of work
// before it sleeps in epoll.
//
// Why: a handoff is three one-way control messages (OFFER, READY, GO) with
// the client's connection frozen in between. A thread asleep in epoll_wait
// takes ~25 µs to wake on an idle vCPU (measured between lab namespaces:
// TCP ping-pong RTT 56 µs blocking vs 9.6 µs polling), more than the rest of
// a hop. The answers a Node waits for arrive within tens of µs of its own
// last step, so it polls for `busy_poll` after control traffic (a frame
// written or read: channel/poll_window.h; a timer alone does not count) —
// the idle-poll window of polling reactors (Seastar's --idle-poll-time-us,
// Linux's net.core.busy_poll) — and calls sched_yield() on every empty
// poll, so a runnable thread on the same CPU (the daemon's workers) is not
// kept waiting behind it. The cost: up to `busy_poll` of CPU after each
// frame; a Node busy all the time polls all the time.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>

namespace xo::handoff::node {

// Runs `io` until it is stopped (io.stop(), or out of work). busy_poll of
// zero is a plain io.run().
void run_io_loop(boost::asio::io_context& io, std::chrono::microseconds busy_poll);

}  // namespace xo::handoff::node
