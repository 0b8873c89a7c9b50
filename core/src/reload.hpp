// SIGHUP: re-read the configuration (same file, the process environment), validate it as start-up
// and --check-config do, and apply what can change while jobs flow.
#pragma once

#include "config.hpp"
#include "metrics.hpp"
#include "plugin_host.hpp"

namespace rd {

class Consumer;

// What a reload may touch. `started` is the configuration the daemon started with: the consumer,
// the NATS client and the endpoints hold it by reference, so it is never replaced. `current` is
// the configuration the last reload applied (a copy of `started` at first), so `reload_applied`
// names what changed since then.
struct ReloadTargets {
  const Config& started;
  Config& current;
  PluginSet& plugins;
  Consumer& consumer;
  Metrics& metrics;
};

// Loads started.file with the process environment and runs preflight() on it (no plugin is
// created). A configuration that fails changes nothing: one `reload_failed` error line says why
// (file:line, as --check-config) and that the running configuration stays in force. Otherwise:
//   - a running plugin whose plugins.<name> section changed gets a new instance (xCreate with the
//     new section) that takes its new jobs; the old one finishes the jobs it holds and is
//     destroyed once it holds none (Consumer::replace_instance). When an xCreate fails the
//     reload fails naming the plugin, and the running instances stay;
//   - plugin files that appeared in the plugin folders are created (all of them, or none when one
//     fails xCreate) and then receive jobs for their destination_type;
//   - log.level, log.format and the delivery limits in kReloadable (reload.cpp) are applied;
//   - every other changed key (nats.* but the back-off, delivery.max_in_flight,
//     delivery.max_waiting, http.*, dead_letter.*, plugins.dir(s)) is named in one
//     `reload_restart_needed` warning and not applied.
// `reload_applied` names the keys and plugin sections applied (values are never logged: some are
// secrets). Counted in route_delivery_reloads_total. Returns true when applied. Call from one
// thread.
bool reload_config(const ReloadTargets& targets);

}  // namespace rd
