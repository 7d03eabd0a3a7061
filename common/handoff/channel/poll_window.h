// The busy-poll window of the event loop on this thread (node/io_loop.h):
// control traffic — a frame written or read by a Connection — keeps it open,
// since the next frame of a handoff follows within tens of µs. Other work
// does not: a thread woken by a timer (a deferred removal, a timeout
// cancelled long ago) goes back to sleep instead of polling for nothing,
// which on a small host takes a CPU from the threads doing real work.
#pragma once

#include <chrono>

namespace xo::handoff::channel {

struct PollWindow {
  // Set by the loop running on this thread; null elsewhere (a plain run()).
  static inline thread_local std::chrono::steady_clock::time_point* last_traffic = nullptr;
  static void note_traffic() {
    if (last_traffic) *last_traffic = std::chrono::steady_clock::now();
  }
};

}  // namespace xo::handoff::channel
