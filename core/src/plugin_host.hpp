// The host services table handed to each plugin, and the running plugin instances.
#pragma once

#include <route_delivery/plugin.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config.hpp"
#include "metrics.hpp"
#include "plugin_loader.hpp"

namespace rd {

// Receives plugin completions (implemented by the Consumer).
class CompletionHandler {
 public:
  virtual ~CompletionHandler() = default;
  // `from` is the handle of the plugin that completed (its name and metrics), or nullptr when the
  // host completes a delivery on the plugin's behalf.
  virtual void on_complete(uint64_t delivery_id, const rd_result* result,
                           const rd_host* from) noexcept = 0;
  // The plugin is about to send the job (ABI 1.1 `started`): its delivery timeout starts now.
  // False: the job is withdrawn (its destination's circuit opened); the plugin defers it unsent.
  virtual bool on_started(uint64_t delivery_id) noexcept = 0;
};

}  // namespace rd

// Definition of the SDK's opaque handle: one per plugin, so logs and metrics carry its name.
struct rd_host {
  rd_host_services services{};
  std::string plugin_name;
  rd::Metrics* metrics = nullptr;
  size_t metrics_index = 0;  // the plugin's destination entry in Metrics
  // Set once the plugin has been warned about a non-OK result without a reason (logged once).
  std::atomic<bool> warned_missing_reason{false};
  std::atomic<rd::CompletionHandler*> completion{nullptr};
};

namespace rd {

struct ActivePlugin {
  LoadedPlugin info;
  std::unique_ptr<rd_host> host;
  void* instance = nullptr;
  size_t metrics_index = 0;
  int index = -1;  // position in the PluginSet: names it in crash reports (crash_report.hpp)
  PluginConfig config;

  // Calls xHealth (if any); true when the plugin can deliver.
  bool health(std::string& detail) const;
};

// The folders plugins are loaded from: plugins.dir (or the bundled folder next to the
// executable), then each of plugins.dirs.
std::vector<std::string> plugin_dirs(const Config& config);
// "a, b" for messages.
std::string plugin_dirs_text(const Config& config);

class PluginSet {
 public:
  PluginSet() = default;
  ~PluginSet();
  PluginSet(const PluginSet&) = delete;
  PluginSet& operator=(const PluginSet&) = delete;

  // Validates each loaded plugin's config section (throws ConfigError) and, when `create` is
  // true, calls xCreate (throws PluginError naming the plugin and its message).
  void init(PluginScan scan, const Config& config, const Environment& env, Metrics& metrics,
            int64_t ack_wait_ms, bool create);
  // Points every plugin's completions at `handler`.
  void set_completion_handler(CompletionHandler* handler);
  // Plugin serving `destination_type`, or nullptr.
  ActivePlugin* find(const std::string& destination_type);
  const std::vector<std::unique_ptr<ActivePlugin>>& all() const { return plugins_; }
  std::string destination_types() const;  // "webhook, mqtt_republish" for error messages
  // Calls xDestroy on every instance (idempotent).
  void destroy_all();

 private:
  std::vector<std::unique_ptr<ActivePlugin>> plugins_;
  std::map<std::string, ActivePlugin*> by_type_;
};

}  // namespace rd
