// Chaos suite: 20 000 mixed jobs (webhook, mqtt_republish, postgresql, scripted) through one
// daemon while the test injects faults at random moments: kill -9 and restart of the daemon (3x),
// a nats-server restart (same store), a PostgreSQL outage of a few seconds, a mosquitto restart,
// and a webhook receiver that answers 20% of requests with 500 and stalls 5% past the webhook
// timeout. Retries are generous, so every transient failure recovers. Two more webhook
// destinations (each receiver has its own port, so its own destination and circuit): a slow one
// that always answers after 200 ms, and a flapping one that is stopped for 2-4 s and started again
// on the same port four times while the jobs flow, then stays up.
//
// End state asserted: every job was received by its sink (webhook receivers, MQTT subscriber,
// PostgreSQL table, scripted plugin's record file) or has exactly one dead-letter record in
// ROUTES_DLQ; the jobs scripted to fail are exactly the dead-lettered ones; ROUTES is empty; the
// webhook destinations (faulty, slow, flapping) have no dead letters: the flapping one's outages
// are far shorter than delivery.give_up_after, and its jobs are deferred, not spent.
// Duplicates (at-least-once) are allowed and counted in the output.
//
// Knobs (environment): CHAOS_JOBS (default 20000; 5000 under sanitizers), CHAOS_SEED (random
// otherwise; printed), CHAOS_ROUNDS (times the whole fault set is injected, default 1),
// CHAOS_GAP_MS (most time between two faults, default 2500). tests/chaos/soak.sh runs a bigger
// variant.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "chaos_support.hpp"
#include "http_receiver.hpp"
#include "test_support.hpp"

using namespace rdtest;
using namespace rdtest::chaos;
using namespace std::chrono_literals;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

int64_t env_int(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoll(v) : fallback;
}

#ifdef RD_CHAOS_SANITIZED
constexpr int64_t kDefaultJobs = 5000;
#else
constexpr int64_t kDefaultJobs = 20000;
#endif

enum class Kind {
  webhook,
  webhook_slow,
  webhook_flapping,
  mqtt,
  postgres,
  scripted_ok,
  scripted_fail
};

// What each job is and where it should end up.
struct JobSpec {
  std::string id;
  Kind kind;
  std::string script;  // scripted only
};

// 15% webhook (the faulty receiver), 5% slow webhook, 5% flapping webhook, 25% mqtt, 25%
// postgresql, 20% scripted that succeed (some after a retry, some asynchronously), 5% scripted
// that must be dead-lettered (permanent, or retried to exhaustion).
JobSpec spec_for(int i) {
  JobSpec s;
  s.id = "c" + std::to_string(i);
  const int bucket = i % 100;
  if (bucket < 15) {
    s.kind = Kind::webhook;
  } else if (bucket < 20) {
    s.kind = Kind::webhook_slow;
  } else if (bucket < 25) {
    s.kind = Kind::webhook_flapping;
  } else if (bucket < 50) {
    s.kind = Kind::mqtt;
  } else if (bucket < 75) {
    s.kind = Kind::postgres;
  } else if (bucket < 95) {
    s.kind = Kind::scripted_ok;
    s.script = bucket % 3 == 0   ? R"(["retry","ok"])"
               : bucket % 3 == 1 ? R"(["async"])"
                                 : R"(["ok"])";
  } else {
    s.kind = Kind::scripted_fail;
    s.script = bucket < 98 ? R"(["permanent"])" : R"(["retry"])";
  }
  return s;
}

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::webhook:
      return "webhook";
    case Kind::webhook_slow:
      return "webhook (slow)";
    case Kind::webhook_flapping:
      return "webhook (flapping)";
    case Kind::mqtt:
      return "mqtt";
    case Kind::postgres:
      return "postgresql";
    case Kind::scripted_ok:
      return "scripted";
    case Kind::scripted_fail:
      return "scripted (must fail)";
  }
  return "?";
}

std::string id_of(const std::string& body) {
  const json j = json::parse(body, nullptr, false);
  return j.is_object() && j.contains("id") && j["id"].is_string() ? j["id"].get<std::string>() : "";
}

// A thread-safe log of what happened when, printed at the end.
class Timeline {
 public:
  Timeline() : start_(Clock::now()) {}
  void note(const std::string& what) {
    std::lock_guard<std::mutex> lock(mu_);
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start_).count();
    lines_ += "  t=" + std::to_string(ms / 1000) + "." + std::to_string(ms % 1000 / 100) + "s " +
              what + "\n";
  }
  double seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }
  std::string text() const {
    std::lock_guard<std::mutex> lock(mu_);
    return lines_;
  }

 private:
  Clock::time_point start_;
  mutable std::mutex mu_;
  std::string lines_;
};

// A webhook receiver that goes away and comes back on the same port: `cycles` times down for 2-4 s
// (the first at once) and up for 1-2.5 s, then up for good. Its own thread flaps it; stop() (and
// the destructor) cut the schedule short, e.g. after a failed assertion.
class FlappingReceiver {
 public:
  explicit FlappingReceiver(HttpReceiver::Handler handler)
      : handler_(std::move(handler)), receiver_(std::make_unique<HttpReceiver>(handler_)) {
    port_ = receiver_->port();
  }
  ~FlappingReceiver() { stop(); }
  FlappingReceiver(const FlappingReceiver&) = delete;
  FlappingReceiver& operator=(const FlappingReceiver&) = delete;

  int port() const { return port_; }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

  // `pending` tells how many of its jobs were published and not received yet; asked at the end of
  // each outage (jobs published during it count too).
  void start(int cycles, uint32_t seed, Timeline& timeline, std::function<int()> pending) {
    thread_ = std::thread([this, cycles, seed, &timeline, pending = std::move(pending)] {
      std::mt19937 rng(seed);
      std::uniform_int_distribution<int> down(2000, 4000), up(1000, 2500);
      for (int c = 0; c < cycles; ++c) {
        const int ms = down(rng);
        timeline.note("flapping webhook down for " + std::to_string(ms) + "ms");
        receiver_.reset();  // closes its listening socket and every connection
        ++outages_;
        const bool go_on = sleep(std::chrono::milliseconds(ms));
        const int waiting = pending();
        waiting_at_returns_ += waiting;
        if (!listen_again()) return;
        timeline.note("flapping webhook up (" + std::to_string(waiting) +
                      " of its jobs waiting for it)");
        if (!go_on || !sleep(std::chrono::milliseconds(up(rng)))) return;
      }
    });
  }
  // Waits for the schedule to end; the receiver is up afterwards (unless error() says otherwise).
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    join();
  }
  int outages() const { return outages_.load(); }
  int64_t waiting_at_returns() const { return waiting_at_returns_.load(); }
  std::string error() const {
    std::lock_guard<std::mutex> lock(mu_);
    return error_;
  }

 private:
  // False when told to stop.
  bool sleep(std::chrono::milliseconds d) {
    std::unique_lock<std::mutex> lock(mu_);
    return !cv_.wait_for(lock, d, [&] { return stop_; });
  }
  // The port may be taken for a moment (an outgoing connection's ephemeral port): retry for 10 s.
  bool listen_again() {
    std::string last;
    for (int i = 0; i < 100; ++i) {
      try {
        receiver_ = std::make_unique<HttpReceiver>(handler_, port_);
        return true;
      } catch (const std::exception& e) {
        last = e.what();
      }
      std::this_thread::sleep_for(100ms);
    }
    std::lock_guard<std::mutex> lock(mu_);
    error_ = "could not listen on port " + std::to_string(port_) + " again: " + last;
    return false;
  }

  HttpReceiver::Handler handler_;
  std::unique_ptr<HttpReceiver> receiver_;  // the flapping thread's while it runs
  int port_ = 0;
  std::atomic<int> outages_{0};
  std::atomic<int64_t> waiting_at_returns_{0};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::string error_;
  std::thread thread_;
};

TEST(Chaos, MixedJobsUnderInjectedFaultsAreDeliveredOrDeadLetteredOnce) {
  ASSERT_EQ(::access(daemon_path().c_str(), X_OK), 0) << daemon_path() << " is missing";
  const int n = static_cast<int>(env_int("CHAOS_JOBS", kDefaultJobs));
  const auto seed = static_cast<uint32_t>(env_int("CHAOS_SEED", std::random_device{}()));
  const int rounds = static_cast<int>(env_int("CHAOS_ROUNDS", 1));
  const int gap_ms = static_cast<int>(env_int("CHAOS_GAP_MS", 2500));
  std::cout << "chaos: " << n << " jobs, seed " << seed << " (CHAOS_SEED=" << seed
            << " repeats the fault schedule), " << rounds << " round(s)\n";
  std::mt19937 rng(seed);

  // ---- the servers and sinks ----
  NatsServer nats;
  Postgres pg;
  pg.psql(
      "CREATE TABLE chaos_sink (tenant_id text NOT NULL, topic text NOT NULL, payload jsonb NOT "
      "NULL)");
  PersistentMosquitto broker;
  MqttRecorder mqtt_rx(broker.port(), "chaos/#");

  std::mutex rx_mu;
  std::mt19937 rx_rng(seed ^ 0x5bd1e995u);
  std::map<std::string, int> webhook_ok;  // id -> 2xx answers
  std::atomic<int> answered_500{0}, stalled{0};
  HttpReceiver receiver([&](const ReceivedRequest& req, size_t) {
    const std::string id = id_of(req.body);
    std::lock_guard<std::mutex> lock(rx_mu);
    const int roll = static_cast<int>(rx_rng() % 100);
    ReceiverResponse r;
    if (roll < 20) {
      ++answered_500;
      r.status = 500;
      r.body = "chaos says no";
    } else if (roll < 25) {
      ++stalled;
      r.delay = 1500ms;  // past the 1s webhook timeout: the plugin gives up and retries
    } else {
      ++webhook_ok[id];
    }
    return r;
  });
  // The slow destination: every answer after 200 ms, a fifth of the webhook timeout.
  std::map<std::string, int> slow_ok;
  HttpReceiver slow_receiver([&](const ReceivedRequest& req, size_t) {
    const std::string id = id_of(req.body);
    {
      std::lock_guard<std::mutex> lock(rx_mu);
      ++slow_ok[id];
    }
    ReceiverResponse r;
    r.delay = 200ms;
    return r;
  });
  // The flapping destination: always 200, when it is up.
  std::map<std::string, int> flap_ok;
  FlappingReceiver flapping([&](const ReceivedRequest& req, size_t) {
    const std::string id = id_of(req.body);
    std::lock_guard<std::mutex> lock(rx_mu);
    ++flap_ok[id];
    return ReceiverResponse{};
  });

  JsClient js(nats.url());
  ASSERT_EQ(create_routes_stream(js.js(), "ROUTES", 1, 30min, 20s), "");

  PluginFolder plugins({webhook_plugin(), mqtt_plugin(), postgresql_plugin(), scripted_plugin()});
  TempDir tmp("rdtest-chaos");
  const std::string record = tmp.file("scripted.txt");
  // Sizing: the webhook timeout covers the wait for a free connection, and a full per-host queue
  // answers "retry"; both use up an attempt. With a backlog behind a stalling receiver the
  // defaults (1024 in flight, 8 connections, 512 queued) burn the attempts of waiting jobs, so the
  // webhook gets enough connections and a queue larger than what the host keeps in flight.
  const std::string config = "nats:\n  url: " + nats.url() +
                             "\n"
                             "  max_deliver: 10\n"
                             "  ack_wait: 5s\n"
                             "  backoff: [200ms, 1s]\n"
                             "delivery:\n"
                             "  max_in_flight: 512\n"
                             "  timeout: 20s\n"
                             "  shutdown_grace: 5s\n"
                             "plugins:\n"
                             "  dir: " +
                             plugins.path() +
                             "\n"
                             "  webhook:\n"
                             "    timeout: 1s\n"
                             "    allowed_networks: [127.0.0.0/8]\n"
                             "    max_connections_per_host: 64\n"
                             "    max_queued_per_host: 1024\n"
                             "  mqtt_republish:\n"
                             "    host: 127.0.0.1\n"
                             "    publish_timeout: 3s\n"
                             "    connect_timeout: 2s\n"
                             "    reconnect_min: 200ms\n"
                             "    reconnect_max: 2s\n"
                             "  postgresql:\n"
                             "    statement_timeout: 3s\n"
                             "    connect_timeout: 2s\n";
  Daemon daemon(config, {{"MQTT_PORT", std::to_string(broker.port())},
                         {"POSTGRESQL_PLUGIN_URL", pg.url()},
                         {"DATABASE_URL", ""}});
  ASSERT_TRUE(daemon.wait_ready(30s)) << daemon.log();

  // ---- jobs ----
  std::vector<JobSpec> specs;
  specs.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) specs.push_back(spec_for(i));
  const json webhook_config = {{"url", receiver.url("/chaos")}};
  const json slow_config = {{"url", slow_receiver.url("/chaos")}};
  const json flap_config = {{"url", flapping.url("/chaos")}};
  const json mqtt_config = {{"topic", "chaos/{tenant_id}/{device_id}"}, {"qos", 1}};
  const json pg_config = {{"table", "chaos_sink"}};
  auto job_text = [&](int i) {
    const JobSpec& s = specs[static_cast<size_t>(i)];
    const std::string tenant = "tenant-" + std::to_string(i % 4);
    std::string type, cfg;
    switch (s.kind) {
      case Kind::webhook:
        type = "webhook", cfg = webhook_config.dump();
        break;
      case Kind::webhook_slow:
        type = "webhook", cfg = slow_config.dump();
        break;
      case Kind::webhook_flapping:
        type = "webhook", cfg = flap_config.dump();
        break;
      case Kind::mqtt:
        type = "mqtt_republish", cfg = mqtt_config.dump();
        break;
      case Kind::postgres:
        type = "postgresql", cfg = pg_config.dump();
        break;
      default:
        type = "test";
        cfg = json{{"script", json::parse(s.script)}, {"record", record}}.dump();
    }
    const std::string device = "dev-" + std::to_string(i % 20);
    return std::make_pair("routes." + tenant,
                          make_job(tenant, 100 + i % 7, type, cfg,
                                   json{{"id", s.id}, {"device_id", device}, {"seq", i}}.dump(),
                                   tenant + "/" + device + "/telemetry"));
  };

  Timeline timeline;
  Publisher pub(nats.url());
  std::mutex seq_mu;
  std::map<uint64_t, int> seq_to_job;  // stream sequence -> job index (scripted record lines)
  std::atomic<int> published{0};
  std::atomic<int> flap_published{0};
  std::atomic<bool> publish_failed{false};
  std::string publish_error;
  // ---- the flapping destination's outages, alongside the other faults; the first begins as the
  // jobs start to flow, so it meets them however few they are ----
  flapping.start(4 * rounds, seed ^ 0x9e3779b9u, timeline, [&] {
    std::lock_guard<std::mutex> lock(rx_mu);
    return flap_published.load() - static_cast<int>(flap_ok.size());
  });
  struct StopFlapping {  // before what its thread uses goes away, should an assertion return
    FlappingReceiver& f;
    ~StopFlapping() { f.stop(); }
  } stop_flapping{flapping};

  const int publishers = 3;
  std::vector<std::thread> pub_threads;
  for (int t = 0; t < publishers; ++t) {
    pub_threads.emplace_back([&, t] {
      try {
        for (int i = t; i < n; i += publishers) {
          const auto [subject, text] = job_text(i);
          const uint64_t seq = pub.publish(subject, text, specs[static_cast<size_t>(i)].id);
          {
            std::lock_guard<std::mutex> lock(seq_mu);
            seq_to_job[seq] = i;
          }
          if (specs[static_cast<size_t>(i)].kind == Kind::webhook_flapping) ++flap_published;
          if (++published == n) timeline.note("all " + std::to_string(n) + " jobs published");
        }
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lock(seq_mu);
        publish_failed = true;
        publish_error = e.what();
      }
    });
  }

  // ---- faults, at random moments while the jobs flow ----
  enum class Fault { kill_daemon, restart_nats, pg_outage, restart_mosquitto };
  std::vector<Fault> faults;
  for (int r = 0; r < rounds; ++r) {
    faults.insert(faults.end(), {Fault::kill_daemon, Fault::kill_daemon, Fault::kill_daemon,
                                 Fault::restart_nats, Fault::pg_outage, Fault::restart_mosquitto});
  }
  std::shuffle(faults.begin(), faults.end(), rng);
  std::uniform_int_distribution<int> gap(300, std::max(gap_ms, 301));
  std::uniform_int_distribution<int> outage(2000, 4000);
  std::uniform_int_distribution<int> pause(0, 500);
  int daemon_kills = 0;
  // Published so far, and what ROUTES still holds (not yet settled).
  auto progress = [&] {
    return "published " + std::to_string(published.load()) + ", in ROUTES " +
           std::to_string(js.stream_msgs("ROUTES"));
  };
  std::this_thread::sleep_for(std::chrono::milliseconds(gap(rng)));
  for (Fault f : faults) {
    switch (f) {
      case Fault::kill_daemon: {
        timeline.note("kill -9 daemon (" + progress() + ")");
        daemon.kill_hard();
        ++daemon_kills;
        std::this_thread::sleep_for(std::chrono::milliseconds(pause(rng)));
        daemon.start();
        timeline.note("daemon restarted");
        break;
      }
      case Fault::restart_nats:
        timeline.note("nats-server stop (" + progress() + ")");
        nats.stop();
        std::this_thread::sleep_for(std::chrono::milliseconds(pause(rng)));
        nats.start();
        timeline.note("nats-server started");
        break;
      case Fault::pg_outage: {
        const int ms = outage(rng);
        timeline.note("PostgreSQL down for " + std::to_string(ms) + "ms (" + progress() + ")");
        pg.stop();
        std::this_thread::sleep_for(std::chrono::milliseconds(ms));
        pg.start();
        timeline.note("PostgreSQL up");
        break;
      }
      case Fault::restart_mosquitto:
        timeline.note("mosquitto stop (" + progress() + ")");
        broker.stop();
        std::this_thread::sleep_for(std::chrono::milliseconds(pause(rng)));
        broker.start();
        timeline.note("mosquitto started");
        break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(gap(rng)));
  }
  timeline.note("last fault over");
  for (auto& t : pub_threads) t.join();
  flapping.join();
  timeline.note("flapping webhook up for good");
  ASSERT_FALSE(publish_failed) << publish_error;
  ASSERT_EQ(flapping.error(), "");

  // ---- settle ----
  const bool settled = drained(js, std::max<std::chrono::milliseconds>(300s, n * 5ms));
  timeline.note(settled ? "ROUTES drained" : "ROUTES NOT drained");
  ASSERT_TRUE(settled) << "jobs still pending: " << js.stream_msgs("ROUTES") << "\n"
                       << timeline.text() << daemon.log().substr(0, 20000);
  EXPECT_TRUE(daemon.process().running()) << "the daemon died on its own\n" << daemon.log();

  // Every job is settled; give the MQTT subscriber a moment to print what the broker still holds.
  std::map<std::string, int> mqtt_seen;
  const size_t mqtt_expected = static_cast<size_t>(std::count_if(
      specs.begin(), specs.end(), [](const JobSpec& s) { return s.kind == Kind::mqtt; }));
  wait_until(
      [&] {
        mqtt_seen.clear();
        for (const auto& p : mqtt_rx.payloads()) ++mqtt_seen[id_of(p)];
        return mqtt_seen.size() >= mqtt_expected;
      },
      30s, 250ms);

  // ---- what each sink saw ----
  std::map<std::string, int> pg_seen;
  {
    std::istringstream rows(pg.psql("SELECT payload->>'id', count(*) FROM chaos_sink GROUP BY 1"));
    std::string line;
    while (std::getline(rows, line)) {
      const size_t bar = line.find('|');
      if (bar != std::string::npos) pg_seen[line.substr(0, bar)] = std::stoi(line.substr(bar + 1));
    }
  }
  std::map<std::string, int> scripted_seen;
  {
    std::lock_guard<std::mutex> lock(seq_mu);
    for (const auto& a : read_attempts(record)) {
      if (a.entry != "ok" && a.entry != "async") continue;
      const uint64_t seq = std::stoull(a.message_id.substr(a.message_id.find(':') + 1));
      auto it = seq_to_job.find(seq);
      if (it != seq_to_job.end()) ++scripted_seen[specs[static_cast<size_t>(it->second)].id];
    }
  }
  std::map<std::string, int> webhook_seen, slow_seen, flap_seen;
  {
    std::lock_guard<std::mutex> lock(rx_mu);
    webhook_seen = webhook_ok;
    slow_seen = slow_ok;
    flap_seen = flap_ok;
  }
  std::map<std::string, std::vector<json>> dlq;  // job id -> its dead-letter records
  std::map<std::string, int> dlq_by_message_id;
  for (const json& r : dead_letters(js)) {
    const std::string id = r.contains("payload") && r["payload"].is_object()
                               ? r["payload"].value("id", "")
                               : std::string();
    dlq[id].push_back(r);
    ++dlq_by_message_id[r.value("message_id", "")];
  }

  // ---- the end state ----
  struct Tally {
    int jobs = 0, received = 0, duplicated = 0, extra = 0, dead_lettered = 0;
  };
  std::map<Kind, Tally> tally;
  int lost = 0, multi_dlq = 0, unexpected_dlq = 0, missing_dlq = 0, failed_but_received = 0;
  std::string problems;
  auto problem = [&](const std::string& text) {
    if (problems.size() < 4000) problems += "  " + text + "\n";
  };
  for (const JobSpec& s : specs) {
    int seen = 0;
    switch (s.kind) {
      case Kind::webhook:
        seen = webhook_seen[s.id];
        break;
      case Kind::webhook_slow:
        seen = slow_seen[s.id];
        break;
      case Kind::webhook_flapping:
        seen = flap_seen[s.id];
        break;
      case Kind::mqtt:
        seen = mqtt_seen[s.id];
        break;
      case Kind::postgres:
        seen = pg_seen[s.id];
        break;
      default:
        seen = scripted_seen[s.id];
    }
    const auto it = dlq.find(s.id);
    const int dead = it == dlq.end() ? 0 : static_cast<int>(it->second.size());
    Tally& t = tally[s.kind];
    ++t.jobs;
    if (seen > 0) ++t.received;
    if (seen > 1) ++t.duplicated, t.extra += seen - 1;
    if (dead > 0) ++t.dead_lettered;
    if (seen == 0 && dead == 0) {
      ++lost;
      problem(s.id + " (" + kind_name(s.kind) + "): neither received nor dead-lettered");
    }
    if (dead > 1) {
      ++multi_dlq;
      problem(s.id + ": " + std::to_string(dead) + " dead-letter records");
    }
    if (s.kind == Kind::scripted_fail) {
      if (dead == 0) {
        ++missing_dlq;
        problem(s.id + ": scripted " + s.script + " but not dead-lettered");
      }
      if (seen > 0) ++failed_but_received;
    } else if (dead > 0) {
      ++unexpected_dlq;
      problem(s.id + " (" + kind_name(s.kind) +
              ") dead-lettered: " + it->second.front().value("error", "") +
              (seen > 0 ? " (also received by its sink)" : ""));
    }
  }
  int without_reason = 0;
  for (const auto& [id, records] : dlq) {
    for (const json& r : records) without_reason += r.value("error", "").empty() ? 1 : 0;
  }
  int shared_message_ids = 0;
  for (const auto& [mid, count] : dlq_by_message_id) shared_message_ids += count > 1 ? 1 : 0;

  std::cout << "chaos timeline (seed " << seed << "):\n" << timeline.text();
  std::cout << "webhook receiver: " << answered_500.load() << " answered 500, " << stalled.load()
            << " stalled; slow receiver: at most " << slow_receiver.max_concurrent()
            << " requests at once; flapping receiver: " << flapping.outages() << " outages, "
            << flapping.waiting_at_returns() << " of its jobs waiting at their ends\n";
  std::cout << "per sink: jobs / received / duplicated (extra copies) / dead-lettered\n";
  int total_dup = 0, total_extra = 0;
  for (const auto& [kind, t] : tally) {
    std::cout << "  " << kind_name(kind) << ": " << t.jobs << " / " << t.received << " / "
              << t.duplicated << " (" << t.extra << ") / " << t.dead_lettered << "\n";
    total_dup += t.duplicated;
    total_extra += t.extra;
  }
  std::cout << "duplicates: " << total_dup << " jobs received more than once, " << total_extra
            << " extra copies in total (allowed: at-least-once)\n";
  std::cout << "daemon: " << daemon_kills << " kill -9, final /health " << health(daemon).dump()
            << "\n";
  std::cout << "run time " << timeline.seconds() << "s\n";
  ::testing::Test::RecordProperty("duplicate_jobs", total_dup);
  ::testing::Test::RecordProperty("duplicate_copies", total_extra);

  EXPECT_EQ(lost, 0) << "jobs lost:\n" << problems;
  EXPECT_EQ(multi_dlq, 0) << problems;
  EXPECT_EQ(shared_message_ids, 0) << "two dead-letter records for one message";
  EXPECT_EQ(without_reason, 0) << "dead-letter records without a reason";
  EXPECT_EQ(missing_dlq, 0) << problems;
  EXPECT_EQ(failed_but_received, 0) << "a job scripted to fail reported success";
  EXPECT_EQ(unexpected_dlq, 0) << "jobs that should have recovered were dead-lettered:\n"
                               << problems;
  EXPECT_EQ(daemon_kills, 3 * rounds);

  // The healthy (if faulty), the slow and the flapping webhook destinations: no dead letters.
  for (Kind k : {Kind::webhook, Kind::webhook_slow, Kind::webhook_flapping}) {
    EXPECT_EQ(tally[k].dead_lettered, 0) << kind_name(k) << ":\n" << problems;
    EXPECT_EQ(tally[k].received, tally[k].jobs) << kind_name(k) << ":\n" << problems;
  }
  // The outages met jobs, and the host saw the destination go away (its circuit opened).
  EXPECT_EQ(flapping.outages(), 4 * rounds);
  EXPECT_GT(flapping.waiting_at_returns(), 0) << "the flapping receiver's outages met no jobs";
  // Logged as destination=webhook|http://127.0.0.1:<port> (text) or "...<port>" (JSON).
  const std::string flap_key = "webhook|http://127.0.0.1:" + std::to_string(flapping.port());
  const auto names_flap = [&](const std::string& line) {
    const size_t at = line.find(flap_key);
    if (at == std::string::npos) return false;
    const size_t end = at + flap_key.size();
    return end == line.size() || line[end] == ' ' || line[end] == '"';
  };
  bool flap_circuit_opened = false;
  std::string flap_lines;  // its circuit transitions, for a failure message
  {
    std::istringstream log(daemon.log());
    std::string line;
    while (std::getline(log, line)) {
      const bool transition = line.find("destination_unavailable") != std::string::npos ||
                              line.find("destination_available") != std::string::npos;
      if (!transition) continue;
      if (!names_flap(line)) continue;
      if (line.find("destination_unavailable") != std::string::npos) flap_circuit_opened = true;
      if (flap_lines.size() < 4000) flap_lines += "  " + line + "\n";
    }
  }
  EXPECT_TRUE(flap_circuit_opened)
      << "no destination_unavailable log line for " << flap_key << "; its log lines:\n"
      << flap_lines;
}

}  // namespace
