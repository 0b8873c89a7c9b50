#include "metrics.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <map>
#include <stdexcept>

#include "process_metrics.hpp"

namespace rd {

const char* outcome_name(Outcome o) {
  switch (o) {
    case Outcome::ok:
      return "ok";
    case Outcome::retry:
      return "retry";
    case Outcome::permanent:
      return "permanent";
    case Outcome::timeout:
      return "timeout";
    case Outcome::invalid:
      return "invalid";
    case Outcome::deferred:
      return "deferred";
    default:
      return "unknown";
  }
}

void append_prometheus_number(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else {
    // Shortest text that reads back as the same double: 0.000662, not 0.00066200000000000005.
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
  }
}

namespace {
void append_number(std::string& out, double v) {
  append_prometheus_number(out, v);
}
void append_le(std::string& out, double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  out += buf;
}

bool valid_metric_name(const std::string& name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                    (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool valid_labels(const std::string& labels) {
  // name="value"(,name="value")* with no newlines; checked loosely but enough to keep output
  // parseable.
  if (labels.empty()) return true;
  if (labels.find('\n') != std::string::npos || labels.find('{') != std::string::npos ||
      labels.find('}') != std::string::npos) {
    return false;
  }
  size_t quotes = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] == '\\') {
      ++i;
    } else if (labels[i] == '"') {
      ++quotes;
    }
  }
  return quotes > 0 && quotes % 2 == 0 && labels.find('=') != std::string::npos;
}
}  // namespace

void Histogram::observe(double seconds) {
  size_t i = 0;
  while (i < kBuckets.size() && seconds > kBuckets[i]) ++i;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_us_.fetch_add(static_cast<uint64_t>(seconds * 1e6), std::memory_order_relaxed);
}

void Histogram::render(std::string& out, const std::string& name, const std::string& labels) const {
  uint64_t cumulative = 0;
  const std::string sep = labels.empty() ? "" : ",";
  for (size_t i = 0; i < kBuckets.size(); ++i) {
    cumulative += counts_[i].load(std::memory_order_relaxed);
    out += name + "_bucket{" + labels + sep + "le=\"";
    append_le(out, kBuckets[i]);
    out += "\"} " + std::to_string(cumulative) + "\n";
  }
  cumulative += counts_[kBuckets.size()].load(std::memory_order_relaxed);
  out += name + "_bucket{" + labels + sep + "le=\"+Inf\"} " + std::to_string(cumulative) + "\n";
  out += name + "_sum" + (labels.empty() ? "" : "{" + labels + "}") + " ";
  append_number(out, static_cast<double>(sum_us_.load(std::memory_order_relaxed)) / 1e6);
  out += "\n" + name + "_count" + (labels.empty() ? "" : "{" + labels + "}") + " " +
         std::to_string(count_.load(std::memory_order_relaxed)) + "\n";
}

Metrics::Metrics() {
  register_destination("unknown");
}

size_t Metrics::register_destination(const std::string& type, const std::string& plugin) {
  std::lock_guard<std::mutex> lock(destination_mu_);
  const size_t n = destination_count_.load(std::memory_order_relaxed);
  for (size_t i = 0; i < n; ++i) {
    if (destinations_[i].type == type) {
      if (!plugin.empty()) destinations_[i].plugin = plugin;  // render reads it under the lock
      return i;
    }
  }
  if (n == kMaxDestinations) throw std::length_error("too many destination types");
  destinations_[n].type = type;
  destinations_[n].plugin = plugin;
  destination_count_.store(n + 1, std::memory_order_release);
  return n;
}

int32_t Metrics::register_plugin_metric(Kind kind, const std::string& name,
                                        const std::string& labels, const std::string& help) {
  const std::string full = "route_delivery_plugin_" + name;
  if (!valid_metric_name(name) || !valid_labels(labels)) return -1;
  std::lock_guard<std::mutex> lock(plugin_mu_);
  const size_t n = plugin_metric_count_.load(std::memory_order_relaxed);
  for (size_t i = 0; i < n; ++i) {
    const auto& m = plugin_metrics_[i];
    if (m.name == full && m.labels == labels) return m.kind == kind ? static_cast<int32_t>(i) : -1;
  }
  if (n == kMaxPluginMetrics) return -1;  // updates through -1 are ignored
  auto& m = plugin_metrics_[n];
  m.kind = kind;
  m.name = full;
  m.labels = labels;
  m.help = help;
  for (auto& c : m.help) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  plugin_metric_count_.store(n + 1, std::memory_order_release);
  return static_cast<int32_t>(n);
}

void Metrics::plugin_add(int32_t handle, double value) {
  if (handle < 0 ||
      static_cast<size_t>(handle) >= plugin_metric_count_.load(std::memory_order_acquire))
    return;
  auto& v = plugin_metrics_[static_cast<size_t>(handle)].value;
  double cur = v.load(std::memory_order_relaxed);
  while (!v.compare_exchange_weak(cur, cur + value, std::memory_order_relaxed)) {
  }
}

void Metrics::plugin_set(int32_t handle, double value) {
  if (handle < 0 ||
      static_cast<size_t>(handle) >= plugin_metric_count_.load(std::memory_order_acquire))
    return;
  plugin_metrics_[static_cast<size_t>(handle)].value.store(value, std::memory_order_relaxed);
}

void Metrics::plugin_observe(int32_t handle, double seconds) {
  if (handle < 0 ||
      static_cast<size_t>(handle) >= plugin_metric_count_.load(std::memory_order_acquire))
    return;
  plugin_metrics_[static_cast<size_t>(handle)].histogram.observe(seconds);
}

std::string Metrics::render_prometheus() const {
  std::string out;
  out.reserve(8192);
  // Held while the destinations' names are read: a reload may register one (and name its plugin).
  std::unique_lock<std::mutex> destinations_lock(destination_mu_);
  const size_t destination_count = destination_count_.load(std::memory_order_acquire);
  out +=
      "# HELP route_delivery_deliveries_total Delivery attempts by destination type and outcome.\n";
  out += "# TYPE route_delivery_deliveries_total counter\n";
  for (size_t i = 0; i < destination_count; ++i) {
    const Destination& d = destinations_[i];
    for (size_t o = 0; o < d.outcomes.size(); ++o) {
      out += "route_delivery_deliveries_total{destination_type=\"" + d.type + "\",outcome=\"" +
             outcome_name(static_cast<Outcome>(o)) + "\"} " +
             std::to_string(d.outcomes[o].load(std::memory_order_relaxed)) + "\n";
    }
  }
  out +=
      "# HELP route_delivery_delivery_duration_seconds Time from dispatch to the plugin's "
      "result.\n";
  out += "# TYPE route_delivery_delivery_duration_seconds histogram\n";
  for (size_t i = 0; i < destination_count; ++i) {
    const Destination& d = destinations_[i];
    d.duration.render(out, "route_delivery_delivery_duration_seconds",
                      "destination_type=\"" + d.type + "\"");
  }
  out += "# HELP route_delivery_dead_letters_total Jobs written to the dead-letter sink.\n";
  out += "# TYPE route_delivery_dead_letters_total counter\n";
  for (size_t i = 0; i < destination_count; ++i) {
    const Destination& d = destinations_[i];
    out += "route_delivery_dead_letters_total{destination_type=\"" + d.type + "\"} " +
           std::to_string(d.dead_lettered.load(std::memory_order_relaxed)) + "\n";
  }
  auto simple = [&](const char* name, const char* type, const char* help, double v) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" +
           name + " ";
    append_number(out, v);
    out += "\n";
  };
  simple("route_delivery_in_flight", "gauge", "Jobs dispatched and not yet settled.",
         static_cast<double>(in_flight.load()));
  simple("route_delivery_nats_connected", "gauge", "1 while connected to NATS.",
         static_cast<double>(nats_connected.load()));
  simple("route_delivery_dead_letter_errors_total", "counter",
         "Dead-letter writes that failed (job nak'd).",
         static_cast<double>(dead_letter_errors.load()));
  simple("route_delivery_retries_total", "counter", "Jobs nak'd with delay for another attempt.",
         static_cast<double>(retried.load()));
  simple("route_delivery_table_lock_acquisitions_total", "counter",
         "Acquisitions of the host's table lock (cold paths, fetched batches and wake-ups of "
         "sleeping fetch threads; far fewer than one per delivered job).",
         static_cast<double>(table_lock_acquisitions.load()));
  simple("route_delivery_table_lock_waits_total", "counter",
         "Acquisitions of the host's table lock that had to wait for another thread.",
         static_cast<double>(table_lock_waits.load()));
  out +=
      "# HELP route_delivery_duplicate_completions_total Plugin completions ignored (second "
      "completion, after timeout, or unknown id), by plugin.\n"
      "# TYPE route_delivery_duplicate_completions_total counter\n";
  for (size_t i = 0; i < destination_count; ++i) {
    const Destination& d = destinations_[i];
    if (d.plugin.empty()) continue;
    out += "route_delivery_duplicate_completions_total{plugin=\"" + d.plugin + "\"} " +
           std::to_string(d.duplicate_completions.load(std::memory_order_relaxed)) + "\n";
  }
  // Not route_delivery_plugin_*: that prefix is the plugins' own metrics' (rd_host_services).
  out +=
      "# HELP route_delivery_isolated_plugin_restarts_total Restarts of an isolated plugin's "
      "process after it died (plugins.<name>.isolation: process).\n"
      "# TYPE route_delivery_isolated_plugin_restarts_total counter\n";
  for (size_t i = 0; i < destination_count; ++i) {
    const Destination& d = destinations_[i];
    if (d.plugin.empty() || !d.isolated.load(std::memory_order_relaxed)) continue;
    out += "route_delivery_isolated_plugin_restarts_total{plugin=\"" + d.plugin + "\"} " +
           std::to_string(d.restarts.load(std::memory_order_relaxed)) + "\n";
  }
  destinations_lock.unlock();
  simple("route_delivery_nats_reconnects_total", "counter", "Reconnections to NATS.",
         static_cast<double>(nats_reconnects.load()));
  out +=
      "# HELP route_delivery_deferrals_total Jobs sent back without spending an attempt, by "
      "reason.\n# TYPE route_delivery_deferrals_total counter\n";
  out += "route_delivery_deferrals_total{reason=\"unavailable\"} " +
         std::to_string(deferred_unavailable.load()) + "\n";
  out += "route_delivery_deferrals_total{reason=\"circuit_open\"} " +
         std::to_string(deferred_circuit_open.load()) + "\n";
  out += "route_delivery_deferrals_total{reason=\"saturated\"} " +
         std::to_string(deferred_saturated.load()) + "\n";
  out += "route_delivery_deferrals_total{reason=\"plugin_busy\"} " +
         std::to_string(deferred_plugin_busy.load()) + "\n";
  simple("route_delivery_open_destinations", "gauge",
         "Destinations whose circuit is open (no jobs sent but probes).",
         static_cast<double>(open_destinations.load()));
  simple("route_delivery_circuit_opened_total", "counter", "Times a destination's circuit opened.",
         static_cast<double>(circuit_opened.load()));
  simple("route_delivery_waiting", "gauge",
         "Jobs held in the host because their destination is at its share of in-flight slots.",
         static_cast<double>(waiting.load()));
  simple("route_delivery_fetched_ahead", "gauge",
         "Jobs fetched while every in-flight slot was taken, waiting for a free one.",
         static_cast<double>(fetched_ahead.load()));
  simple("route_delivery_given_up_total", "counter",
         "Jobs dead-lettered because they waited longer than delivery.give_up_after.",
         static_cast<double>(given_up.load()));
  out +=
      "# HELP route_delivery_reloads_total Configuration reloads (SIGHUP) by result: ok = "
      "applied, failed = refused, the running configuration kept.\n"
      "# TYPE route_delivery_reloads_total counter\n";
  out += "route_delivery_reloads_total{result=\"ok\"} " + std::to_string(reloads_ok.load()) + "\n";
  out += "route_delivery_reloads_total{result=\"failed\"} " +
         std::to_string(reloads_failed.load()) + "\n";
  out +=
      "# HELP route_delivery_build_info The running version (value 1).\n"
      "# TYPE route_delivery_build_info gauge\nroute_delivery_build_info{version=\"" RD_VERSION
      "\"} 1\n";
  if (const auto p = read_process_stats()) {
    simple("process_cpu_seconds_total", "counter", "Total user and system CPU time in seconds.",
           p->cpu_seconds);
    simple("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
           p->resident_memory_bytes);
    simple("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
           p->virtual_memory_bytes);
    simple("process_start_time_seconds", "gauge",
           "Start time of the process since the Unix epoch in seconds.", p->start_time_seconds);
    simple("process_open_fds", "gauge", "Number of open file descriptors.", p->open_fds);
    if (p->max_fds > 0) {
      simple("process_max_fds", "gauge", "Maximum number of open file descriptors.", p->max_fds);
    }
  }
  if (consumer_pending.load() >= 0) {
    simple("route_delivery_consumer_pending", "gauge",
           "Jobs waiting in the durable consumer (cached server consumer info).",
           static_cast<double>(consumer_pending.load()));
  }

  std::lock_guard<std::mutex> lock(plugin_mu_);
  std::map<std::string, bool> helped;
  const size_t plugin_metrics = plugin_metric_count_.load(std::memory_order_relaxed);
  for (size_t i = 0; i < plugin_metrics; ++i) {
    const PluginMetric& m = plugin_metrics_[i];
    if (!helped[m.name]) {
      helped[m.name] = true;
      const char* type = m.kind == Kind::counter ? "counter"
                         : m.kind == Kind::gauge ? "gauge"
                                                 : "histogram";
      out += "# HELP " + m.name + " " + (m.help.empty() ? m.name : m.help) + "\n# TYPE " + m.name +
             " " + type + "\n";
    }
    if (m.kind == Kind::histogram) {
      m.histogram.render(out, m.name, m.labels);
    } else {
      out += m.name + (m.labels.empty() ? "" : "{" + m.labels + "}") + " ";
      append_number(out, m.value.load(std::memory_order_relaxed));
      out += "\n";
    }
  }
  return out;
}

}  // namespace rd
