// SIGHUP: re-read the configuration (same file, the process environment), validate it as start-up
// and --check-config do, and apply what can change while jobs flow.
#pragma once

#include "config.hpp"
#include "metrics.hpp"
#include "plugin_host.hpp"

namespace rd {

class Consumer;

// What a reload may touch. `started` is the configuration the daemon started with: the consumer,
// the NATS client and the endpoints hold it by reference, so it is never replaced.
struct ReloadTargets {
  const Config& started;
  PluginSet& plugins;
  Consumer& consumer;
  Metrics& metrics;
};

// Loads started.file with the process environment and runs preflight() on it (no plugin is
// created). A configuration that fails changes nothing: one `reload_failed` error line says why
// (file:line, as --check-config) and that the running configuration stays in force. Otherwise:
//   - log.level and log.format are applied;
//   - plugin files that appeared in the plugin folders are created (all of them, or none when one
//     fails xCreate) and then receive jobs for their destination_type;
//   - every other changed key (nats.*, delivery.*, http.*, dead_letter.*, plugins.dir(s), and a
//     changed plugins.<name> section of a running plugin) is named in one
//     `reload_restart_needed` warning and not applied.
// Counted in route_delivery_reloads_total. Returns true when applied. Call from one thread.
bool reload_config(const ReloadTargets& targets);

}  // namespace rd
