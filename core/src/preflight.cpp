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
  const std::string dir = config.plugins.dir.empty() ? default_plugin_dir() : config.plugins.dir;
  try {
    // Plugins are not started when start-up is going to refuse anyway.
    plugins.init(scan_plugins(plugin_dirs(config)), config, env, metrics, config.nats.ack_wait_ms,
                 create && errors.empty());
    // A daemon with no plugin can only dead-letter: almost always a wrong plugins.dir.
    if (plugins.all().empty() && !config.plugins.allow_none) {
      add(("no plugin loaded from " + dir + " (" + config.origin_of("plugins.dir") +
           "): put plugin .so files there, point plugins.dir / PLUGIN_DIR at the folder that "
           "holds them (`route-delivery plugins` lists what loads and what is refused), or set "
           "plugins.allow_none: true (PLUGINS_ALLOW_NONE) to run a daemon that dead-letters "
           "every job")
              .c_str());
    }
  } catch (const std::exception& e) {
    add(e.what());
  }
  if (!errors.empty()) throw ConfigError(errors);
}

}  // namespace rd
