// Metrics registry for /metrics (Prometheus text format) and /health counters.
// Updates are lock-free (atomics); registration takes a mutex (start-up, and a SIGHUP reload that
// adds a plugin while jobs flow).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace rd {

// Outcome label of route_delivery_deliveries_total.
enum class Outcome { ok = 0, retry, permanent, timeout, invalid, deferred, count };
const char* outcome_name(Outcome o);

// A sample value in the Prometheus text format: the shortest text that reads back as `v`
// (0.000662, 5, 1e-07), and NaN, +Inf, -Inf.
void append_prometheus_number(std::string& out, double v);

class Histogram {
 public:
  static constexpr std::array<double, 14> kBuckets{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                   0.25,  0.5,    1,     2.5,  5,     10,   30};
  void observe(double seconds);
  void render(std::string& out, const std::string& name, const std::string& labels) const;

 private:
  std::array<std::atomic<uint64_t>, kBuckets.size() + 1> counts_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_us_{0};
};

class Metrics {
 public:
  // Per destination type (index from register_destination).
  struct Destination {
    std::string type;
    std::array<std::atomic<uint64_t>, static_cast<size_t>(Outcome::count)> outcomes{};
    std::atomic<uint64_t> dead_lettered{0};
    Histogram duration;
    std::string plugin;  // the plugin serving `type`; "" for "unknown"
    // Completions the host ignored (twice, after the timeout, unknown id), by the plugin's label.
    std::atomic<uint64_t> duplicate_completions{0};
    // plugins.<name>.isolation: process: the plugin's child process was restarted after dying.
    std::atomic<bool> isolated{false};
    std::atomic<uint64_t> restarts{0};
  };

  // Fixed capacity, so a reload can add a type while other threads record into the others.
  static constexpr size_t kMaxDestinations = 128;
  static constexpr size_t kMaxPluginMetrics = 1024;  // series of all plugins together
  // Returns the index for `type`, creating it on first use (throws std::length_error when full).
  // `plugin` names the plugin serving it. Thread-safe against concurrent destination() and
  // render_prometheus().
  size_t register_destination(const std::string& type, const std::string& plugin = "");
  Destination& destination(size_t index) { return destinations_[index]; }
  size_t unknown_destination() const { return 0; }  // index 0: jobs with no usable type

  // Host counters shown on /health.
  std::atomic<uint64_t> delivered{0};  // acked after an OK
  std::atomic<uint64_t> failed{
      0};  // attempts that did not succeed (retry, permanent, timeout, invalid)
  std::atomic<uint64_t> retried{0};        // nak'd with delay for another attempt
  std::atomic<uint64_t> dead_lettered{0};  // dead-letter record written and message termed
  std::atomic<uint64_t> dead_letter_errors{0};
  std::atomic<int64_t> in_flight{0};
  // Deferrals (no attempt spent): destination unavailable (DEFER), circuit open, over its share.
  std::atomic<uint64_t> deferred_unavailable{0};
  std::atomic<uint64_t> deferred_circuit_open{0};
  std::atomic<uint64_t> deferred_saturated{0};
  std::atomic<uint64_t> deferred_plugin_busy{0};  // a slow plugin's lane is full
  std::atomic<uint64_t> circuit_opened{0};
  std::atomic<int64_t> open_destinations{0};
  std::atomic<int64_t> waiting{0};        // jobs held in the host for a destination over its share
  std::atomic<int64_t> fetched_ahead{0};  // jobs fetched while every in-flight slot was taken
  std::atomic<uint64_t> given_up{0};      // dead-lettered after delivery.give_up_after
  std::atomic<uint64_t> nats_reconnects{0};
  std::atomic<int> nats_connected{0};
  std::atomic<int64_t> consumer_pending{-1};  // cached consumer info; -1 = unknown
  std::atomic<uint64_t> reloads_ok{0};  // SIGHUP reloads applied, and refused (config invalid)
  std::atomic<uint64_t> reloads_failed{0};
  // Acquisitions of the host's table lock (Consumer::mu_), and those that found it held. The hot
  // path does not take it: acquisitions per delivered job stay far below one.
  std::atomic<uint64_t> table_lock_acquisitions{0};
  std::atomic<uint64_t> table_lock_waits{0};

  // Plugin metrics (rd_host_services counter/gauge/histogram).
  enum class Kind { counter, gauge, histogram };
  int32_t register_plugin_metric(Kind kind, const std::string& name, const std::string& labels,
                                 const std::string& help);
  void plugin_add(int32_t handle, double value);
  void plugin_set(int32_t handle, double value);
  void plugin_observe(int32_t handle, double seconds);

  std::string render_prometheus() const;

  Metrics();

 private:
  struct PluginMetric {
    Kind kind;
    std::string name, labels, help;
    std::atomic<double> value{0};
    Histogram histogram;
  };
  // Entries below destination_count_ are complete (published with release) and never move.
  std::unique_ptr<Destination[]> destinations_{new Destination[kMaxDestinations]};
  std::atomic<size_t> destination_count_{0};
  mutable std::mutex destination_mu_;  // register_destination; render reads names under it
  // The same for plugin metrics: plugin threads update entries below plugin_metric_count_
  // without a lock while a plugin created later (a reload) registers more under plugin_mu_; a
  // growing container would move or reindex what they read.
  mutable std::mutex plugin_mu_;
  std::unique_ptr<PluginMetric[]> plugin_metrics_{new PluginMetric[kMaxPluginMetrics]};
  std::atomic<size_t> plugin_metric_count_{0};
};

}  // namespace rd
