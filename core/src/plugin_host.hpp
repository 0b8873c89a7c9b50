// The host services table handed to each plugin, and the running plugin instances.
#pragma once

#include <route_delivery/plugin.h>

#include <array>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config.hpp"
#include "isolated_plugin.hpp"
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
  // The instance new jobs go to. A reload that changes plugins.<name> re-creates it
  // (PluginSet::create_instance, then Consumer::replace_instance): the store happens under the
  // plugin's lane call mutex, so a call into the plugin (xDestination, xDeliver) reads it once
  // and uses one instance throughout. Other readers (xHealth, place()) load it with acquire.
  std::atomic<void*> instance{nullptr};
  size_t metrics_index = 0;
  int index = -1;       // position in the PluginSet: names it in crash reports (crash_report.hpp)
  PluginConfig config;  // the section `instance` was created with; written by the reload thread
  // plugins.<name>.isolation: process: the proxy that runs it in a child process. Its descriptor
  // replaces info.descriptor once created, and `instance` is the proxy, so the consumer calls an
  // isolated plugin as any other. Kept (stopped) after xDestroy until the entry goes.
  std::unique_ptr<IsolatedPlugin> isolated;

  // Calls xHealth (if any); true when the plugin can deliver.
  bool health(std::string& detail) const;

  // Held across xHealth, and across xDestroy of an instance a reload replaced, so /health never
  // calls into an instance being destroyed.
  mutable std::mutex health_mu;
};

// The folders plugins are loaded from: plugins.dir (or the bundled folder next to the
// executable), then each of plugins.dirs.
std::vector<std::string> plugin_dirs(const Config& config);
// "a, b" for messages.
std::string plugin_dirs_text(const Config& config);

// The running plugins. A fixed-capacity table published with atomics: a SIGHUP reload appends a
// plugin while the consumer's threads look plugins up per job, without a lock on their side.
// Entries below the published count are complete and never change or move (until destroy_all at
// shutdown); writers (init, add) are serialised by write_mu_.
class PluginSet {
 public:
  static constexpr size_t kMaxPlugins = 64;  // as many as a crash report can name

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
  // Plugin serving `destination_type`, or nullptr. Lock-free; safe while add() runs.
  ActivePlugin* find(const std::string& destination_type) const;
  // The plugins published so far (a snapshot).
  std::vector<ActivePlugin*> all() const;
  ActivePlugin* by_name(const std::string& name) const;
  std::string destination_types() const;  // "webhook, mqtt_republish" for error messages

  // Reload (SIGHUP): `validated` are plugins of a preflight run on the new configuration
  // (loaded and their sections resolved, not created) that this set does not hold yet. Each is
  // created (xCreate) with completions to `handler`; when one fails the ones created before it
  // are destroyed again, nothing is published, and PluginError says which failed and why. Then,
  // for each in turn, `before_publish` runs (the consumer gives it a lane) and the plugin becomes
  // findable. Returns the names added.
  std::vector<std::string> add(const std::vector<const ActivePlugin*>& validated, Metrics& metrics,
                               CompletionHandler* handler, bool json_crash_log,
                               const std::function<void(ActivePlugin&)>& before_publish);

  // Reload (SIGHUP) of a running plugin's changed section: a second instance of `plugin`
  // created (xCreate) with `config` and the plugin's own services table (completions, metrics:
  // registering a metric again returns the same handle). Nothing is published: the caller hands
  // it to Consumer::replace_instance, or destroys it (destroy_instance) when the reload fails.
  // Throws PluginError naming the plugin and its message.
  void* create_instance(const ActivePlugin& plugin, const PluginConfig& config) const;
  // xDestroy of an instance of `plugin` that no job and no call uses any more (one that never
  // took a job, or a replaced one once drained); under plugin.health_mu.
  void destroy_instance(const ActivePlugin& plugin, void* instance) const;

  // Calls xDestroy on every instance (idempotent).
  void destroy_all();

 private:
  void refresh_crash_report(const std::vector<ActivePlugin*>& extra, bool json) const;

  std::array<std::unique_ptr<ActivePlugin>, kMaxPlugins> plugins_;
  std::atomic<size_t> count_{0};
  std::mutex write_mu_;
};

}  // namespace rd
