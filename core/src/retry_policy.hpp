// Central retry policy: back-off, attempts and when a job is dead-lettered (docs/architecture.md,
// "Settle").
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace rd {

struct Config;

// The JetStream max_deliver the host gives the consumer it creates: nats.max_deliver real attempts
// plus room for the deferrals a job may go through before delivery.give_up_after (each deferral
// is a redelivery to JetStream), plus a margin for restarts. It stays finite: a job that crashes
// the daemon at every try is still caught by the max-deliveries safety net. -1 = unlimited.
int64_t jetstream_max_deliver(const Config& config);

class RetryPolicy {
 public:
  RetryPolicy(std::vector<int64_t> backoff_ms, int64_t max_delay_ms, double jitter = 0.2);
  // Delay before the next attempt after `attempt` failed: backoff[attempt-1] (last repeats) with
  // +-jitter, at least the plugin's suggestion (-1 = none), at most max_delay.
  int64_t delay_ms(uint32_t attempt, int64_t suggested_ms) const;
  // Same without jitter (for tests and logs).
  int64_t base_delay_ms(uint32_t attempt) const;

 private:
  std::vector<int64_t> backoff_ms_;
  int64_t max_delay_ms_;
  double jitter_;
};

}  // namespace rd
