#include "retry_policy.hpp"

#include <route_delivery/plugin.h>

#include <algorithm>
#include <cmath>

#include "config.hpp"

namespace rd {

int64_t jetstream_max_deliver(const Config& config) {
  const int64_t attempts = config.nats.max_deliver;
  if (attempts <= 0) return -1;
  const int64_t cap = std::max<int64_t>(1, config.delivery.max_defer_delay_ms);
  const int64_t deferrals = (config.delivery.give_up_after_ms + cap - 1) / cap;
  return attempts + deferrals + 100;
}

RetryPolicy::RetryPolicy(std::vector<int64_t> backoff_ms, int64_t max_delay_ms, double jitter)
    : backoff_ms_(std::move(backoff_ms)), max_delay_ms_(max_delay_ms), jitter_(jitter) {
  if (backoff_ms_.empty()) backoff_ms_.push_back(1000);
}

int64_t RetryPolicy::base_delay_ms(uint32_t attempt) const {
  const size_t index = attempt == 0 ? 0 : std::min<size_t>(attempt - 1, backoff_ms_.size() - 1);
  return backoff_ms_[index];
}

int64_t RetryPolicy::delay_ms(uint32_t attempt, int64_t suggested_ms) const {
  thread_local std::minstd_rand rng{std::random_device{}()};
  const double base = static_cast<double>(base_delay_ms(attempt));
  std::uniform_real_distribution<double> dist(1.0 - jitter_, 1.0 + jitter_);
  int64_t delay = static_cast<int64_t>(std::llround(base * dist(rng)));
  delay = std::max(delay, suggested_ms);
  return std::clamp<int64_t>(delay, 0, max_delay_ms_);
}

}  // namespace rd
