#include "plugin_host.hpp"

#include <time.h>

#include <algorithm>
#include <cstdio>

#include "crash_report.hpp"
#include "logging.hpp"

namespace rd {
namespace {

// Every function here is called by plugin code: none may throw.
// A non-OK result should say why: the operator reads it in the dead-letter record. Without one the
// host records a generic reason ("retry requested", "permanent failure"), and says so once per
// plugin so its author can tell the reason was missing rather than the plugin's own text.
void warn_missing_reason(rd_host* host, const rd_result* result) noexcept {
  if (result->outcome == RD_OUTCOME_OK) return;
  const bool has_reason = RD_HAS_FIELD(result, rd_result, reason_len) &&
                          result->reason != nullptr && result->reason_len > 0;
  if (has_reason || host->warned_missing_reason.exchange(true, std::memory_order_relaxed)) return;
  try {
    log::warn("plugin_result_without_reason",
              {log::kv("plugin", host->plugin_name), log::kv("outcome", result->outcome),
               log::kv("effect",
                       "recorded with a generic reason (retry requested, destination unavailable, "
                       "permanent failure); logged once per plugin"),
               log::kv("fix", "set rd_result.reason and reason_len on every non-OK result")});
  } catch (...) {
  }
}

void host_complete(rd_host* host, uint64_t delivery_id, const rd_result* result) noexcept {
  if (host == nullptr || result == nullptr) return;
  warn_missing_reason(host, result);
  if (auto* handler = host->completion.load(std::memory_order_acquire))
    handler->on_complete(delivery_id, result, host);
}

int32_t host_started(rd_host* host, uint64_t delivery_id) noexcept {
  if (host == nullptr) return 1;
  if (auto* handler = host->completion.load(std::memory_order_acquire))
    return handler->on_started(delivery_id) ? 1 : 0;
  return 1;
}

void host_log(rd_host* host, int32_t level, const char* message) noexcept {
  try {
    const log::Level l = level <= RD_LOG_DEBUG  ? log::Level::debug
                         : level == RD_LOG_INFO ? log::Level::info
                         : level == RD_LOG_WARN ? log::Level::warn
                                                : log::Level::error;
    if (!log::enabled(l)) return;
    log::write(l, "plugin_log",
               {log::kv("plugin", host->plugin_name), log::kv("message", message ? message : "")});
  } catch (...) {
  }
}

uint64_t host_monotonic_ns(rd_host*) noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

int64_t host_wall_ms(rd_host*) noexcept {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

int32_t register_metric(rd_host* host, Metrics::Kind kind, const char* name, const char* labels,
                        const char* help) noexcept {
  try {
    if (name == nullptr) return -1;
    const int32_t h =
        host->metrics->register_plugin_metric(kind, name, labels ? labels : "", help ? help : "");
    if (h < 0) {
      log::warn("plugin_metric_refused",
                {log::kv("plugin", host->plugin_name), log::kv("metric", name),
                 log::kv("reason", "invalid metric name or labels")});
    }
    return h;
  } catch (...) {
    return -1;
  }
}
int32_t host_counter_register(rd_host* h, const char* n, const char* l, const char* help) noexcept {
  return register_metric(h, Metrics::Kind::counter, n, l, help);
}
int32_t host_gauge_register(rd_host* h, const char* n, const char* l, const char* help) noexcept {
  return register_metric(h, Metrics::Kind::gauge, n, l, help);
}
int32_t host_histogram_register(rd_host* h, const char* n, const char* l,
                                const char* help) noexcept {
  return register_metric(h, Metrics::Kind::histogram, n, l, help);
}
void host_counter_add(rd_host* h, int32_t handle, double v) noexcept {
  h->metrics->plugin_add(handle, v);
}
void host_gauge_set(rd_host* h, int32_t handle, double v) noexcept {
  h->metrics->plugin_set(handle, v);
}
void host_histogram_observe(rd_host* h, int32_t handle, double v) noexcept {
  h->metrics->plugin_observe(handle, v);
}

std::unique_ptr<rd_host> make_host(const std::string& plugin_name, Metrics& metrics,
                                   size_t metrics_index) {
  auto host = std::make_unique<rd_host>();
  host->plugin_name = plugin_name;
  host->metrics = &metrics;
  host->metrics_index = metrics_index;
  rd_host_services& s = host->services;
  s.struct_size = sizeof(rd_host_services);
  s.abi_minor = RD_ABI_VERSION_MINOR;
  s.host = host.get();
  s.host_version = RD_VERSION;
  s.complete = &host_complete;
  s.log = &host_log;
  s.monotonic_ns = &host_monotonic_ns;
  s.wall_ms = &host_wall_ms;
  s.counter_register = &host_counter_register;
  s.counter_add = &host_counter_add;
  s.gauge_register = &host_gauge_register;
  s.gauge_set = &host_gauge_set;
  s.histogram_register = &host_histogram_register;
  s.histogram_observe = &host_histogram_observe;
  s.started = &host_started;
  return host;
}
}  // namespace

std::vector<std::string> plugin_dirs(const Config& config) {
  std::vector<std::string> dirs{config.plugins.dir.empty() ? default_plugin_dir()
                                                           : config.plugins.dir};
  for (const auto& d : config.plugins.dirs) {
    if (std::find(dirs.begin(), dirs.end(), d) == dirs.end()) dirs.push_back(d);
  }
  return dirs;
}

std::string plugin_dirs_text(const Config& config) {
  std::string out;
  for (const auto& d : plugin_dirs(config)) out += (out.empty() ? "" : ", ") + d;
  return out;
}

bool ActivePlugin::health(std::string& detail) const {
  const rd_plugin_descriptor* d = info.descriptor;
  std::lock_guard<std::mutex> lock(health_mu);
  void* const instance = this->instance.load(std::memory_order_acquire);
  if (instance == nullptr) {
    detail = "not created";
    return false;
  }
  if (!RD_HAS_FIELD(d, rd_plugin_descriptor, xHealth) || d->xHealth == nullptr) return true;
  char buf[512] = {0};
  crash::PluginScope scope(index, 0);
  const bool ok = d->xHealth(instance, buf, sizeof buf) != 0;
  buf[sizeof buf - 1] = '\0';
  detail = buf;
  return ok;
}

PluginSet::~PluginSet() {
  destroy_all();
}

namespace {
// xCreate for one plugin with `config_json`; throws PluginError naming it.
void* new_instance(const ActivePlugin& p, const std::string& config_json) {
  crash::PluginScope scope(p.index, 0);
  char err[1024] = {0};
  int32_t rc = 1;
  void* instance = nullptr;
  try {
    rc = p.info.descriptor->xCreate(&p.host->services, config_json.c_str(), &instance, err,
                                    sizeof err);
  } catch (...) {
    std::snprintf(err, sizeof err, "xCreate threw an exception");
  }
  err[sizeof err - 1] = '\0';
  if (rc != 0) {
    throw PluginError("plugin '" + p.info.name + "' (" + p.info.path +
                      ") failed to start: " + (err[0] ? err : "no reason given") +
                      " (check plugins." + p.info.name + " in the config)");
  }
  log::debug("plugin_created", {log::kv("plugin", p.info.name)});
  return instance;
}

void create_current(ActivePlugin& p) {
  if (p.config.isolated) {
    // The same .so, in a child process the proxy supervises (isolated_plugin.hpp). A reload
    // never re-creates it (reload.cpp names its changed section as needing a restart).
    Metrics::Destination& m = p.host->metrics->destination(p.metrics_index);
    p.isolated =
        std::make_unique<IsolatedPlugin>(p.info, p.config.json, &p.host->services, &m.restarts);
    m.isolated.store(true, std::memory_order_relaxed);
    p.info.descriptor = p.isolated->descriptor();
    p.instance.store(p.isolated.get(), std::memory_order_release);
    log::debug("plugin_created", {log::kv("plugin", p.info.name), log::kv("isolation", "process")});
    return;
  }
  p.instance.store(new_instance(p, p.config.json), std::memory_order_release);
}

void delete_instance(const ActivePlugin& p, void* instance) {
  if (instance == nullptr) return;
  crash::PluginScope scope(p.index, 0);
  try {
    p.info.descriptor->xDestroy(instance);
  } catch (...) {
    log::error("plugin_destroy_threw", {log::kv("plugin", p.info.name)});
  }
}

void destroy_current(ActivePlugin& p) {
  std::lock_guard<std::mutex> lock(p.health_mu);
  delete_instance(p, p.instance.exchange(nullptr, std::memory_order_acq_rel));
}
}  // namespace

void* PluginSet::create_instance(const ActivePlugin& plugin, const PluginConfig& config) const {
  return new_instance(plugin, config.json);
}

void PluginSet::destroy_instance(const ActivePlugin& plugin, void* instance) const {
  std::lock_guard<std::mutex> lock(plugin.health_mu);
  delete_instance(plugin, instance);
}

void PluginSet::init(PluginScan scan, const Config& config, const Environment& env,
                     Metrics& metrics, int64_t ack_wait_ms, bool create) {
  std::lock_guard<std::mutex> write(write_mu_);
  // A config section for a plugin that is not loaded is a typo or a missing .so: an error, so
  // --check-config (which runs this with create=false) fails as start-up does.
  std::vector<std::string> loaded;
  for (const auto& p : scan.loaded) loaded.push_back(p.name);
  std::string errors;
  const std::string dir = plugin_dirs_text(config);
  for (const auto& e : unknown_plugin_sections(config, loaded, dir)) {
    errors += (errors.empty() ? "" : "\n") + e;
  }
  size_t n = count_.load(std::memory_order_relaxed);
  for (auto& info : scan.loaded) {
    if (n == kMaxPlugins) {
      errors += (errors.empty() ? "" : "\n") + std::string("more than ") +
                std::to_string(kMaxPlugins) + " plugins in " + dir + "; '" + info.name +
                "' and the ones after it are not used";
      break;
    }
    auto p = std::make_unique<ActivePlugin>();
    p->info = std::move(info);
    try {
      p->config =
          resolve_plugin_config(config, p->info.name, *p->info.descriptor, env, ack_wait_ms);
      for (const auto& note : p->config.notes) {
        log::warn("plugin_config_adjusted", {log::kv("detail", note)});
      }
    } catch (const ConfigError& e) {
      errors += (errors.empty() ? "" : "\n") + std::string(e.what());
      continue;
    }
    p->metrics_index = metrics.register_destination(p->info.destination_type, p->info.name);
    p->host = make_host(p->info.name, metrics, p->metrics_index);
    p->index = static_cast<int>(n);
    plugins_[n++] = std::move(p);
    count_.store(n, std::memory_order_release);
  }
  // From here on plugin code runs in this process: a crash in it is reported by name.
  if (create) refresh_crash_report({}, config.log.format != "text");
  // The plugins' own checks (ABI 1.2 xValidate), in --check-config as at start-up, so the two
  // refuse the same configurations with the same message.
  for (size_t i = 0; i < n; ++i) {
    const ActivePlugin* p = plugins_[i].get();
    const ValidateFn validate = validate_fn(*p->info.descriptor);
    if (validate == nullptr) continue;
    crash::PluginScope scope(p->index, 0);
    char err[1024] = {0};
    int32_t rc = 1;
    try {
      rc = validate(p->config.json.c_str(), err, sizeof err);
    } catch (...) {
      std::snprintf(err, sizeof err, "xValidate threw an exception");
    }
    err[sizeof err - 1] = '\0';
    if (rc != 0) {
      errors += (errors.empty() ? "" : "\n") + std::string("plugin '") + p->info.name + "' (" +
                p->info.path +
                ") refuses its configuration: " + (err[0] ? err : "no reason given") +
                " (check plugins." + p->info.name + " in the config)";
    }
  }
  if (!errors.empty()) throw ConfigError(errors);
  if (!create) return;
  for (size_t i = 0; i < n; ++i) create_current(*plugins_[i]);
}

void PluginSet::refresh_crash_report(const std::vector<ActivePlugin*>& extra, bool json) const {
  std::vector<crash::PluginImage> images;
  const size_t n = count_.load(std::memory_order_acquire);
  for (size_t i = 0; i < n; ++i)
    images.push_back({plugins_[i]->info.name, plugins_[i]->info.handle});
  for (const ActivePlugin* p : extra) images.push_back({p->info.name, p->info.handle});
  crash::install(images, json);
}

std::vector<std::string> PluginSet::add(const std::vector<const ActivePlugin*>& validated,
                                        Metrics& metrics, CompletionHandler* handler,
                                        bool json_crash_log,
                                        const std::function<void(ActivePlugin&)>& before_publish) {
  std::lock_guard<std::mutex> write(write_mu_);
  const size_t n = count_.load(std::memory_order_relaxed);
  if (n + validated.size() > kMaxPlugins) {
    throw PluginError("more than " + std::to_string(kMaxPlugins) +
                      " plugins: restart with fewer files in the plugin folder");
  }
  // Created first, all of them, so a failure leaves the set as it was (but for an idle entry in
  // the metrics: a destination type is registered before its plugin's host is made).
  std::vector<std::unique_ptr<ActivePlugin>> staged;
  std::vector<ActivePlugin*> extra;
  for (const ActivePlugin* v : validated) {
    auto p = std::make_unique<ActivePlugin>();
    p->info = v->info;
    p->config = v->config;
    p->index = static_cast<int>(n + staged.size());
    p->metrics_index = metrics.register_destination(p->info.destination_type, p->info.name);
    p->host = make_host(p->info.name, metrics, p->metrics_index);
    p->host->completion.store(handler, std::memory_order_release);
    extra.push_back(p.get());
    staged.push_back(std::move(p));
  }
  if (!staged.empty()) refresh_crash_report(extra, json_crash_log);
  for (size_t i = 0; i < staged.size(); ++i) {
    try {
      create_current(*staged[i]);
    } catch (...) {
      for (size_t k = i; k-- > 0;) destroy_current(*staged[k]);
      refresh_crash_report({}, json_crash_log);
      throw;
    }
  }
  std::vector<std::string> names;
  for (auto& p : staged) {
    before_publish(*p);
    const size_t at = static_cast<size_t>(p->index);
    names.push_back(p->info.name);
    plugins_[at] = std::move(p);
    count_.store(at + 1, std::memory_order_release);  // findable from here
  }
  return names;
}

void PluginSet::set_completion_handler(CompletionHandler* handler) {
  for (ActivePlugin* p : all()) p->host->completion.store(handler, std::memory_order_release);
}

ActivePlugin* PluginSet::find(const std::string& destination_type) const {
  // A linear scan of a handful of entries: no lock, no allocation (the consumer calls this per
  // job), and add() may append meanwhile.
  const size_t n = count_.load(std::memory_order_acquire);
  for (size_t i = 0; i < n; ++i) {
    if (plugins_[i]->info.destination_type == destination_type) return plugins_[i].get();
  }
  return nullptr;
}

std::vector<ActivePlugin*> PluginSet::all() const {
  const size_t n = count_.load(std::memory_order_acquire);
  std::vector<ActivePlugin*> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) out.push_back(plugins_[i].get());
  return out;
}

ActivePlugin* PluginSet::by_name(const std::string& name) const {
  for (ActivePlugin* p : all()) {
    if (p->info.name == name) return p;
  }
  return nullptr;
}

std::string PluginSet::destination_types() const {
  std::string out;
  for (const ActivePlugin* p : all()) out += (out.empty() ? "" : ", ") + p->info.destination_type;
  return out.empty() ? "none" : out;
}

void PluginSet::destroy_all() {
  // Reverse order of creation; plugins are never dlclose()d (their code may still be referenced).
  const auto list = all();
  for (auto it = list.rbegin(); it != list.rend(); ++it) destroy_current(**it);
}

}  // namespace rd
