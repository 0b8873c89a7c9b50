#include "reload.hpp"

#include <set>
#include <string>
#include <vector>

#include "consumer.hpp"
#include "logging.hpp"
#include "plugin_loader.hpp"
#include "preflight.hpp"

namespace rd {
namespace {

// Applied by a reload; every other core key needs a restart.
const std::set<std::string> kReloadable = {"log.level", "log.format"};

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
  return out.empty() ? "none" : out;
}

bool same(const RawValue& a, const RawValue& b) {
  return a.items == b.items && a.is_list == b.is_list;
}

// Core keys whose effective value differs (values compared, never logged: some are secrets).
std::vector<std::string> changed_keys(const Config& running, const Config& next) {
  std::vector<std::string> out;
  for (const auto& [key, value] : next.effective) {
    bool found = false;
    for (const auto& [k, v] : running.effective) {
      if (k != key) continue;
      found = true;
      if (!same(v, value)) out.push_back(key);
      break;
    }
    if (!found) out.push_back(key);
  }
  return out;
}

void fail(Metrics& metrics, const std::string& file, const std::string& error) {
  metrics.reloads_failed.fetch_add(1, std::memory_order_relaxed);
  log::error("reload_failed",
             {log::kv("config", file.empty() ? std::string("(none: environment only)") : file),
              log::kv("error", error),
              log::kv("effect", "nothing changed; the running configuration stays in force")});
}

}  // namespace

bool reload_config(const ReloadTargets& t) {
  const std::string& file = t.started.file;
  log::info("reload_requested",
            {log::kv("config", file.empty() ? std::string("(none: environment only)") : file)});
  const Environment env = process_environment();
  Config next;
  // The same checks as start-up and --check-config, on plugins loaded but not created.
  Metrics scratch_metrics;
  PluginSet scratch;
  try {
    next = load_config(file, env);
    preflight(next, env, scratch_metrics, scratch, false);
  } catch (const std::exception& e) {
    fail(t.metrics, file, e.what());
    return false;
  }

  std::vector<std::string> restart;
  bool plugin_folder_changed = false;
  for (const auto& key : changed_keys(t.started, next)) {
    if (kReloadable.count(key) > 0) continue;
    restart.push_back(key);
    if (key == "plugins.dir" || key == "plugins.dirs") plugin_folder_changed = true;
  }
  // Running plugins keep their instance: a changed section is applied by a restart.
  std::vector<const ActivePlugin*> added;
  for (const ActivePlugin* p : scratch.all()) {
    const ActivePlugin* running = t.plugins.by_name(p->info.name);
    if (running != nullptr) {
      if (running->config.json != p->config.json || running->config.isolated != p->config.isolated)
        restart.push_back("plugins." + p->info.name);
      continue;
    }
    if (plugin_folder_changed) continue;  // loaded from the folders the daemon started with only
    if (const ActivePlugin* other = t.plugins.find(p->info.destination_type)) {
      // Another running plugin serves its type (its file was replaced under another name).
      restart.push_back("plugin " + p->info.path + " (destination_type '" +
                        p->info.destination_type + "' is served by '" + other->info.name + "')");
      continue;
    }
    added.push_back(p);
  }

  std::vector<std::string> names;
  try {
    names = t.plugins.add(added, t.metrics, &t.consumer, next.log.format != "text",
                          [&](ActivePlugin& p) { t.consumer.add_lane(p); });
  } catch (const std::exception& e) {
    fail(t.metrics, file, e.what());
    return false;
  }

  // The confirmation is logged at whichever of the two levels shows it.
  const log::Level level = log::parse_level(next.log.level);
  const log::Format format = next.log.format == "text" ? log::Format::text : log::Format::json;
  const bool info_hidden_now = !log::enabled(log::Level::info);
  if (info_hidden_now) log::init(level, format);
  t.metrics.reloads_ok.fetch_add(1, std::memory_order_relaxed);
  log::info(
      "reload_applied",
      {log::kv("log_level", next.log.level), log::kv("log_format", next.log.format),
       log::kv("plugins_added", join(names)), log::kv("plugins", t.plugins.destination_types())});
  if (!info_hidden_now) log::init(level, format);
  if (!restart.empty()) {
    log::warn("reload_restart_needed",
              {log::kv("keys", join(restart)),
               log::kv("effect", "not applied; they take effect when the service is restarted")});
  }
  return true;
}

}  // namespace rd
