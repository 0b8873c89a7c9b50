// `route-delivery plugin-test FILE.so [--config FILE]`: runs one plugin through the contract of
// <route_delivery/plugin.h> inside this process, with the host's own loader, config validation
// and services, and no NATS: a plugin author's check before dropping a .so into the folder.
#pragma once

#include <string>

#include "config.hpp"

namespace rd {

// Prints one line per rule ("PASS <rule>" or "FAIL <rule>: <what broke>") and returns 0 when
// every rule held, 1 when one broke, 2 when the plugin cannot be loaded or configured at all.
// The plugin's section plugins.<name> comes from `config` (and the environment), as in the daemon.
int cli_plugin_test(const std::string& so_path, const Config& config, const Environment& env);

}  // namespace rd
