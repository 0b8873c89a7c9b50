// What delivery_loop.cpp (libcurl transfers) and delivery_loop_http1.cpp (the loop's own HTTP/1.1
// client) share. Internal to the webhook plugin.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "classify.hpp"

namespace rd::webhook::detail {

// Response bytes kept for the failure reason, and read at most before the connection is dropped
// (reading a modest body to its end keeps the connection reusable).
constexpr size_t kKeepBodyBytes = 4096;
constexpr size_t kMaxReadBytes = 1 << 20;

// epoll_event.data of the own client's connections: this bit and the connection's index (libcurl's
// sockets are registered by their fd, which never has it).
constexpr uint64_t kConnTag = uint64_t{1} << 63;

inline int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

inline Decision result(Disposition disposition, std::string reason, int64_t retry_after_ms = -1) {
  Decision d;
  d.disposition = disposition;
  d.retry_after_ms = retry_after_ms;
  d.reason = std::move(reason);
  return d;
}

inline Decision retry_now(std::string reason) {
  return result(Disposition::kRetry, std::move(reason));
}

}  // namespace rd::webhook::detail

#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <list>
#include <mutex>

#include "delivery_loop.hpp"

namespace rd::webhook {

// One connection of the loop's own HTTP/1.1 client, and the request it carries (one at a time:
// no pipelining). Kept for reuse while the server keeps it open.
struct DeliveryLoop::Conn {
  enum class Phase { kFree, kResolving, kConnecting, kSending, kReceiving, kIdle };

  uint32_t index = 0;   // in conns_
  uint64_t serial = 0;  // of the current request (resolver answers and timers check it)
  int fd = -1;
  Phase phase = Phase::kFree;
  uint32_t registered = 0;      // events in the epoll set; 0 = not in it
  uint32_t generation = 0;      // of the socket: an event for a closed one is recognised
  std::string destination_key;  // the pool it belongs to
  Clock::time_point idle_since{};

  // The request.
  DeliveryJob job;
  AttemptHeaders attempt;  // its webhook-id, timestamp and signature lines (reused buffers)
  std::string out;         // the request on the wire
  size_t out_sent = 0;
  std::string in;  // received bytes not parsed yet
  ResponseReader reader{detail::kKeepBodyBytes, detail::kMaxReadBytes};
  Clock::time_point started{};
  Clock::time_point deadline{};
  bool reused = false;   // the connection carried an earlier request
  bool retried = false;  // already moved off a stale pooled connection once
  bool sent = false;     // connected, the request began to leave
  std::vector<Address> addresses;
  size_t next_address = 0;
  std::string connect_error;  // the last address's failure
  std::string refusal;        // the SSRF guard's, for the last refused address
  int refused = 0;
  int allowed = 0;

  // Its place in timers_[job.budget_ms] while a request runs.
  Conn* timer_prev = nullptr;
  Conn* timer_next = nullptr;
  bool timed = false;
};

// The resolver threads' side: names to look up and the answers. Shared, so that a thread stuck
// in getaddrinfo at shutdown can be left to finish on its own (it sees `stop` and ends).
//
// Every name queued or being looked up gets a thread of its own, within two limits: at most
// kResolverThreads threads that are not stuck (idle, starting, or in a lookup begun at most
// kStuckLookup ago), and at most kMaxResolverThreads in all. So each name whose DNS servers do
// not answer holds up the names behind it for about kStuckLookup, and a flood of such names ties
// up kMaxResolverThreads threads, never more (names beyond wait for one of them). A lookup
// cannot be cancelled: a stuck one ends when getaddrinfo gives up. The loop starts the threads
// (to_start) when it queues a name and, while names wait for the limits, when the oldest lookup
// not yet stuck becomes stuck (DeliveryLoop::check_resolver), so no new job is needed for that.
struct DeliveryLoop::Resolver {
  struct Lookup {
    std::string host_key, host;
    long port = 0;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Lookup> queue;
  std::vector<Resolved> done;
  std::list<Clock::time_point> running;  // when each lookup under way began, oldest first
  int threads = 0;                       // alive: idle, starting, or in a lookup
  int idle = 0;                          // of them, waiting for a name
  bool stop = false;
  const NameLookup lookup;  // the loop's copy: the threads may outlive the loop
  const int wake_fd;        // a dup of the loop's eventfd, closed by the last owner

  Resolver(NameLookup lookup_fn, int wake) : lookup(std::move(lookup_fn)), wake_fd(wake) {}
  ~Resolver() {
    if (wake_fd >= 0) ::close(wake_fd);
  }
  // With `mu` held: counts in `threads` the threads to start now for the queued names, and
  // returns them; sets `check` to when the limits may allow more (max: no need to look again).
  int to_start(Clock::time_point now, Clock::time_point& check);
  static void run(std::shared_ptr<Resolver> self);
};

}  // namespace rd::webhook
