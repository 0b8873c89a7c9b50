// Plugin loading: scan the plugin folder, dlopen each *.so (RTLD_NOW | RTLD_LOCAL), validate its
// descriptor against the host ABI, and refuse (with a log line naming the file and the reason) any
// plugin that does not fit. Plugins are never unloaded.
#pragma once

#include <route_delivery/plugin.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "config_key_layout.hpp"  // config_key_at: how the loader's callers read declared keys

// The host side of the opaque rd_host handle given to each plugin (defined in plugin_host.cpp).
struct rd_host;

namespace rd {

class PluginError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct LoadedPlugin {
  std::string path;
  void* handle = nullptr;  // dlopen handle; deliberately never dlclose()d
  const rd_plugin_descriptor* descriptor = nullptr;
  std::string name, version, destination_type, description;
  uint32_t abi_minor = 0;
};

struct RefusedPlugin {
  std::string path;
  std::string reason;
};

struct PluginScan {
  std::vector<LoadedPlugin> loaded;
  std::vector<RefusedPlugin> refused;
};

// The folder next to the executable: <exe dir>/../lib/route-delivery/plugins.
std::string default_plugin_dir();

// The plugin's xValidate (ABI 1.2), or nullptr when it has none or predates 1.2.
using ValidateFn = int32_t (*)(const char*, char*, size_t);
ValidateFn validate_fn(const rd_plugin_descriptor& d);

// Loads one file; returns the reason it was refused, or "" on success.
std::string load_plugin_file(const std::string& path, LoadedPlugin& out);

// Loads every *.so in `dir` (sorted by name). Refused plugins are logged and listed; two plugins
// with one destination_type or one name throw PluginError naming both files. A missing folder
// throws PluginError too.
PluginScan scan_plugins(const std::string& dir);
// The same over several folders, in order (each sorted by name); the duplicate checks span them
// all, so a third-party folder cannot shadow a bundled plugin.
PluginScan scan_plugins(const std::vector<std::string>& dirs);

}  // namespace rd
