#include "preflight.hpp"

#include <string>
#include <utility>

#include "nats_client.hpp"
#include "plugin_loader.hpp"

namespace rd {

void preflight(const Config& config, const Environment& env, Metrics& metrics, PluginSet& plugins,
               bool create) {
  std::string errors;
  auto add = [&](const char* what) { errors += (errors.empty() ? "" : "\n") + std::string(what); };
  try {
    check_nats_options(config.nats);
  } catch (const std::exception& e) {
    add(e.what());
  }
  try {
    // Plugins are not started when start-up is going to refuse anyway.
    plugins.init(scan_plugins(plugin_dirs(config)), config, env, metrics, config.nats.ack_wait_ms,
                 create && errors.empty());
  } catch (const std::exception& e) {
    add(e.what());
  }
  if (!errors.empty()) throw ConfigError(errors);
}

}  // namespace rd
