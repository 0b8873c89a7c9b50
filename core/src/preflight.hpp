// The start-up checks beyond the config file itself, shared by the daemon and --check-config so
// the two cannot disagree.
#pragma once

#include "config.hpp"
#include "metrics.hpp"
#include "plugin_host.hpp"

namespace rd {

// Builds the NATS connection options (TLS files, nkey seed, credentials file) without
// connecting, scans the plugin folder and validates every plugins.<name> section against the
// loaded plugins (unknown sections included). With `create` the plugins are then created
// (xCreate); without, nothing of theirs runs but loading. Throws ConfigError with one line per
// problem. The daemon runs this before it connects anywhere and exits 2 when it throws;
// --check-config runs it with create = false and exits 2 the same way.
void preflight(const Config& config, const Environment& env, Metrics& metrics, PluginSet& plugins,
               bool create);

}  // namespace rd
