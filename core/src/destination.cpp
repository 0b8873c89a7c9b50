#include "destination.hpp"

#include <time.h>

namespace rd {
namespace {
constexpr int64_t kIdleNs = 60'000'000'000;
}

CircuitBreaker::Gate CircuitBreaker::gate(int64_t now_ns) {
  if (!open()) return Gate::pass;
  if (probing_ || now_ns < next_probe_ns_) return Gate::blocked;
  probing_ = true;
  next_probe_ns_ = now_ns + probe_interval_ns_;
  return Gate::probe;
}

CircuitBreaker::Transition CircuitBreaker::success() {
  failures_ = 0;
  probing_ = false;
  failing_since_ms_ = 0;
  if (!open()) return Transition::none;
  open_.store(false, std::memory_order_relaxed);
  return Transition::closed;
}

CircuitBreaker::Transition CircuitBreaker::failure(int64_t now_ns, int64_t wall_ms,
                                                   const std::string& reason) {
  last_error_ = reason;
  if (failures_ == 0) failing_since_ms_ = wall_ms;
  ++failures_;
  if (open()) {
    probing_ = false;  // the probe failed: the next one after the interval
    next_probe_ns_ = now_ns + probe_interval_ns_;
    return Transition::none;
  }
  if (failures_to_open_ <= 0 || failures_ < failures_to_open_) return Transition::none;
  open_.store(true, std::memory_order_relaxed);
  probing_ = false;
  open_since_ms_ = failing_since_ms_;
  next_probe_ns_ = now_ns + probe_interval_ns_;
  return Transition::opened;
}

void Destination::count_done(int64_t now_ns) {
  ++window_done;
  if (window_start_ns == 0) window_start_ns = now_ns;
  const int64_t elapsed = now_ns - window_start_ns;
  if (elapsed >= 1'000'000'000) {
    rate_per_s = static_cast<double>(window_done) * 1e9 / static_cast<double>(elapsed);
    window_done = 0;
    window_start_ns = now_ns;
  }
}

int64_t Destination::drain_ms() const {
  if (rate_per_s <= 0) return -1;
  const double held = static_cast<double>(in_flight) + static_cast<double>(waiting.size());
  return static_cast<int64_t>(held / rate_per_s * 1000.0);
}

Destination* DestinationTable::get(std::string_view key, int64_t now_ns) {
  auto it = map_.find(key);
  if (it == map_.end()) {
    auto dest =
        std::make_unique<Destination>(std::string(key), failures_to_open_, probe_interval_ns_);
    const std::string_view own = dest->key;
    it = map_.emplace(own, std::move(dest)).first;
  }
  it->second->last_used_ns = now_ns;
  return it->second.get();
}

void DestinationTable::set_circuit(int failures_to_open, int64_t probe_interval_ms) {
  failures_to_open_ = failures_to_open;
  probe_interval_ns_ = probe_interval_ms * 1'000'000;
  for (auto& [key, d] : map_) d->breaker.set_limits(failures_to_open_, probe_interval_ns_);
}

void DestinationTable::prune(int64_t now_ns) {
  for (auto it = map_.begin(); it != map_.end();) {
    const Destination& d = *it->second;
    const bool idle = d.in_flight == 0 && d.waiting.empty() && !d.breaker.open() &&
                      d.breaker.consecutive_failures() == 0 && now_ns - d.last_used_ns > kIdleNs;
    it = idle ? map_.erase(it) : std::next(it);
  }
}

std::string format_utc(int64_t wall_ms) {
  const time_t secs = static_cast<time_t>(wall_ms / 1000);
  tm t{};
  gmtime_r(&secs, &t);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &t);
  return buf;
}

}  // namespace rd
