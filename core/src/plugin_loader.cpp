#include "plugin_loader.hpp"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <map>

#include "logging.hpp"

namespace rd {
namespace fs = std::filesystem;

namespace {
bool valid_identifier(const char* s) {
  if (s == nullptr || *s == '\0') return false;
  for (const char* p = s; *p; ++p) {
    const char c = *p;
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return std::strlen(s) <= 64;
}

// The descriptor fields a host of ABI 1.0 needs: everything up to and including xDeliver.
constexpr size_t kMinDescriptorSize =
    offsetof(rd_plugin_descriptor, xDeliver) + sizeof(((rd_plugin_descriptor*)nullptr)->xDeliver);

std::string check_key_schema(const rd_config_key& k) {
  const std::string name = std::string("config key '") + k.name + "'";
  const bool ranged = k.type == RD_CONFIG_INT || k.type == RD_CONFIG_DURATION;
  if ((k.flags & ~(RD_CONFIG_REQUIRED | RD_CONFIG_HAS_MIN | RD_CONFIG_HAS_MAX)) != 0)
    return "declares " + name + " with unknown flags " + std::to_string(k.flags);
  if ((k.flags & (RD_CONFIG_HAS_MIN | RD_CONFIG_HAS_MAX)) != 0 && !ranged)
    return "declares a min/max on " + name + ", which is neither RD_CONFIG_INT nor DURATION";
  if ((k.flags & RD_CONFIG_HAS_MIN) != 0 && (k.flags & RD_CONFIG_HAS_MAX) != 0 &&
      k.min_value > k.max_value) {
    return "declares " + name + " with min_value " + std::to_string(k.min_value) +
           " above max_value " + std::to_string(k.max_value);
  }
  if (k.allowed_values != nullptr && k.type != RD_CONFIG_STRING && k.type != RD_CONFIG_LIST)
    return "declares allowed_values on " + name + ", which is neither RD_CONFIG_STRING nor LIST";
  return "";
}
}  // namespace

ValidateFn validate_fn(const rd_plugin_descriptor& d) {
  if (d.abi_minor < 2 || !RD_HAS_FIELD(&d, rd_plugin_descriptor, xValidate)) return nullptr;
  return d.xValidate;
}

std::string default_plugin_dir() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return "lib/route-delivery/plugins";
  return (exe.parent_path().parent_path() / "lib" / "route-delivery" / "plugins")
      .lexically_normal()
      .string();
}

std::string load_plugin_file(const std::string& path, LoadedPlugin& out) {
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* err = ::dlerror();
    return std::string("cannot be loaded: ") + (err ? err : "unknown dlopen error") +
           " (is it a plugin built for this platform, with its libraries installed?)";
  }
  // From here on the handle is kept even on refusal: unloading code that ran static constructors
  // is not safe in general, and a refused plugin costs only its mapping.
  ::dlerror();
  void* sym = ::dlsym(handle, RD_PLUGIN_ENTRY_SYMBOL);
  if (sym == nullptr) {
    return std::string("does not export ") + RD_PLUGIN_ENTRY_SYMBOL +
           "() (declare it with RD_PLUGIN_EXPORT from <route_delivery/plugin.h>)";
  }
  const rd_plugin_descriptor* d = nullptr;
  try {
    d = reinterpret_cast<rd_plugin_entry_fn>(sym)();
  } catch (...) {
    return std::string(RD_PLUGIN_ENTRY_SYMBOL) + "() threw an exception";
  }
  if (d == nullptr) return std::string(RD_PLUGIN_ENTRY_SYMBOL) + "() returned NULL";
  // Read abi_major before trusting struct_size: both live in the first 8 bytes every version has.
  if (d->abi_major != RD_ABI_VERSION_MAJOR) {
    return "was built for plugin ABI " + std::to_string(d->abi_major) + "." +
           std::to_string(d->abi_minor) + " but this host speaks ABI " +
           std::to_string(RD_ABI_VERSION_MAJOR) + "." + std::to_string(RD_ABI_VERSION_MINOR) +
           " (major versions must match: rebuild the plugin against this SDK)";
  }
  if (d->struct_size < kMinDescriptorSize) {
    return "has a descriptor of " + std::to_string(d->struct_size) + " bytes; ABI " +
           std::to_string(RD_ABI_VERSION_MAJOR) + "." + std::to_string(RD_ABI_VERSION_MINOR) +
           " needs at least " + std::to_string(kMinDescriptorSize) + " (plugin ABI " +
           std::to_string(d->abi_major) + "." + std::to_string(d->abi_minor) +
           "; set struct_size = sizeof(rd_plugin_descriptor))";
  }
  if (!valid_identifier(d->name))
    return "has an invalid name (want [a-z0-9_]+, at most 64 characters)";
  if (!valid_identifier(d->destination_type)) {
    return "has an invalid destination_type (want [a-z0-9_]+, at most 64 characters)";
  }
  if (d->xCreate == nullptr || d->xDestroy == nullptr || d->xDeliver == nullptr) {
    return "leaves xCreate, xDestroy or xDeliver NULL";
  }
  if (d->config_key_count > 0 && d->config_keys == nullptr)
    return "declares config keys but config_keys is NULL";
  if (d->abi_minor >= 2 && d->config_key_count > 0) {
    // The table's stride is the plugin's sizeof(rd_config_key): the same for every key, and at
    // least the 1.2 layout the plugin claims to know.
    const uint32_t stride = d->config_keys[0].struct_size;
    if (stride < kConfigKeySize12 || stride % alignof(rd_config_key) != 0) {
      return "declares config keys of " + std::to_string(stride) + " bytes; ABI 1." +
             std::to_string(d->abi_minor) + " needs at least " + std::to_string(kConfigKeySize12) +
             " (set struct_size = sizeof(rd_config_key) in every key)";
    }
    for (uint32_t i = 1; i < d->config_key_count; ++i) {
      const rd_config_key k = config_key_at(*d, i);
      if (k.struct_size != stride) {
        return "declares config key #" + std::to_string(i) + " of " +
               std::to_string(k.struct_size) + " bytes but key #0 of " + std::to_string(stride) +
               " (set struct_size = sizeof(rd_config_key) in every key)";
      }
    }
  }
  for (uint32_t i = 0; i < d->config_key_count; ++i) {
    const rd_config_key k = config_key_at(*d, i);
    if (k.struct_size < sizeof(uint32_t) + sizeof(int32_t) + sizeof(const char*) ||
        !valid_identifier(k.name)) {
      return "declares config key #" + std::to_string(i) + " with an invalid name or size";
    }
    if (k.type < RD_CONFIG_STRING || k.type > RD_CONFIG_SECRET) {
      return std::string("declares config key '") + k.name + "' with unknown type " +
             std::to_string(k.type);
    }
    if (std::string why = check_key_schema(k); !why.empty()) return why;
  }
  out.path = path;
  out.handle = handle;
  out.descriptor = d;
  out.name = d->name;
  out.version = d->version != nullptr ? d->version : "";
  out.destination_type = d->destination_type;
  out.description = d->description != nullptr ? d->description : "";
  out.abi_minor = d->abi_minor;
  return "";
}

PluginScan scan_plugins(const std::string& dir) {
  return scan_plugins(std::vector<std::string>{dir});
}

PluginScan scan_plugins(const std::vector<std::string>& dirs) {
  PluginScan scan;
  std::vector<std::string> files;
  for (size_t i = 0; i < dirs.size(); ++i) {
    const std::string& dir = dirs[i];
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
      throw PluginError("plugin folder '" + dir + "' does not exist (set " +
                        (i == 0 ? "plugins.dir or PLUGIN_DIR" : "plugins.dirs or PLUGIN_DIRS") +
                        " to folders holding the *.so files)");
    }
    std::vector<std::string> here;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      if (entry.path().extension() == ".so" && (entry.is_regular_file() || entry.is_symlink())) {
        here.push_back(entry.path().string());
      }
    }
    std::sort(here.begin(), here.end());
    files.insert(files.end(), here.begin(), here.end());
  }
  const std::string dir = dirs.size() == 1 ? dirs[0] : "the plugin folders";
  std::map<std::string, std::string> by_type, by_name;
  for (const auto& file : files) {
    LoadedPlugin p;
    const std::string reason = load_plugin_file(file, p);
    if (!reason.empty()) {
      log::error("plugin_refused", {log::kv("file", file), log::kv("reason", reason)});
      scan.refused.push_back({file, reason});
      continue;
    }
    if (auto it = by_type.find(p.destination_type); it != by_type.end()) {
      throw PluginError("two plugins claim destination_type '" + p.destination_type + "': " +
                        it->second + " and " + file + " (remove one of them from " + dir + ")");
    }
    if (auto it = by_name.find(p.name); it != by_name.end()) {
      throw PluginError("two plugins are named '" + p.name + "': " + it->second + " and " + file +
                        " (remove one of them from " + dir + ")");
    }
    by_type[p.destination_type] = file;
    by_name[p.name] = file;
    if (p.abi_minor > RD_ABI_VERSION_MINOR) {
      log::info("plugin_newer_minor",
                {log::kv("file", file), log::kv("plugin_abi_minor", p.abi_minor),
                 log::kv("host_abi_minor", RD_ABI_VERSION_MINOR)});
    }
    log::info("plugin_loaded",
              {log::kv("file", file), log::kv("name", p.name), log::kv("version", p.version),
               log::kv("destination_type", p.destination_type)});
    scan.loaded.push_back(std::move(p));
  }
  return scan;
}

}  // namespace rd
