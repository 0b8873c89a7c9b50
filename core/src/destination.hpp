// Per-destination state the host keeps for fairness and for its circuit breaker.
//
// A destination is what a job is delivered to: the plugin's own notion when it has one
// (xDestination, e.g. the webhook's scheme://host:port), else the route (tenant and route id).
// Its key is "<plugin>|<key>". Nothing here locks: the Consumer keeps its Destinations in shards
// and guards each table with its shard's lock (see consumer.hpp for the lock order).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace rd {

// Closed: jobs flow. Open: after `failures` consecutive failures (answers that say "try later",
// timeouts, unreachable) no job is sent; one probe goes through every probe interval. The first
// success (any answer that is not an unavailability, a 4xx included) closes it.
class CircuitBreaker {
 public:
  enum class Gate { pass, probe, blocked };
  enum class Transition { none, opened, closed };

  CircuitBreaker(int failures_to_open, int64_t probe_interval_ns)
      : failures_to_open_(failures_to_open), probe_interval_ns_(probe_interval_ns) {}

  // Whether a job may be sent now. `probe` means: this one job tests an open destination; call
  // probe_done() (through success/failure) for it.
  Gate gate(int64_t now_ns);
  Transition success();
  Transition failure(int64_t now_ns, int64_t wall_ms, const std::string& reason);
  // A probe that never reached the destination (e.g. its job was deferred by the host).
  void probe_cancelled() { probing_ = false; }
  // A reload's delivery.circuit.*: counts from the failures so far; an open circuit keeps its
  // next probe time and probes at the new interval after it.
  void set_limits(int failures_to_open, int64_t probe_interval_ns) {
    failures_to_open_ = failures_to_open;
    probe_interval_ns_ = probe_interval_ns;
  }

  // Read without the shard lock by `started` (Consumer::on_started); written under it.
  bool open() const { return open_.load(std::memory_order_relaxed); }
  int64_t open_since_ms() const { return open_since_ms_; }        // wall clock
  int64_t failing_since_ms() const { return failing_since_ms_; }  // first of the failures
  const std::string& last_error() const { return last_error_; }
  int consecutive_failures() const { return failures_; }

 private:
  int failures_to_open_;  // 0 = never opens
  int64_t probe_interval_ns_;
  int failures_ = 0;
  std::atomic<bool> open_{false};
  bool probing_ = false;
  int64_t next_probe_ns_ = 0;
  int64_t open_since_ms_ = 0;
  int64_t failing_since_ms_ = 0;
  std::string last_error_;
};

struct Destination {
  Destination(std::string k, int failures_to_open, int64_t probe_interval_ns)
      : key(std::move(k)), breaker(failures_to_open, probe_interval_ns) {}
  std::string key;
  CircuitBreaker breaker;
  // The plugin named it (xDestination). Only then does a RETRY of one job say something about
  // the jobs of others: see Consumer::finish_at_destination.
  bool named_by_plugin = false;
  int in_flight = 0;             // jobs handed to the plugin and not settled
  std::deque<uint64_t> waiting;  // delivery ids held in the host beyond the share, oldest first
  uint64_t deferrals = 0;
  int64_t last_used_ns = 0;
  // Completions per second, measured over windows of about a second (for how long its backlog
  // takes to drain).
  double rate_per_s = 0;
  // Time from hand-over (or from `started`) to completion, smoothed over about ten jobs; -1 until
  // the first completion. Known after one job, unlike the rate.
  double latency_ms = -1;
  uint64_t window_done = 0;
  int64_t window_start_ns = 0;
  void count_done(int64_t now_ns);
  // How long the jobs it holds (in flight and waiting) take to drain at its measured rate; -1
  // when no rate is known yet.
  int64_t drain_ms() const;
};

// Destinations by key; entries that are idle (nothing in flight or waiting, circuit closed) for a
// minute are pruned, so the table stays as small as the set of active destinations.
class DestinationTable {
 public:
  explicit DestinationTable(int failures_to_open = 0, int64_t probe_interval_ms = 0)
      : failures_to_open_(failures_to_open), probe_interval_ns_(probe_interval_ms * 1'000'000) {}

  // Looked up by a view (the caller's key need not be a std::string: no allocation per job).
  Destination* get(std::string_view key, int64_t now_ns);
  // A reload's delivery.circuit.*: for the destinations known and those met later.
  void set_circuit(int failures_to_open, int64_t probe_interval_ms);
  void prune(int64_t now_ns);
  size_t size() const { return map_.size(); }
  template <typename F>
  void for_each(F&& f) const {
    for (const auto& [key, d] : map_) f(*d);
  }

 private:
  int failures_to_open_;
  int64_t probe_interval_ns_;
  // Keys view the Destination's own `key`, which lives as long as the entry.
  std::unordered_map<std::string_view, std::unique_ptr<Destination>> map_;
};

// "2026-12-01T22:37:31Z"
std::string format_utc(int64_t wall_ms);

}  // namespace rd
