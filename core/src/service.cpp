#include "service.hpp"

#include <signal.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "attempt_store.hpp"
#include "consumer.hpp"
#include "dead_letter_jetstream.hpp"
#include "dead_letter_monitor.hpp"
#include "dead_letter_postgres.hpp"
#include "destination.hpp"
#include "http_server.hpp"
#include "logging.hpp"
#include "max_deliveries.hpp"
#include "metrics.hpp"
#include "nats_client.hpp"
#include "plugin_host.hpp"
#include "plugin_loader.hpp"
#include "preflight.hpp"
#include "reload.hpp"
#include "thread_name.hpp"

namespace rd {

void block_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

namespace {

// One descriptor per webhook request in flight over HTTP/1.1, plus the plugins' keep-alive pools:
// a soft limit of 1024 (systemd's default, and many shells') would stop delivery near 1000 in
// flight with EMFILE while the hard limit allows far more. Raised to the hard limit at start, as
// nginx and Go's runtime do; nothing here uses select().
void raise_open_files_limit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur >= lim.rlim_max) return;
  const rlim_t before = lim.rlim_cur;
  lim.rlim_cur = lim.rlim_max == RLIM_INFINITY ? rlim_t{1} << 20 : lim.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &lim) == 0) {
    log::debug("open_files_limit_raised", {log::kv("from", static_cast<int64_t>(before)),
                                           log::kv("to", static_cast<int64_t>(lim.rlim_cur))});
  }
}

// The signal thread: SIGTERM/SIGINT stop the service; SIGHUP runs the reload hook (reload.hpp)
// once the service has one, on this thread, so reloads never overlap and a SIGTERM that arrives
// meanwhile is handled when the reload is done.
class StopSignal {
 public:
  StopSignal() {
    thread_ = std::thread([this] {
      name_thread("rd-signal");
      sigset_t set;
      sigemptyset(&set);
      sigaddset(&set, SIGTERM);
      sigaddset(&set, SIGINT);
      sigaddset(&set, SIGHUP);
      int sig = 0;
      while (sigwait(&set, &sig) == 0) {
        if (sig == SIGTERM || sig == SIGINT) break;
        if (sig == SIGHUP && !done_) {
          std::lock_guard<std::mutex> lock(reload_mu_);
          if (reload_) {
            reload_();
          } else {
            log::warn("reload_ignored",
                      {log::kv("reason",
                               "the service is still starting; send SIGHUP again once "
                               "it is ready")});
          }
        }
      }
      if (done_) return;
      log::info("shutdown_requested", {log::kv("signal", sig == SIGTERM ? "SIGTERM" : "SIGINT")});
      trigger();
    });
  }
  ~StopSignal() {
    if (thread_.joinable()) {
      done_ = true;
      pthread_kill(thread_.native_handle(), SIGTERM);
      thread_.join();
    }
  }
  // What SIGHUP runs; empty = nothing yet (or any more). Waits for a reload under way.
  void set_reload(std::function<void()> reload) {
    std::lock_guard<std::mutex> lock(reload_mu_);
    reload_ = std::move(reload);
  }
  void trigger() {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    cv_.notify_all();
  }
  bool stopped() const { return stop_.load(); }
  void wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return stop_.load(); });
  }
  bool wait_for(std::chrono::milliseconds d) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, d, [&] { return stop_.load(); });
  }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<bool> done_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::mutex reload_mu_;
  std::function<void()> reload_;  // guarded by reload_mu_
  std::thread thread_;
};

}  // namespace

int run_service(const Config& config, const Environment& env) {
  StopSignal stop;
  Metrics metrics;
  const auto started = std::chrono::steady_clock::now();

  // A bad plugin, plugin config or NATS TLS/credential file stops start-up before anything
  // connects; --check-config runs the same preflight.
  const std::string dir = plugin_dirs_text(config);
  raise_open_files_limit();
  PluginSet plugins;
  try {
    preflight(config, env, metrics, plugins, true);
  } catch (const std::exception& e) {
    log::error("startup_failed", {log::kv("error", e.what())});
    return 2;
  }
  if (plugins.all().empty()) {  // only with plugins.allow_none (preflight refuses it otherwise)
    log::warn("no_plugins",
              {log::kv("dir", dir),
               log::kv("effect", "every job will be dead-lettered; put plugin .so files there")});
  }

  std::unique_ptr<NatsClient> nats;
  std::unique_ptr<DeadLetterSink> sink;
  // The PostgreSQL sink, if that is the one: /ready waits until it has proven it can write.
  std::atomic<PostgresDeadLetterSink*> pg_sink{nullptr};
  std::unique_ptr<DeadLetterMonitor> sink_monitor;
  std::unique_ptr<AttemptStore> attempts;
  std::unique_ptr<Consumer> consumer;
  std::atomic<Consumer*> consumer_view{nullptr};  // for /health once started
  std::atomic<bool> ready{false};
  std::mutex sink_mu;  // guards `sink` pointer for /health while start-up fills it in

  HttpHandlers handlers;
  // Ready: the consumer is bound, shutdown has not begun and dead letters can be written. A
  // worker that delivers but cannot dead-letter is not ready (its failed jobs are nak'd and wait),
  // so a rollout onto a database it cannot write to stops. A NATS outage does not count: the
  // daemon reconnects on its own, and /health says so.
  auto sink_writable = [&](std::string* detail) {
    PostgresDeadLetterSink* pg = pg_sink.load();
    std::string d;
    const bool ok = pg == nullptr || pg->healthy(d);
    if (detail != nullptr) *detail = d;
    return ok;
  };
  handlers.ready = [&] { return ready.load() && !stop.stopped() && sink_writable(nullptr); };
  // Consumer info is costly on a large backlog: refresh the pending gauge at most every 15 s.
  std::mutex pending_mu;
  auto pending_at = std::chrono::steady_clock::now() - std::chrono::hours(1);
  handlers.metrics = [&] {
    const bool connected = nats && nats->connected();
    metrics.nats_connected = connected ? 1 : 0;
    {
      std::lock_guard<std::mutex> lock(pending_mu);
      const auto now = std::chrono::steady_clock::now();
      if (connected && ready.load() && now - pending_at > std::chrono::seconds(15)) {
        pending_at = now;
        jsConsumerInfo* ci = nullptr;
        jsErrCode err = static_cast<jsErrCode>(0);
        if (js_GetConsumerInfo(&ci, nats->js(), config.nats.stream.c_str(),
                               config.nats.consumer.c_str(), nullptr, &err) == NATS_OK) {
          metrics.consumer_pending = static_cast<int64_t>(ci->NumPending);
          jsConsumerInfo_Destroy(ci);
        }
      }
    }
    return metrics.render_prometheus();
  };
  handlers.health = [&] {
    nlohmann::json j;
    const bool connected = nats && nats->connected();
    nlohmann::json problems = nlohmann::json::array();
    if (!connected) problems.push_back("NATS is not connected");
    std::string sink_detail;
    if (!sink_writable(&sink_detail)) {
      problems.push_back("dead letters cannot be written: " + sink_detail);
    }
    j["status"] = problems.empty() ? "ok" : "degraded";
    j["problems"] = std::move(problems);
    j["nats_connected"] = connected;
    j["ready"] = ready.load() && !stop.stopped() && sink_writable(nullptr);
    j["delivered"] = metrics.delivered.load();
    j["failed"] = metrics.failed.load();
    j["retried"] = metrics.retried.load();
    j["dead_lettered"] = metrics.dead_lettered.load();
    j["dead_letter_errors"] = metrics.dead_letter_errors.load();
    j["in_flight"] = metrics.in_flight.load();
    j["version"] = RD_VERSION;
    j["uptime_seconds"] =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started)
            .count();
    {
      std::lock_guard<std::mutex> lock(sink_mu);
      if (sink) {
        std::string detail;
        const bool ok = sink->healthy(detail);
        j["dead_letter_sink"] = {{"name", sink->name()}, {"healthy", ok}, {"detail", detail}};
      }
    }
    nlohmann::json list = nlohmann::json::array();
    for (const auto& p : plugins.all()) {
      std::string detail;
      const bool available = p->health(detail);
      nlohmann::json e = {{"name", p->info.name},
                          {"destination_type", p->info.destination_type},
                          {"version", p->info.version},
                          {"available", available},
                          {"detail", detail},
                          // Not p->config: a reload replaces it while /health runs.
                          {"isolation", p->isolated ? "process" : "in_process"}};
      if (p->isolated) {
        const IsolatedPlugin::Status st = p->isolated->status();
        nlohmann::json proc = {{"state", st.state},
                               {"pid", st.pid},
                               {"restarts", st.restarts},
                               {"in_flight", st.in_flight}};
        if (!st.last_crash.empty()) {
          proc["last_crash"] = st.last_crash;
          proc["last_crash_at"] = format_utc(st.last_crash_ms);
        }
        e["process"] = std::move(proc);
      }
      list.push_back(std::move(e));
    }
    j["plugins"] = std::move(list);
    nlohmann::json dests = nlohmann::json::array();
    if (Consumer* c = consumer_view.load()) {
      for (const auto& d : c->troubled_destinations()) {
        nlohmann::json e = {{"destination", d.key},
                            {"state", d.open ? "open" : "failing"},
                            {"consecutive_failures", d.consecutive_failures},
                            {"last_error", d.last_error},
                            {"in_flight", d.in_flight},
                            {"waiting", d.waiting},
                            {"deferrals", d.deferrals}};
        if (d.open) e["open_since"] = format_utc(d.open_since_ms);
        if (d.failing_since_ms > 0) e["failing_since"] = format_utc(d.failing_since_ms);
        dests.push_back(std::move(e));
      }
    }
    j["destinations"] = std::move(dests);
    j["waiting"] = metrics.waiting.load();
    j["fetched_ahead"] = metrics.fetched_ahead.load();
    j["deferred"] = metrics.deferred_unavailable.load() + metrics.deferred_circuit_open.load() +
                    metrics.deferred_saturated.load() + metrics.deferred_plugin_busy.load();
    j["attempt_store"] = attempts && attempts->available() ? attempts->bucket() : "jetstream count";
    return std::make_pair(connected ? 200 : 503,
                          j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  };
  HttpServer http(handlers);
  if (config.http.port != 0) {
    try {
      http.start(config.http.bind, config.http.port);
      log::info("http_listening",
                {log::kv("bind", config.http.bind), log::kv("port", config.http.port)});
    } catch (const std::exception& e) {
      log::error("startup_failed", {log::kv("error", e.what())});
      return 2;
    }
  }

  nats = std::make_unique<NatsClient>(config.nats, &metrics);
  try {
    if (!nats->connect([&] { return stop.stopped(); })) return 0;
  } catch (const NatsError& e) {
    log::error("startup_failed", {log::kv("error", e.what())});
    return 2;
  }

  // Streams and consumer: retried while the server is not ready (e.g. JetStream still starting).
  ConsumerSettings settings;
  while (true) {
    try {
      if (config.nats.create)
        nats->ensure_stream(config.nats.stream, config.nats.subjects, true, config.nats.replicas);
      settings = nats->ensure_consumer(config);
      if (config.dead_letter.postgres_url.empty()) {
        nats->ensure_stream(config.dead_letter.stream, {config.dead_letter.subject_prefix + ".>"},
                            false);
      }
      break;
    } catch (const std::exception& e) {
      log::error("jetstream_setup_failed",
                 {log::kv("error", e.what()), log::kv("action", "retrying in 2s")});
      if (stop.wait_for(std::chrono::seconds(2))) return 0;
    }
  }

  {
    std::lock_guard<std::mutex> lock(sink_mu);
    if (!config.dead_letter.postgres_url.empty()) {
      auto pg = std::make_unique<PostgresDeadLetterSink>(
          config.dead_letter.postgres_url, config.dead_letter.postgres_role,
          static_cast<size_t>(config.dead_letter.postgres_pool_size));
      // Migration and the write check run on the monitor's thread, retried until they succeed:
      // a database that is down now does not hold up delivery, and needs no restart later.
      sink_monitor = std::make_unique<DeadLetterMonitor>(*pg, config.dead_letter.postgres_migrate);
      pg_sink = pg.get();
      sink = std::move(pg);
      sink_monitor->start();
    } else {
      sink = std::make_unique<JetStreamDeadLetterSink>(
          nats->js(), nats->conn(), config.dead_letter.stream, config.dead_letter.subject_prefix);
    }
  }
  log::info("dead_letter_sink", {log::kv("sink", sink->name())});

  attempts = std::make_unique<AttemptStore>(config, nats->conn(), nats->js());
  attempts->open();
  consumer = std::make_unique<Consumer>(config, *nats, plugins, *sink, metrics, attempts.get());
  plugins.set_completion_handler(consumer.get());
  try {
    consumer->start(settings);
    consumer_view = consumer.get();
  } catch (const std::exception& e) {
    log::error("startup_failed", {log::kv("error", e.what())});
    return 2;
  }
  MaxDeliveriesWatcher watcher(config, *nats, *sink, metrics);
  watcher.start();
  ready = true;
  log::info("ready", {log::kv("plugins", plugins.destination_types())});
  Config reloaded = config;  // what the last reload applied (the signal thread's alone)
  const ReloadTargets reload_targets{config, reloaded, plugins, *consumer, metrics};
  stop.set_reload([&] { reload_config(reload_targets); });

  stop.wait();
  stop.set_reload(nullptr);
  ready = false;
  consumer->shutdown(consumer->shutdown_grace_ms());  // delivery.shutdown_grace, reloadable
  watcher.stop();
  if (sink_monitor) sink_monitor->stop();
  plugins.set_completion_handler(nullptr);
  plugins.destroy_all();
  nats->flush(2000);
  http.stop();
  log::info("shutdown_complete", {log::kv("delivered", metrics.delivered.load()),
                                  log::kv("dead_lettered", metrics.dead_lettered.load())});
  return 0;
}

}  // namespace rd
