// Small helpers shared by the pipeline's files (consumer*.cpp, dispatch.cpp, settle.cpp, ...).
#pragma once

#include <route_delivery/plugin.h>
#include <time.h>

#include <atomic>
#include <cstdint>
#include <string>

#include "metrics.hpp"

namespace rd {

constexpr size_t kMaxReasonChars = 2000;
// Settled messages are destroyed in groups (see Consumer::release): by the fetch thread before
// each fetch, or by release() once this many have gathered. 64 woke nats.c's garbage collector
// thread four times as often and cost the no-op path ~0.4 us of CPU per job (docs/performance.md).
constexpr size_t kSpentBatch = 1024;
// Acks leave in bursts (Consumer::ack_loop): the queued acks go with a fetch thread's next pull
// request, or from the ack thread once the oldest is kAckWindowMs old or kAckBurst are queued.
// Sent as each job completed, acks left ~15 per socket write on the webhook path (nats.c flushes
// 1 ms after the first pending write) and cost nats-server ~1.3-1.5x the CPU per job of the no-op
// path, whose acks leave in fetch-batch bursts; in bursts, ~1.0-1.3x by the machine's load, the
// rest following the longer drain (docs/performance.md, issue 14). An ack is ~85 bytes on the wire:
// a full burst (~43 KB) is more than nats.c's 32 KB write buffer, which it then writes from the
// sending thread.
constexpr size_t kAckBurst = 512;
constexpr int64_t kAckWindowMs = 10;
// Set on the host's threads that call xDeliver (fetch threads, plugin lanes, the waiting
// dispatcher): a job a plugin completes inline there is acked at once, with the rest of the jobs
// the thread hands out in a row; a plugin's own threads' completions go to the ack thread.
inline thread_local bool t_host_thread = false;

inline int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

inline int64_t wall_ms() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

// Truncates at a UTF-8 character boundary.
inline std::string truncate_reason(const char* text, size_t len) {
  std::string s(text != nullptr ? text : "", text != nullptr ? len : 0);
  if (s.size() <= kMaxReasonChars) return s;
  size_t cut = kMaxReasonChars;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  s.resize(cut);
  return s;
}

inline Outcome label_for(int32_t outcome) {
  switch (outcome) {
    case RD_OUTCOME_OK:
      return Outcome::ok;
    case RD_OUTCOME_RETRY:
      return Outcome::retry;
    case RD_OUTCOME_DEFER:
      return Outcome::deferred;
    default:
      return Outcome::permanent;
  }
}

// Rate-limits a repeated log line to one per interval.
class Throttle {
 public:
  explicit Throttle(int64_t interval_ms) : interval_ns_(interval_ms * 1'000'000) {}
  bool allow() {
    const int64_t now = now_ns();
    int64_t last = last_.load(std::memory_order_relaxed);
    if (now - last < interval_ns_) return false;
    return last_.compare_exchange_strong(last, now);
  }

 private:
  int64_t interval_ns_;
  std::atomic<int64_t> last_{INT64_MIN / 2};
};

}  // namespace rd
