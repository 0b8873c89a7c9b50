#include "reload.hpp"

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "consumer.hpp"
#include "duration.hpp"
#include "logging.hpp"
#include "plugin_loader.hpp"
#include "preflight.hpp"
#include "retry_policy.hpp"

namespace rd {
namespace {

// Applied by a reload (docs/configuration.md marks them "reload: yes"); every other core key
// needs a restart. Not here: delivery.max_in_flight and delivery.max_waiting size the in-flight
// table, nats.* else is the connection and the server's consumer, dead_letter.* the sink and its
// threads, http.* the listener, plugins.dir(s) where plugins come from.
const std::set<std::string> kReloadable = {
    "log.level",
    "log.format",
    "delivery.timeout",
    "delivery.queue_timeout",
    "delivery.give_up_after",
    "delivery.defer_delay",
    "delivery.max_defer_delay",
    "delivery.max_job_bytes",
    "delivery.max_in_flight_per_destination",
    "delivery.circuit.failures",
    "delivery.circuit.probe_interval",
    "delivery.shutdown_grace",
    "nats.backoff",
    "nats.max_backoff",
};

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

// The configuration the consumer's limits follow: the started one, with the reloadable delivery
// keys of `next`.
Config with_limits(const Config& started, const Config& next) {
  Config c = started;
  const Config::Delivery& n = next.delivery;
  Config::Delivery& d = c.delivery;
  d.timeout_ms = n.timeout_ms;
  d.queue_timeout_ms = n.queue_timeout_ms;
  d.give_up_after_ms = n.give_up_after_ms;
  d.defer_delay_ms = n.defer_delay_ms;
  d.max_defer_delay_ms = n.max_defer_delay_ms;
  d.max_job_bytes = n.max_job_bytes;
  d.circuit_failures = n.circuit_failures;
  d.circuit_probe_interval_ms = n.circuit_probe_interval_ms;
  d.shutdown_grace_ms = n.shutdown_grace_ms;
  c.nats.backoff_ms = next.nats.backoff_ms;
  c.nats.max_backoff_ms = next.nats.max_backoff_ms;
  // 0 (the default) is a quarter of delivery.max_in_flight: of the one in force, which only a
  // restart changes.
  d.max_in_flight_per_destination = n.max_in_flight_per_destination;
  for (const auto& [key, value] : next.effective) {
    if (key == "delivery.max_in_flight_per_destination" && !value.items.empty() &&
        value.items.front() == "0") {
      d.max_in_flight_per_destination = std::max(1, started.delivery.max_in_flight / 4);
    }
  }
  return c;
}

// How long a reload waits for a call into a plugin it re-creates to return.
constexpr int64_t kPluginCallWaitMs = 5000;

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

  // Restart-only keys are compared with the started configuration (named on every reload until
  // a restart), reloadable ones with the configuration the last reload applied.
  std::vector<std::string> restart;
  std::vector<std::string> applied;
  bool plugin_folder_changed = false;
  for (const auto& key : changed_keys(t.started, next)) {
    if (kReloadable.count(key) > 0) continue;
    restart.push_back(key);
    if (key == "plugins.dir" || key == "plugins.dirs") plugin_folder_changed = true;
  }
  for (const auto& key : changed_keys(t.current, next)) {
    if (kReloadable.count(key) > 0) applied.push_back(key);
  }
  // A running plugin whose section changed gets a new instance; new plugin files are added.
  struct Replacement {
    ActivePlugin* running;
    const ActivePlugin* validated;
    void* instance = nullptr;
  };
  std::vector<Replacement> replaced;
  std::vector<const ActivePlugin*> added;
  for (const ActivePlugin* p : scratch.all()) {
    ActivePlugin* running = t.plugins.by_name(p->info.name);
    if (running != nullptr) {
      // Values compared, never logged: a section may hold secrets.
      if (running->config.json == p->config.json && running->config.isolated == p->config.isolated)
        continue;
      if (plugin_folder_changed || running->isolated != nullptr ||
          running->config.isolated != p->config.isolated ||
          running->info.descriptor != p->info.descriptor) {
        // Validated against another file's keys than the running plugin's, or run in a child
        // process (its proxy is not re-created while it runs): applied by a restart.
        restart.push_back("plugins." + p->info.name);
        continue;
      }
      replaced.push_back({running, p});
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

  // Everything that can fail comes first, so a failure changes nothing: the new instances of
  // changed sections (the running ones keep serving meanwhile), then the new plugins.
  auto drop_replacements = [&] {
    for (Replacement& r : replaced) {
      if (r.instance != nullptr) t.plugins.destroy_instance(*r.running, r.instance);
      r.instance = nullptr;
    }
  };
  for (Replacement& r : replaced) {
    try {
      r.instance = t.plugins.create_instance(*r.running, r.validated->config);
    } catch (const std::exception& e) {
      drop_replacements();
      fail(t.metrics, file,
           std::string(e.what()) + "; plugin '" + r.running->info.name +
               "' keeps its running instance and configuration");
      return false;
    }
  }
  // A replaced plugin's calls wait from here until its instance is switched. A call under way is
  // waited for, but not for long: xDeliver must not block, and one that does must hold up
  // neither this reload nor a SIGTERM behind it (the signal thread runs both).
  size_t held = 0;
  auto release_held = [&] {
    for (size_t i = 0; i < held; ++i) t.consumer.release_calls(*replaced[i].running);
    held = 0;
  };
  for (; held < replaced.size(); ++held) {
    ActivePlugin& p = *replaced[held].running;
    if (!t.consumer.hold_calls(p, kPluginCallWaitMs)) {
      release_held();
      drop_replacements();
      fail(t.metrics, file,
           "plugin '" + p.info.name + "' has been inside a call (xDeliver or xDestination) for " +
               "over " + format_duration_ms(kPluginCallWaitMs) +
               ", so its instance cannot be switched; it keeps its running instance and "
               "configuration (a plugin must not block in xDeliver: see plugin_deliver_slow in "
               "the log); send SIGHUP again once the call has returned");
      return false;
    }
  }
  std::vector<std::string> names;
  try {
    names = t.plugins.add(added, t.metrics, &t.consumer, next.log.format != "text",
                          [&](ActivePlugin& p) { t.consumer.add_lane(p); });
  } catch (const std::exception& e) {
    release_held();
    drop_replacements();
    fail(t.metrics, file, e.what());
    return false;
  }

  // Applied from here on; nothing below fails.
  std::vector<std::string> reconfigured;
  for (Replacement& r : replaced) {
    t.consumer.replace_instance(*r.running, r.instance);
    r.running->config = r.validated->config;
    reconfigured.push_back(r.running->info.name);
    applied.push_back("plugins." + r.running->info.name);
  }
  release_held();
  const Config limits = with_limits(t.started, next);
  const int64_t needed_before = jetstream_max_deliver(with_limits(t.started, t.current));
  t.consumer.apply_limits(limits);
  t.current = next;
  // The server's consumer keeps the max_deliver it was created with: a longer wait for jobs
  // (delivery.give_up_after, delivery.max_defer_delay) may need more deliveries than it allows.
  const int64_t needed = jetstream_max_deliver(limits);
  const int64_t server = t.consumer.jetstream_max_deliver();
  if (needed > needed_before && server > 0 && server < needed) {
    log::warn("reload_consumer_max_deliver_low",
              {log::kv("max_deliver", server), log::kv("needed", needed),
               log::kv("effect",
                       "jobs deferred for long reach JetStream's max_deliver before "
                       "delivery.give_up_after and are dead-lettered with that reason"),
               log::kv("fix", "raise the consumer's max_deliver (nats consumer edit " +
                                  t.started.nats.stream + " " + t.started.nats.consumer +
                                  " --max-deliver " + std::to_string(needed) + ")")});
  }

  // The confirmation is logged at whichever of the two levels shows it.
  const log::Level level = log::parse_level(next.log.level);
  const log::Format format = next.log.format == "text" ? log::Format::text : log::Format::json;
  const bool info_hidden_now = !log::enabled(log::Level::info);
  if (info_hidden_now) log::init(level, format);
  t.metrics.reloads_ok.fetch_add(1, std::memory_order_relaxed);
  log::info("reload_applied",
            {log::kv("applied", join(applied)), log::kv("log_level", next.log.level),
             log::kv("log_format", next.log.format), log::kv("plugins_added", join(names)),
             log::kv("plugins_reconfigured", join(reconfigured)),
             log::kv("plugins", t.plugins.destination_types())});
  if (!info_hidden_now) log::init(level, format);
  if (!restart.empty()) {
    log::warn("reload_restart_needed",
              {log::kv("keys", join(restart)),
               log::kv("effect", "not applied; they take effect when the service is restarted")});
  }
  return true;
}

}  // namespace rd
