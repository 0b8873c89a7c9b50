// route-delivery plugin test harness, installed with the SDK (target RouteDelivery::plugin_harness;
// C++17, no test framework needed: use it from GoogleTest, Catch2 or a plain main()).
//
// Loads one plugin .so through the public C ABI (dlopen, rd_plugin_entry, xCreate) with a
// recording fake host, for plugin-level tests that talk to a real destination server without
// running the whole daemon. It does not validate config: pass xCreate the full JSON object the
// host would (every declared key present, durations in milliseconds). For the contract itself
// (exactly-once completion, non-blocking xDeliver, destroy with work outstanding, exports), run
// `route-delivery plugin-test FILE.so`.
//
//   rd::harness::PluginHarness h("build/my_plugin.so", R"({"output":""})");
//   rd::harness::JobSpec job;   // tenant-a, route 1, a small payload, ROUTES:1, attempt 1 of 3
//   auto r = h.deliver_sync(job);           // nullopt: never completed within 30 s
//   if (!r || r->outcome != RD_OUTCOME_OK || r->completions != 1) return 1;
#pragma once

#include <route_delivery/plugin.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace rd::harness {

struct JobSpec {
  std::string tenant_id = "tenant-a";
  int64_t route_id = 1;
  std::string topic = "tenant-a/dev-1/telemetry";
  std::string payload_json = R"({"device_id":"dev-1","temp":21.5})";
  std::string destination_config_json = "{}";
  std::string message_id = "ROUTES:1";
  uint32_t attempt = 1;
  uint32_t max_attempts = 3;
  int64_t timeout_ms = 30000;
};

struct PluginResult {
  int32_t outcome = -1;  // RD_OUTCOME_*
  int64_t retry_after_ms = -1;
  std::string reason;
  int completions = 0;  // how many times complete() was called for this delivery
};

class PluginHarness {
 public:
  // dlopen()s `so_path`, checks the descriptor and calls xCreate with `config_json`.
  // Throws std::runtime_error with the plugin's create error on failure.
  PluginHarness(const std::string& so_path, const std::string& config_json);
  ~PluginHarness();  // xDestroy (not dlclose: plugins are never unloaded)
  PluginHarness(const PluginHarness&) = delete;
  PluginHarness& operator=(const PluginHarness&) = delete;

  const rd_plugin_descriptor& descriptor() const { return *desc_; }

  // Starts a delivery; the job's strings are kept alive by the harness until completion.
  uint64_t deliver(const JobSpec& job);
  // Waits for the delivery's first completion; nullopt on timeout.
  std::optional<PluginResult> wait(uint64_t id,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(30));
  std::optional<PluginResult> deliver_sync(
      const JobSpec& job, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    return wait(deliver(job), timeout);
  }
  bool health(std::string& detail);
  // Whether the plugin called services->started for `id` (ABI 1.1), and when (monotonic ns).
  bool started(uint64_t id) const;
  // From now on `started` answers 0 (the host withdrew the job: the plugin must defer it unsent).
  void withdraw_on_start(bool on) {
    std::lock_guard<std::mutex> lock(mu_);
    withdraw_ = on;
  }
  // The plugin's destination key for `job` (xDestination), or "" when it has none.
  std::string destination(const JobSpec& job);

  std::vector<std::string> logs() const;
  // Metric value by "name{labels}" as registered (counters: sum; gauges: last; histograms: count).
  std::map<std::string, double> metrics() const;

 private:
  struct OwnedJob {
    JobSpec spec;
    rd_job job{};
  };
  static void fill(OwnedJob& owned);
  static void on_complete(rd_host* host, uint64_t id, const rd_result* r);
  static int32_t on_started(rd_host* host, uint64_t id);
  static void on_log(rd_host* host, int32_t level, const char* msg);
  static uint64_t on_mono(rd_host*);
  static int64_t on_wall(rd_host*);
  static int32_t on_register(rd_host* host, const char* name, const char* labels, const char* help);
  static void on_add(rd_host* host, int32_t handle, double v);
  static void on_set(rd_host* host, int32_t handle, double v);
  static void on_observe(rd_host* host, int32_t handle, double v);

  void* handle_ = nullptr;
  const rd_plugin_descriptor* desc_ = nullptr;
  void* instance_ = nullptr;
  rd_host_services services_{};

  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t next_id_ = 1;
  std::map<uint64_t, std::unique_ptr<OwnedJob>> jobs_;
  std::map<uint64_t, PluginResult> results_;
  std::map<uint64_t, int> started_;  // delivery id -> started() calls
  bool withdraw_ = false;
  std::vector<std::string> logs_;
  std::vector<std::string> metric_names_;
  std::vector<double> metric_values_;
};

}  // namespace rd::harness
