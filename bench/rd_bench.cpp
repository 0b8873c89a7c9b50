// rd_bench: throughput and latency of route-delivery against the JetStream ceiling, in one run.
//
//   1. Starts a nats-server (or uses --nats-url) and recreates the ROUTES work-queue stream.
//   2. Ceiling: preloads N jobs and drains them with a bare nats.c pull consumer (fetch 256 + ack
//      each, nothing else), timed the same way as the daemon.
//   3. Preloads the same N jobs again, starts build/bin/route-delivery (which creates its durable
//      consumer) and times the drain.
//   Progress is observed through *stream* info (cheap on a work-queue stream: acked jobs are
//   removed); consumer info, which scans the backlog, is read once at the end.
//   With --latency RATE the daemon starts on an empty stream and jobs are published at RATE/s;
//   an in-process HTTP receiver or an MQTT subscriber timestamps each arrival.
//   With --scenario fairness|outage it plays one of issue 11's destination scenarios against
//   in-process HTTP receivers (a slow one, a fast one, a port with nothing listening) and reports
//   latencies, drain and recovery times, dead letters and duplicates.
//
// See bench/README.md. Output: a report on stdout and, with --json FILE, one JSON line appended.
#include <nats/nats.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench_sinks.hpp"
#include "measure.hpp"
#include "test_support.hpp"

namespace bench {
namespace {

// Plumbing from the shared test-support library (tests/support).
using rdtest::free_port;
using rdtest::http_get;
using rdtest::percentile;
using rdtest::proc_stats;
using rdtest::Process;
using rdtest::ProcStats;
using rdtest::read_file;
using rdtest::self_dir;
using rdtest::tail;
using rdtest::TempDir;
using rdtest::wait_until;
using rdtest::wall_ns;
using rdtest::write_file;

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
constexpr const char* kStream = "ROUTES";
constexpr const char* kDlqStream = "ROUTES_DLQ";
constexpr const char* kConsumer = "route-delivery";
constexpr const char* kCeilingConsumer = "rd-bench-ceiling";
constexpr int kTenants = 8;

// SIGINT/SIGTERM: the drains and publishing loops give up, the run unwinds (its daemon,
// nats-server and temp dir are cleaned up by their destructors) and main re-raises the signal, so
// that a calling shell (scripts/bench) sees the interruption and stops too.
volatile std::sig_atomic_t g_signal = 0;
extern "C" void on_stop_signal(int sig) {
  g_signal = sig;
}
bool interrupted() {
  return g_signal != 0;
}
void throw_if_interrupted() {
  if (interrupted()) throw std::runtime_error("interrupted");
}

const char* const kUsage = R"(usage: rd_bench [options]
  --kind K             postgresql (no-op, no config.table) | webhook | mqtt_republish | mixed
                       [postgresql]
  --jobs N             jobs per drain (ceiling and daemon each get their own copy) [200000]
  --job-bytes B        size of one published job [250]
  --max-in-flight M    delivery.max_in_flight [1024]
  --fetch-batch B      nats.fetch_batch [256]
  --set KEY=VALUE      any extra daemon config key, e.g. plugins.webhook.threads=2 (repeatable;
                       VALUE is read as JSON when it parses, else as a string)
  --webhook-url URL    webhook sink (e.g. nginx); default: rd_bench's own HTTP receiver.
                       Repeatable: job i goes to the (i mod n)-th URL (many destinations)
  --webhook-urls-file F  more webhook URLs, one per line (as if each were a --webhook-url)
  --secret S           webhook route secret; any value not starting whsec_ gives X-Signature-256
                       ["bench-secret"]; "" = unsigned
  --mqtt-host H        broker for mqtt_republish [127.0.0.1]
  --mqtt-port P        broker port (required for mqtt_republish and mixed)
  --latency RATE       latency mode: daemon starts on an empty stream, jobs published at RATE/s
  --duration S         latency mode: seconds of publishing [10]
  --warmup S           latency mode: seconds of samples left out of the percentiles [1]
  --no-ceiling         skip the bare-consumer ceiling
  --ceiling-batch B    fetch batch of the bare consumer [256]
  --nats-url URL       use this server instead of starting one (its ROUTES stream is recreated)
  --nats-server PATH   nats-server binary [nats-server, /usr/sbin/nats-server]
  --daemon PATH        route-delivery binary [next to rd_bench]
  --plugins-dir DIR    plugins.dir for the daemon [daemon default]
  --poll-ms MS         stream-info poll interval [20]
  --timeout S          give up a drain after S seconds [900]
  --profile-cmd CMD    run CMD (with {pid} replaced by the daemon's pid) while the daemon
                       drains; the daemon starts first and jobs are published while it runs.
                       CMD gets SIGINT at the end (e.g. "perf record -g -p {pid} -o perf.data")
  --consumer-cmd CMD   run CMD (via /bin/sh) instead of the daemon to drain the preloaded jobs,
                       measured the same way (drain time, CPU from /proc, nats-server CPU);
                       {nats_url} {stream} {consumer} {max_in_flight} {fetch_batch} are replaced.
                       CMD gets SIGTERM at the end; a JSON line {"ok":N,"failed":N,...} it prints
                       last is reported as its outcomes (e.g. bench/node-peer/peer.js)
  --batches K          throughput mode: after the drain, K-1 more batches of N jobs for the same
                       daemon, each published while it runs after --idle S seconds [1]
  --idle S             seconds without jobs before each further batch [0]
  --between-cmd CMD    run CMD (via /bin/sh, waited for) before each further batch, after the
                       idle time (e.g. restart the sink); CPU, outcomes and nats-server CPU
                       cover all batches ("jobs_total" in the JSON line)
  --sink-pid PID       also report this process's CPU seconds during the daemon run (repeatable)
  --label TEXT         free text carried into the JSON line
  --json FILE          append the results as one JSON line to FILE
  --keep               keep the temp dir (configs, logs, nats store)

Destination scenarios (issue 11; webhook jobs to rd_bench's own HTTP receivers; no ceiling):
  --scenario fairness  tenant A's backlog to a slow endpoint, then tenant B's jobs to a fast one:
                       B's latency (publish -> receipt), A's drain time, dead letters, duplicates.
                       delivery.max_in_flight is 256 unless --max-in-flight is given
    --slow-jobs N      A's jobs [800]              --slow-ms MS   A's endpoint answers after [200]
    --fast-jobs N      B's jobs [100]              --fast-rate R  B's jobs per second [100]
  --scenario outage    tenant B at a steady rate to a healthy endpoint; after a baseline, tenant
                       A's jobs arrive for a port with nothing listening (connection refused)
                       for the outage, then a receiver starts on that port: B's latency with and
                       without the outage, connection attempts while down, recovery time
    --outage-seconds S [60]    --outage-jobs N  A's jobs, spread over the outage [1000]
    --other-rate R     B's jobs per second [200]   --baseline-seconds S  B alone first [10]
    --recovery-timeout S  longest wait for A's jobs after the endpoint is back [60]
)";

struct Options {
  std::string kind = "postgresql";
  int64_t jobs = 200000;
  int job_bytes = 250;
  int max_in_flight = 1024;
  int fetch_batch = 256;
  std::vector<std::pair<std::string, std::string>> sets;
  std::string webhook_url;                // the first --webhook-url
  std::vector<std::string> webhook_urls;  // every --webhook-url
  std::string secret = "bench-secret";
  std::string mqtt_host = "127.0.0.1";
  int mqtt_port = 0;
  double latency_rate = 0;
  double duration_s = 10;
  double warmup_s = 1;
  bool ceiling = true;
  int ceiling_batch = 256;
  std::string nats_url;
  std::string nats_server;
  std::string daemon;
  std::string plugins_dir;
  int poll_ms = 20;
  int timeout_s = 900;
  std::string profile_cmd;
  std::string consumer_cmd;
  int batches = 1;
  double idle_s = 0;
  std::string between_cmd;
  std::vector<int> sink_pids;
  std::string label;
  std::string json_file;
  bool keep = false;
  bool max_in_flight_given = false;
  // Scenarios.
  std::string scenario;
  int slow_jobs = 800;
  int slow_ms = 200;
  int fast_jobs = 100;
  double fast_rate = 100;
  double outage_s = 60;
  int outage_jobs = 1000;
  double other_rate = 200;
  double baseline_s = 10;
  double recovery_timeout_s = 60;
};

[[noreturn]] void usage_error(const std::string& msg) {
  std::cerr << "rd_bench: " << msg << "\n\n" << kUsage;
  std::exit(2);
}

Options parse_options(int argc, char** argv) {
  Options o;
  std::vector<std::string> args(argv + 1, argv + argc);
  for (size_t i = 0; i < args.size(); ++i) {
    std::string key = args[i], value;
    const bool has_eq = key.rfind("--", 0) == 0 && key.find('=') != std::string::npos;
    if (has_eq) {
      value = key.substr(key.find('=') + 1);
      key = key.substr(0, key.find('='));
    }
    auto flag = [&](const char* name) { return key == name; };
    auto val = [&]() -> std::string {
      if (has_eq) return value;
      if (i + 1 >= args.size()) usage_error(key + " needs a value");
      return args[++i];
    };
    auto num = [&]() -> double {
      const std::string v = val();
      char* end = nullptr;
      const double d = std::strtod(v.c_str(), &end);
      if (v.empty() || *end != '\0') usage_error(key + ": '" + v + "' is not a number");
      return d;
    };
    if (flag("-h") || flag("--help")) {
      std::cout << kUsage;
      std::exit(0);
    } else if (flag("--kind")) {
      o.kind = val();
    } else if (flag("--jobs")) {
      o.jobs = static_cast<int64_t>(num());
    } else if (flag("--job-bytes")) {
      o.job_bytes = static_cast<int>(num());
    } else if (flag("--max-in-flight")) {
      o.max_in_flight = static_cast<int>(num());
      o.max_in_flight_given = true;
    } else if (flag("--fetch-batch")) {
      o.fetch_batch = static_cast<int>(num());
    } else if (flag("--set")) {
      const std::string kv = val();
      const auto eq = kv.find('=');
      if (eq == std::string::npos || eq == 0) usage_error("--set wants KEY=VALUE, got " + kv);
      o.sets.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    } else if (flag("--webhook-url")) {
      o.webhook_urls.push_back(val());
      o.webhook_url = o.webhook_urls.front();
    } else if (flag("--secret")) {
      o.secret = val();
    } else if (flag("--mqtt-host")) {
      o.mqtt_host = val();
    } else if (flag("--mqtt-port")) {
      o.mqtt_port = static_cast<int>(num());
    } else if (flag("--latency")) {
      o.latency_rate = num();
    } else if (flag("--duration")) {
      o.duration_s = num();
    } else if (flag("--warmup")) {
      o.warmup_s = num();
    } else if (flag("--no-ceiling")) {
      o.ceiling = false;
    } else if (flag("--ceiling-batch")) {
      o.ceiling_batch = static_cast<int>(num());
    } else if (flag("--nats-url")) {
      o.nats_url = val();
    } else if (flag("--nats-server")) {
      o.nats_server = val();
    } else if (flag("--daemon")) {
      o.daemon = val();
    } else if (flag("--plugins-dir")) {
      o.plugins_dir = val();
    } else if (flag("--poll-ms")) {
      o.poll_ms = static_cast<int>(num());
    } else if (flag("--timeout")) {
      o.timeout_s = static_cast<int>(num());
    } else if (flag("--profile-cmd")) {
      o.profile_cmd = val();
    } else if (flag("--webhook-urls-file")) {
      const std::string path = val();
      std::ifstream in(path);
      if (!in) usage_error("--webhook-urls-file: cannot read " + path);
      for (std::string line; std::getline(in, line);) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (!line.empty()) o.webhook_urls.push_back(line);
      }
      if (o.webhook_urls.empty()) usage_error("--webhook-urls-file: no URL in " + path);
      o.webhook_url = o.webhook_urls.front();
    } else if (flag("--batches")) {
      o.batches = static_cast<int>(num());
    } else if (flag("--idle")) {
      o.idle_s = num();
    } else if (flag("--between-cmd")) {
      o.between_cmd = val();
    } else if (flag("--consumer-cmd")) {
      o.consumer_cmd = val();
    } else if (flag("--sink-pid")) {
      o.sink_pids.push_back(static_cast<int>(num()));
    } else if (flag("--label")) {
      o.label = val();
    } else if (flag("--json")) {
      o.json_file = val();
    } else if (flag("--keep")) {
      o.keep = true;
    } else if (flag("--scenario")) {
      o.scenario = val();
    } else if (flag("--slow-jobs")) {
      o.slow_jobs = static_cast<int>(num());
    } else if (flag("--slow-ms")) {
      o.slow_ms = static_cast<int>(num());
    } else if (flag("--fast-jobs")) {
      o.fast_jobs = static_cast<int>(num());
    } else if (flag("--fast-rate")) {
      o.fast_rate = num();
    } else if (flag("--outage-seconds")) {
      o.outage_s = num();
    } else if (flag("--outage-jobs")) {
      o.outage_jobs = static_cast<int>(num());
    } else if (flag("--other-rate")) {
      o.other_rate = num();
    } else if (flag("--baseline-seconds")) {
      o.baseline_s = num();
    } else if (flag("--recovery-timeout")) {
      o.recovery_timeout_s = num();
    } else {
      usage_error("unknown option " + key);
    }
  }
  if (!o.scenario.empty()) {
    if (o.scenario != "fairness" && o.scenario != "outage")
      usage_error("--scenario must be fairness or outage");
    o.kind = "webhook";  // the scenarios' jobs are webhooks to rd_bench's receivers
    if (o.slow_jobs <= 0 || o.fast_jobs <= 0 || o.fast_rate <= 0 || o.outage_jobs <= 0 ||
        o.other_rate <= 0 || o.outage_s <= 0 || o.baseline_s < 0 || o.slow_ms < 0)
      usage_error("scenario counts, rates and durations must be positive");
  }
  if (o.kind != "postgresql" && o.kind != "webhook" && o.kind != "mqtt_republish" &&
      o.kind != "mixed")
    usage_error("--kind must be postgresql, webhook, mqtt_republish or mixed");
  if ((o.kind == "mqtt_republish" || o.kind == "mixed") && o.mqtt_port <= 0)
    usage_error("--kind " + o.kind + " needs --mqtt-port (a running broker)");
  if (o.jobs <= 0 || o.max_in_flight <= 0 || o.fetch_batch <= 0 || o.poll_ms <= 0)
    usage_error("--jobs, --max-in-flight, --fetch-batch and --poll-ms must be positive");
  if (!o.consumer_cmd.empty() &&
      (o.latency_rate > 0 || !o.profile_cmd.empty() || !o.scenario.empty()))
    usage_error(
        "--consumer-cmd works only in throughput mode (no --latency, --profile-cmd, "
        "--scenario)");
  if (o.batches < 1 || o.idle_s < 0) usage_error("--batches must be >= 1 and --idle >= 0");
  if (o.batches > 1 && (o.latency_rate > 0 || !o.profile_cmd.empty() || !o.scenario.empty()))
    usage_error(
        "--batches works only in throughput mode (no --latency, --profile-cmd, --scenario)");
  if (o.daemon.empty()) o.daemon = self_dir() + "/route-delivery";
  if (o.nats_server.empty()) {
    o.nats_server = "nats-server";
    if (std::system("command -v nats-server >/dev/null 2>&1") != 0)
      o.nats_server = "/usr/sbin/nats-server";
  }
  return o;
}

void check(natsStatus s, const std::string& what, jsErrCode err = static_cast<jsErrCode>(0)) {
  if (s == NATS_OK) return;
  std::string text = what + ": " + natsStatus_GetText(s);
  if (err != 0) text += " (JetStream error " + std::to_string(static_cast<int>(err)) + ")";
  const char* last = nats_GetLastError(nullptr);
  if (last != nullptr && *last != '\0') text += " - " + std::string(last);
  throw std::runtime_error(text);
}

// ---- jobs ----

// One job: `route` with `config` for `tenant`; the payload carries "seq" and "sent_ns" and is
// padded so the job is about `job_bytes`.
std::string build_job(const std::string& kind, const std::string& tenant, int64_t route,
                      const json& config, int64_t seq, int64_t sent_ns, int job_bytes) {
  json payload = {{"device_id", "dev-" + std::to_string(seq % 1000)},
                  {"seq", seq},
                  {"sent_ns", sent_ns},
                  {"temp", 21.5}};
  json job = {
      {"route", {{"id", route}, {"destination_type", kind}, {"destination_config", config}}},
      {"topic", tenant + "/dev-" + std::to_string(seq % 1000) + "/telemetry"},
      {"payload", payload},
      {"tenant_id", tenant}};
  std::string body = job.dump();
  if (static_cast<int>(body.size()) < job_bytes) {
    // 9 = the bytes of ,"pad":"" itself.
    const auto room = static_cast<size_t>(job_bytes) - body.size();
    job["payload"]["pad"] = std::string(room > 9 ? room - 9 : 0, 'x');
    body = job.dump();
  }
  return body;
}

class JobFactory {
 public:
  JobFactory(const Options& o, std::vector<std::string> webhook_urls)
      : o_(o), webhook_urls_(std::move(webhook_urls)) {}

  // The i-th job: subject and body. Kind "mixed" cycles webhook, mqtt_republish, postgresql.
  std::pair<std::string, std::string> make(int64_t i, int64_t sent_ns) const {
    static const char* const kMixed[] = {"webhook", "mqtt_republish", "postgresql"};
    const std::string kind = o_.kind == "mixed" ? kMixed[i % 3] : o_.kind;
    const std::string tenant = "tenant-" + std::to_string(i % kTenants);
    json config = json::object();
    int64_t route = 100 + i % kTenants;
    if (kind == "webhook") {
      config["url"] = webhook_urls_[static_cast<size_t>(i) % webhook_urls_.size()];
      if (!o_.secret.empty()) config["secret"] = o_.secret;
    } else if (kind == "mqtt_republish") {
      config["topic"] = "bench/{tenant_id}/{device_id}";
      route += 100;
    } else {
      route += 200;
    }
    return {"routes." + tenant, build_job(kind, tenant, route, config, i, sent_ns, o_.job_bytes)};
  }

 private:
  const Options& o_;
  std::vector<std::string> webhook_urls_;
};

// ---- NATS ----

class Nats {
 public:
  explicit Nats(const std::string& url) {
    natsOptions* opts = nullptr;
    check(natsOptions_Create(&opts), "nats options");
    natsOptions_SetURL(opts, url.c_str());
    natsOptions_SetName(opts, "rd-bench");
    natsOptions_SetTimeout(opts, 5000);
    natsOptions_SetMaxPendingMsgs(opts, 1 << 20);
    const natsStatus s = natsConnection_Connect(&nc_, opts);
    natsOptions_Destroy(opts);
    check(s, "connect to " + url);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 10000;
    jo.PublishAsync.MaxPending = 8192;
    jo.PublishAsync.ErrHandler = &Nats::on_pub_error;
    jo.PublishAsync.ErrHandlerClosure = this;
    check(natsConnection_JetStream(&js_, nc_, &jo), "JetStream context");
  }
  ~Nats() {
    jsCtx_Destroy(js_);
    natsConnection_Destroy(nc_);
  }
  Nats(const Nats&) = delete;
  Nats& operator=(const Nats&) = delete;

  natsConnection* nc() { return nc_; }
  jsCtx* js() { return js_; }

  void recreate_routes() {
    jsErrCode err = static_cast<jsErrCode>(0);
    js_DeleteStream(js_, kStream, nullptr, &err);
    js_DeleteStream(js_, kDlqStream, nullptr, &err);  // the daemon recreates it; counts are per run
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = kStream;
    const char* subjects[] = {"routes.>"};
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Retention = js_WorkQueuePolicy;
    sc.Storage = js_FileStorage;
    jsStreamInfo* si = nullptr;
    err = static_cast<jsErrCode>(0);
    check(js_AddStream(&si, js_, &sc, nullptr, &err), "create stream ROUTES", err);
    jsStreamInfo_Destroy(si);
  }

  // Messages in `stream`; -1 when it does not exist.
  int64_t stream_msgs(const char* stream) {
    jsStreamInfo* si = nullptr;
    jsErrCode err = static_cast<jsErrCode>(0);
    if (js_GetStreamInfo(&si, js_, stream, nullptr, &err) != NATS_OK) return -1;
    const auto n = static_cast<int64_t>(si->State.Msgs);
    jsStreamInfo_Destroy(si);
    return n;
  }

  // Publishes N jobs (asynchronously, acked); returns seconds taken.
  // `verify`: check the stream holds exactly n jobs (not when a consumer already runs).
  double preload(const JobFactory& jobs, int64_t n, bool verify = true) {
    const auto t0 = Clock::now();
    for (int64_t i = 0; i < n; ++i) {
      const auto [subject, body] = jobs.make(i, wall_ns());
      publish(subject, body);
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 60000;
    check(js_PublishAsyncComplete(js_, &po), "preload: waiting for publish acks");
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    if (pub_errors_.load() != 0)
      throw std::runtime_error("preload: " + std::to_string(pub_errors_.load()) +
                               " publishes failed");
    const int64_t have = verify ? stream_msgs(kStream) : n;
    if (have != n)
      throw std::runtime_error("preload: stream holds " + std::to_string(have) + " jobs, wanted " +
                               std::to_string(n));
    return secs;
  }

  void publish(const std::string& subject, const std::string& body) {
    natsStatus s;
    while ((s = js_PublishAsync(js_, subject.c_str(), body.data(), static_cast<int>(body.size()),
                                nullptr)) == NATS_TIMEOUT) {
      // MaxPending reached and the stall wait expired: just try again.
    }
    check(s, "publish");
  }

  // Waits for the acks of every asynchronous publish so far.
  void wait_published() {
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 60000;
    check(js_PublishAsyncComplete(js_, &po), "waiting for publish acks");
  }

  void delete_consumer(const char* name) {
    jsErrCode err = static_cast<jsErrCode>(0);
    js_DeleteConsumer(js_, kStream, name, nullptr, &err);
  }

 private:
  static void on_pub_error(jsCtx*, jsPubAckErr* pae, void* closure) {
    static_cast<Nats*>(closure)->pub_errors_.fetch_add(1);
    if (pae != nullptr && pae->ErrText != nullptr)
      std::fprintf(stderr, "rd_bench: publish failed: %s\n", pae->ErrText);
  }

  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
  std::atomic<int64_t> pub_errors_{0};
};

// ---- drain observation (stream info only) ----

struct Drain {
  bool complete = false;
  double seconds = 0;      // last sample still full -> first sample empty
  double steady_rate = 0;  // jobs/s between 10 % and 90 % drained
  double rate(int64_t n) const { return seconds > 0 ? static_cast<double>(n) / seconds : 0; }
  int64_t left = 0;  // jobs still in the stream when it gave up
};

// Polls stream info until the stream is empty. The drain starts at the last sample that still
// held all `n` jobs, or at `since` when given (jobs published while the daemon runs).
Drain observe_drain(Nats& nats, int64_t n, int poll_ms, int timeout_s,
                    const std::function<bool()>& alive,
                    std::optional<Clock::time_point> since = std::nullopt) {
  Drain d;
  const auto t_begin = since.value_or(Clock::now());
  std::optional<Clock::time_point> last_full, t10, t90;
  int64_t prev = n;
  auto prev_t = t_begin;
  while (true) {
    const auto now = Clock::now();
    const int64_t msgs = nats.stream_msgs(kStream);
    if (msgs >= n) last_full = now;
    // Interpolate the 10 % / 90 % crossings between samples.
    auto crossing = [&](double frac) {
      const double level = static_cast<double>(n) * (1.0 - frac);
      const double a = static_cast<double>(prev), b = static_cast<double>(msgs);
      const double f = a == b ? 1.0 : (a - level) / (a - b);
      return prev_t + std::chrono::duration_cast<Clock::duration>((now - prev_t) * f);
    };
    if (msgs >= 0) {
      if (!t10 && msgs <= n * 9 / 10) t10 = crossing(0.1);
      if (!t90 && msgs <= n / 10) t90 = crossing(0.9);
      prev = msgs;
      prev_t = now;
    }
    if (msgs == 0) {
      d.complete = true;
      const auto start = since ? *since : last_full.value_or(t_begin);
      d.seconds = std::chrono::duration<double>(now - start).count();
      if (t10 && t90 && *t90 > *t10) {
        d.steady_rate =
            0.8 * static_cast<double>(n) / std::chrono::duration<double>(*t90 - *t10).count();
      }
      return d;
    }
    if (now - t_begin > std::chrono::seconds(timeout_s) || !alive() || interrupted()) {
      d.left = msgs;
      return d;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(poll_ms));
  }
}

// ---- ceiling: a bare pull consumer, fetch + ack, nothing else ----

struct Ceiling {
  Drain drain;
  double inproc_rate = 0;  // jobs / (last ack flushed - first fetch), measured in the consumer
  double server_cpu_s = 0;
};

Ceiling run_ceiling(const std::string& url, Nats& observer, int64_t n, int batch,
                    const Options& o) {
  Nats nats(url);
  // The same kind of consumer the daemon creates (nats_client.cpp): durable, explicit ack, no
  // subject filter, bound by a pull subscription.
  jsConsumerConfig cc;
  jsConsumerConfig_Init(&cc);
  cc.Durable = kCeilingConsumer;
  cc.AckPolicy = js_AckExplicit;
  cc.DeliverPolicy = js_DeliverAll;
  cc.AckWait = int64_t(30) * 1'000'000'000;
  cc.MaxDeliver = 3;
  cc.MaxAckPending = 65536;
  cc.MaxWaiting = 512;
  jsConsumerInfo* ci = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  check(js_AddConsumer(&ci, nats.js(), kStream, &cc, nullptr, &err), "ceiling: add consumer", err);
  jsConsumerInfo_Destroy(ci);
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = kStream;
  so.Consumer = kCeilingConsumer;
  natsSubscription* sub = nullptr;
  check(js_PullSubscribe(&sub, nats.js(), "routes.>", kCeilingConsumer, nullptr, &so, &err),
        "ceiling: pull subscribe", err);
  std::atomic<int64_t> acked{0};
  std::atomic<bool> failed{false};
  double inproc = 0;
  std::thread consumer([&] {
    std::optional<Clock::time_point> first;
    while (acked.load() < n && !failed.load()) {
      natsMsgList list{};
      jsErrCode e = static_cast<jsErrCode>(0);
      const natsStatus s = natsSubscription_Fetch(&list, sub, batch, 5000, &e);
      if (s == NATS_TIMEOUT) continue;
      if (s != NATS_OK) {
        std::fprintf(stderr, "rd_bench: ceiling fetch failed: %s\n", natsStatus_GetText(s));
        failed = true;
        break;
      }
      if (!first) first = Clock::now();
      for (int i = 0; i < list.Count; ++i) natsMsg_Ack(list.Msgs[i], nullptr);
      acked.fetch_add(list.Count);
      natsMsgList_Destroy(&list);
    }
    natsConnection_FlushTimeout(nats.nc(), 10000);
    if (first) {
      inproc = static_cast<double>(acked.load()) /
               std::chrono::duration<double>(Clock::now() - *first).count();
    }
  });
  Ceiling c;
  c.drain = observe_drain(observer, n, o.poll_ms, o.timeout_s, [&] { return !failed.load(); });
  if (!c.drain.complete) failed = true;
  consumer.join();
  c.inproc_rate = inproc;
  natsSubscription_Destroy(sub);
  nats.delete_consumer(kCeilingConsumer);
  throw_if_interrupted();
  if (!c.drain.complete) throw std::runtime_error("ceiling consumer did not drain the stream");
  return c;
}

// ---- the daemon ----

json config_value(const std::string& text) {
  json v = json::parse(text, nullptr, false);
  return v.is_discarded() ? json(text) : v;
}

void set_path(json& root, const std::string& dotted, json value) {
  json* node = &root;
  size_t start = 0;
  while (true) {
    const auto dot = dotted.find('.', start);
    const std::string key = dotted.substr(start, dot == std::string::npos ? dot : dot - start);
    if (dot == std::string::npos) {
      (*node)[key] = std::move(value);
      return;
    }
    node = &(*node)[key];
    start = dot + 1;
  }
}

// The daemon's config as JSON, which is valid YAML.
std::string daemon_config(const Options& o, const std::string& nats_url, int http_port) {
  json c;
  set_path(c, "nats.url", nats_url);
  set_path(c, "nats.fetch_batch", o.fetch_batch);
  set_path(c, "delivery.max_in_flight", o.max_in_flight);
  set_path(c, "http.port", http_port);
  set_path(c, "http.bind", "127.0.0.1");
  set_path(c, "log.level", "warn");
  if (!o.plugins_dir.empty()) set_path(c, "plugins.dir", o.plugins_dir);
  set_path(c, "plugins.webhook.allowed_networks", json::array({"127.0.0.0/8"}));
  if (o.mqtt_port > 0) {
    set_path(c, "plugins.mqtt_republish.host", o.mqtt_host);
    set_path(c, "plugins.mqtt_republish.port", o.mqtt_port);
    set_path(c, "plugins.mqtt_republish.qos", 1);
  }
  for (const auto& [k, v] : o.sets) set_path(c, k, config_value(v));
  return c.dump(2);
}

struct Outcomes {
  std::map<std::string, double> by_outcome;  // route_delivery_deliveries_total summed over types
  double total(const std::string& outcome) const {
    auto it = by_outcome.find(outcome);
    return it == by_outcome.end() ? 0 : it->second;
  }
};

Outcomes read_outcomes(int http_port) {
  Outcomes out;
  auto r = http_get(http_port, "/metrics");
  if (r.status != 200) return out;
  std::istringstream in(r.body);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("route_delivery_deliveries_total{", 0) != 0) continue;
    const auto o = line.find("outcome=\"");
    const auto sp = line.rfind(' ');
    if (o == std::string::npos || sp == std::string::npos) continue;
    const auto q = line.find('"', o + 9);
    out.by_outcome[line.substr(o + 9, q - o - 9)] += std::atof(line.c_str() + sp + 1);
  }
  return out;
}

std::string fmt(double v, int decimals = 0) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  // Thousands separators for readability of rates.
  std::string s(buf);
  const auto dot = s.find('.');
  const size_t int_end = dot == std::string::npos ? s.size() : dot;
  const size_t first = (s[0] == '-') ? 1 : 0;
  for (size_t i = int_end; i > first + 3; i -= 3) s.insert(i - 3, " ");
  return s;
}

// ---- the machine ----

// CPU seconds the whole machine spent in processes (user, nice, system from /proc/stat), in
// interrupts (irq, softirq: much of loopback networking) and stolen by the hypervisor.
struct MachineCpu {
  double busy_s = 0;
  double irq_s = 0;
  double steal_s = 0;
};
MachineCpu machine_cpu() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  double user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
  const double hz = static_cast<double>(::sysconf(_SC_CLK_TCK));
  return {(user + nice + system) / hz, (irq + softirq) / hz, steal / hz};
}

// CPU seconds of rd_bench itself (every thread).
double self_cpu_s() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// The 1-minute load average.
double loadavg1() {
  std::ifstream in("/proc/loadavg");
  double l = -1;
  in >> l;
  return l;
}

// ---- shared set-up ----

// Starts a nats-server in `tmp` unless --nats-url is given, connects and recreates ROUTES.
std::unique_ptr<Nats> start_nats(const Options& o, const TempDir& tmp,
                                 std::unique_ptr<Process>& server, std::string& url) {
  url = o.nats_url;
  if (url.empty()) {
    const int port = free_port();
    url = "nats://127.0.0.1:" + std::to_string(port);
    server = std::make_unique<Process>(
        std::vector<std::string>{o.nats_server, "-a", "127.0.0.1", "-p", std::to_string(port),
                                 "-js", "-sd", tmp.file("jetstream")},
        std::map<std::string, std::string>{}, tmp.file("nats-server.log"));
  }
  std::unique_ptr<Nats> nats;
  wait_until(
      [&] {
        try {
          nats = std::make_unique<Nats>(url);
          return true;
        } catch (const std::exception&) {
          return false;
        }
      },
      std::chrono::seconds(10), std::chrono::milliseconds(50));
  if (!nats) throw std::runtime_error("cannot connect to " + url);
  nats->recreate_routes();
  return nats;
}

// Every sample of the daemon's /metrics, "name{labels}" -> value; empty when unreachable.
std::map<std::string, double> read_metrics(int http_port) {
  std::map<std::string, double> out;
  auto r = http_get(http_port, "/metrics");
  if (r.status != 200) return out;
  std::istringstream in(r.body);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    const auto sp = line.rfind(' ');
    if (sp == std::string::npos) continue;
    out[line.substr(0, sp)] = std::atof(line.c_str() + sp + 1);
  }
  return out;
}

// -1 when the daemon does not export the series (e.g. one from before issue 11).
double metric(const std::map<std::string, double>& m, const std::string& series) {
  auto it = m.find(series);
  return it == m.end() ? -1 : it->second;
}

// The kernel's TcpAttemptFails (/proc/net/snmp): connections that went from SYN-SENT to CLOSED,
// e.g. refused. Machine-wide, so other programs' refused connections count too.
int64_t tcp_attempt_fails() {
  std::ifstream in("/proc/net/snmp");
  std::string header, values;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("Tcp:", 0) != 0) continue;
    if (header.empty()) {
      header = line;
    } else {
      values = line;
      break;
    }
  }
  std::istringstream h(header), v(values);
  for (std::string name, value; h >> name && v >> value;) {
    if (name == "AttemptFails") return std::stoll(value);
  }
  return -1;
}

json latency_summary(std::vector<double> ms) {
  const double max = ms.empty() ? 0.0 : *std::max_element(ms.begin(), ms.end());
  return {{"samples", ms.size()},
          {"p50", percentile(ms, 50)},
          {"p90", percentile(ms, 90)},
          {"p99", percentile(ms, 99)},
          {"max", max}};
}

std::string latency_text(const json& l) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "p50 %.1f ms  p99 %.1f ms  max %.1f ms  (%d samples)",
                l["p50"].get<double>(), l["p99"].get<double>(), l["max"].get<double>(),
                l["samples"].get<int>());
  return buf;
}

// Publishes `total` jobs at `rate` jobs/s (each flushed at once), job i built by `make(i)`.
void publish_at_rate(Nats& nats, double rate, int64_t total, int64_t first,
                     const std::function<std::pair<std::string, std::string>(int64_t)>& make) {
  const double interval_ns = 1e9 / rate;
  const auto t0 = Clock::now();
  for (int64_t i = 0; i < total; ++i) {
    throw_if_interrupted();
    std::this_thread::sleep_until(t0 +
                                  std::chrono::nanoseconds(static_cast<int64_t>(interval_ns * i)));
    const auto [subject, body] = make(first + i);
    nats.publish(subject, body);
    natsConnection_Flush(nats.nc());
  }
}

// ---- destination scenarios (issue 11) ----

// A scenario's daemon: started on the config rd_bench writes (plus --set keys), ready or thrown.
class ScenarioDaemon {
 public:
  ScenarioDaemon(const Options& o, const TempDir& tmp, const std::string& url)
      : tmp_(tmp), http_port_(free_port()) {
    write_file(tmp.file("route-delivery.yaml"), daemon_config(o, url, http_port_));
    process_ = std::make_unique<Process>(
        std::vector<std::string>{o.daemon, "--config", tmp.file("route-delivery.yaml")},
        std::map<std::string, std::string>{}, tmp.file("route-delivery.log"));
    if (!wait_until(
            [&] { return http_get(http_port_, "/ready").status == 200 || !process_->running(); },
            std::chrono::seconds(30), std::chrono::milliseconds(20)) ||
        !process_->running()) {
      throw std::runtime_error("daemon did not become ready:\n" + log_tail());
    }
  }
  Process& process() { return *process_; }
  int http_port() const { return http_port_; }
  bool alive() { return process_->running(); }
  std::string log_tail() const { return tail(read_file(tmp_.file("route-delivery.log")), 20); }

 private:
  const TempDir& tmp_;
  int http_port_;
  std::unique_ptr<Process> process_;
};

// The end of every scenario: the stream drained, dead letters, redeliveries, the daemon's CPU and
// memory, its exit status. Adds them to `result` and prints them.
void finish_scenario(Nats& nats, ScenarioDaemon& d, json& result) {
  const bool drained = wait_until([&] { return nats.stream_msgs(kStream) == 0 || !d.alive(); },
                                  std::chrono::seconds(30), std::chrono::milliseconds(50));
  const int64_t left = std::max<int64_t>(0, nats.stream_msgs(kStream));
  const int64_t dlq = std::max<int64_t>(0, nats.stream_msgs(kDlqStream));
  int64_t redelivered = -1;
  jsConsumerInfo* ci = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  if (js_GetConsumerInfo(&ci, nats.js(), kStream, kConsumer, nullptr, &err) == NATS_OK) {
    redelivered = ci->NumRedelivered;
    jsConsumerInfo_Destroy(ci);
  }
  const Outcomes outcomes = read_outcomes(d.http_port());
  const auto ps = proc_stats(d.process().pid());
  const bool was_alive = d.alive();
  const int exit_status = d.process().stop(std::chrono::seconds(30));
  result["complete"] = drained && left == 0;
  result["left"] = left;
  result["dead_lettered"] = dlq;
  result["redelivered"] = redelivered;
  result["outcomes"] = outcomes.by_outcome;
  result["exit_status"] = exit_status;
  if (ps) {
    result["daemon"] = {{"peak_rss_mib", ps->peak_rss_mib},
                        {"cpu_s", ps->cpu_seconds},
                        {"user_s", ps->user_seconds},
                        {"sys_s", ps->sys_seconds},
                        {"threads", ps->threads}};
  }
  std::printf("  outcomes          ");
  for (const auto& [k, v] : outcomes.by_outcome) std::printf("%s=%s ", k.c_str(), fmt(v).c_str());
  std::printf("| dead-lettered=%lld redelivered=%lld%s\n", static_cast<long long>(dlq),
              static_cast<long long>(redelivered),
              left > 0 ? ("  ** " + std::to_string(left) + " LEFT IN THE STREAM **").c_str() : "");
  if (ps) {
    std::printf("  daemon            peak RSS %.1f MiB, CPU %.2f s\n", ps->peak_rss_mib,
                ps->cpu_seconds);
  }
  if (!was_alive || exit_status != 0)
    std::printf("  daemon exited with status %d; log tail:\n%s\n", exit_status,
                d.log_tail().c_str());
}

json scenario_result(const Options& o, const std::string& name) {
  json sets = json::object();
  for (const auto& [k, v] : o.sets) sets[k] = v;
  return {{"label", o.label},
          {"kind", "webhook"},
          {"mode", "scenario"},
          {"scenario", name},
          {"daemon_bin", o.daemon},
          {"job_bytes", o.job_bytes},
          {"signed", !o.secret.empty()},
          {"set", sets},
          {"machine", {{"loadavg1_start", loadavg1()}}}};
}

json webhook_config(const Options& o, const std::string& url) {
  json c = {{"url", url}};
  if (!o.secret.empty()) c["secret"] = o.secret;
  return c;
}

// Tenant A's backlog to a slow endpoint, then tenant B's jobs to a fast one.
json run_fairness(const Options& opts, const TempDir& tmp, Nats& nats, const std::string& url) {
  Options o = opts;
  if (!o.max_in_flight_given) o.max_in_flight = 256;  // A's backlog is more than all the slots
  HttpReceiver slow(o.slow_ms), fast;
  json result = scenario_result(o, "fairness");
  result["max_in_flight"] = o.max_in_flight;
  result["slow"] = {{"jobs", o.slow_jobs}, {"answer_ms", o.slow_ms}};
  result["fast"] = {{"jobs", o.fast_jobs}, {"rate", o.fast_rate}};
  std::printf(
      "rd_bench: scenario fairness: tenant A %d jobs to an endpoint answering in %d ms, then "
      "tenant B %d jobs at %s/s to a fast one; max_in_flight=%d\n",
      o.slow_jobs, o.slow_ms, o.fast_jobs, fmt(o.fast_rate).c_str(), o.max_in_flight);
  std::fflush(stdout);
  ScenarioDaemon d(o, tmp, url);

  const json slow_cfg = webhook_config(o, slow.url()), fast_cfg = webhook_config(o, fast.url());
  const int64_t a_t0 = wall_ns();
  for (int i = 0; i < o.slow_jobs; ++i)
    nats.publish("routes.tenant-a",
                 build_job("webhook", "tenant-a", 1, slow_cfg, i, wall_ns(), o.job_bytes));
  nats.wait_published();
  // B starts once A's backlog holds the slow endpoint's connections.
  wait_until([&] { return slow.log().received() >= 8 || !d.alive(); }, std::chrono::seconds(30));
  publish_at_rate(nats, o.fast_rate, o.fast_jobs, 0, [&](int64_t i) {
    return std::make_pair(std::string("routes.tenant-b"),
                          build_job("webhook", "tenant-b", 2, fast_cfg, i, wall_ns(), o.job_bytes));
  });
  wait_until(
      [&] { return fast.log().distinct() >= static_cast<uint64_t>(o.fast_jobs) || !d.alive(); },
      std::chrono::seconds(120), std::chrono::milliseconds(20));
  const json b_lat = latency_summary(fast.log().latencies_ms());
  // A's backlog: 8 connections x (1000 / slow_ms) answers a second, at best.
  const double a_best_s = o.slow_jobs * o.slow_ms / 8000.0;
  const bool a_done = wait_until(
      [&] { return slow.log().distinct() >= static_cast<uint64_t>(o.slow_jobs) || !d.alive(); },
      std::chrono::milliseconds(static_cast<int64_t>(1000 * (3 * a_best_s + 120))),
      std::chrono::milliseconds(20));
  int64_t a_last = a_t0;
  for (const auto& a : slow.log().arrivals()) a_last = std::max(a_last, a.arrived_ns);
  const double a_drain_s = static_cast<double>(a_last - a_t0) / 1e9;
  const auto m = read_metrics(d.http_port());

  result["fast_latency_ms"] = b_lat;
  result["fast_received"] = fast.log().distinct();
  result["slow_received"] = slow.log().distinct();
  result["slow_drain_s"] = a_drain_s;
  result["slow_drain_best_s"] = a_best_s;
  result["duplicates"] = slow.log().duplicates() + fast.log().duplicates();
  result["deferrals"] = {
      {"saturated", metric(m, "route_delivery_deferrals_total{reason=\"saturated\"}")},
      {"unavailable", metric(m, "route_delivery_deferrals_total{reason=\"unavailable\"}")},
      {"circuit_open", metric(m, "route_delivery_deferrals_total{reason=\"circuit_open\"}")}};
  std::printf("  tenant B (fast)   %s; %llu/%d received\n", latency_text(b_lat).c_str(),
              static_cast<unsigned long long>(fast.log().distinct()), o.fast_jobs);
  std::printf(
      "  tenant A (slow)   %llu/%d delivered in %.1f s from its first publish (8 connections "
      "at %d ms: %.1f s at best)%s\n",
      static_cast<unsigned long long>(slow.log().distinct()), o.slow_jobs, a_drain_s, o.slow_ms,
      a_best_s, a_done ? "" : "  ** NOT ALL DELIVERED **");
  std::printf("  duplicates        %llu; deferrals saturated=%s\n",
              static_cast<unsigned long long>(result["duplicates"].get<uint64_t>()),
              fmt(result["deferrals"]["saturated"].get<double>()).c_str());
  finish_scenario(nats, d, result);
  result["complete"] = result["complete"].get<bool>() && a_done;
  return result;
}

// Tenant B at a steady rate; tenant A's jobs to a port with nothing listening, then it is back.
json run_outage(const Options& o, const TempDir& tmp, Nats& nats, const std::string& url) {
  HttpReceiver others;
  const int dead_port = free_port();
  const std::string dead_url = "http://127.0.0.1:" + std::to_string(dead_port) + "/hook";
  json result = scenario_result(o, "outage");
  result["max_in_flight"] = o.max_in_flight;
  result["outage"] = {{"seconds", o.outage_s}, {"jobs", o.outage_jobs}};
  result["other"] = {{"rate", o.other_rate}, {"baseline_s", o.baseline_s}};
  std::printf(
      "rd_bench: scenario outage: tenant B at %s/s to a healthy endpoint, %.0f s alone, then "
      "%.0f s with tenant A's %d jobs to a port refusing connections, then that endpoint "
      "back\n",
      fmt(o.other_rate).c_str(), o.baseline_s, o.outage_s, o.outage_jobs);
  std::fflush(stdout);
  ScenarioDaemon d(o, tmp, url);

  const json other_cfg = webhook_config(o, others.url()), dead_cfg = webhook_config(o, dead_url);
  const auto n_baseline = static_cast<int64_t>(o.other_rate * o.baseline_s);
  const auto n_other = static_cast<int64_t>(o.other_rate * (o.baseline_s + o.outage_s));
  // B runs through the baseline and the outage in one steady stream.
  std::atomic<bool> b_failed{false};
  std::thread b([&] {
    try {
      publish_at_rate(nats, o.other_rate, n_other, 0, [&](int64_t i) {
        return std::make_pair(
            std::string("routes.tenant-b"),
            build_job("webhook", "tenant-b", 2, other_cfg, i, wall_ns(), o.job_bytes));
      });
    } catch (const std::exception& e) {
      std::fprintf(stderr, "rd_bench: tenant B's traffic: %s\n", e.what());
      b_failed = true;
    }
  });
  std::map<std::string, double> m0;
  int64_t fails0 = -1;
  try {
    std::this_thread::sleep_for(std::chrono::duration<double>(o.baseline_s));
    m0 = read_metrics(d.http_port());
    fails0 = tcp_attempt_fails();
    publish_at_rate(nats, o.outage_jobs / o.outage_s, o.outage_jobs, 0, [&](int64_t i) {
      return std::make_pair(
          std::string("routes.tenant-a"),
          build_job("webhook", "tenant-a", 1, dead_cfg, i, wall_ns(), o.job_bytes));
    });
  } catch (...) {
    b.join();
    throw;
  }
  b.join();
  if (b_failed) throw std::runtime_error("tenant B's traffic failed");
  const auto m1 = read_metrics(d.http_port());
  const int64_t fails1 = tcp_attempt_fails();
  const auto health = http_get(d.http_port(), "/health");
  const bool open = health.body.find("\"state\":\"open\"") != std::string::npos;

  // The endpoint comes back on the same port.
  const int64_t back_ns = wall_ns();
  HttpReceiver revived(0, dead_port);
  const auto a_expected = static_cast<uint64_t>(o.outage_jobs);
  const bool recovered =
      wait_until([&] { return revived.log().distinct() >= a_expected || !d.alive(); },
                 std::chrono::milliseconds(static_cast<int64_t>(1000 * o.recovery_timeout_s)),
                 std::chrono::milliseconds(10));
  int64_t a_last = back_ns;
  for (const auto& a : revived.log().arrivals()) a_last = std::max(a_last, a.arrived_ns);
  const double recovery_s = static_cast<double>(a_last - back_ns) / 1e9;
  wait_until([&] { return others.log().distinct() >= static_cast<uint64_t>(n_other); },
             std::chrono::seconds(30), std::chrono::milliseconds(20));

  // B's latency: the baseline without its first second (connection set-up), and the outage.
  std::vector<double> base, during;
  const auto skip = static_cast<int64_t>(std::min(o.warmup_s, o.baseline_s) * o.other_rate);
  for (const auto& a : others.log().arrivals()) {
    if (a.seq < 0 || a.sent_ns <= 0) continue;
    const double ms = static_cast<double>(a.arrived_ns - a.sent_ns) / 1e6;
    if (a.seq >= skip && a.seq < n_baseline) base.push_back(ms);
    if (a.seq >= n_baseline) during.push_back(ms);
  }
  const auto delta = [&](const std::string& series) {
    const double a = metric(m0, series), b = metric(m1, series);
    return a < 0 || b < 0 ? -1.0 : b - a;
  };
  const json base_lat = latency_summary(base), during_lat = latency_summary(during);
  result["other_latency_ms"] = {{"baseline", base_lat}, {"outage", during_lat}};
  result["other_received"] = others.log().distinct();
  result["other_published"] = n_other;
  result["while_down"] = {
      {"plugin_deferred",
       delta("route_delivery_deliveries_total{destination_type=\"webhook\",outcome=\"deferred\"}")},
      {"plugin_retry",
       delta("route_delivery_deliveries_total{destination_type=\"webhook\",outcome=\"retry\"}")},
      {"circuit_open_deferrals", delta("route_delivery_deferrals_total{reason=\"circuit_open\"}")},
      {"circuit_opened", delta("route_delivery_circuit_opened_total")},
      {"open_destinations", metric(m1, "route_delivery_open_destinations")},
      {"health_open", open},
      {"tcp_attempt_fails", fails0 < 0 || fails1 < 0 ? -1 : fails1 - fails0}};
  result["recovered"] = recovered;
  result["recovery_s"] = recovery_s;
  result["outage_received"] = revived.log().distinct();
  result["outage_published"] = a_expected;
  result["duplicates"] = others.log().duplicates() + revived.log().duplicates();

  const auto& w = result["while_down"];
  // "-" for what a daemon from before issue 11 does not export.
  const auto n = [](const json& v) {
    return v.get<double>() < 0 ? std::string("-") : fmt(v.get<double>());
  };
  std::printf("  tenant B baseline %s\n", latency_text(base_lat).c_str());
  std::printf("  tenant B outage   %s; %llu/%lld received\n", latency_text(during_lat).c_str(),
              static_cast<unsigned long long>(others.log().distinct()),
              static_cast<long long>(n_other));
  std::printf(
      "  while down        connection attempts (the plugin's outcomes) %s deferred + %s retried; "
      "%s jobs held back by the open circuit, circuit opened %s time(s), /health %s; kernel "
      "TcpAttemptFails +%lld (machine-wide)\n",
      n(w["plugin_deferred"]).c_str(), n(w["plugin_retry"]).c_str(),
      n(w["circuit_open_deferrals"]).c_str(), n(w["circuit_opened"]).c_str(),
      open ? "open" : "not open", static_cast<long long>(w["tcp_attempt_fails"].get<int64_t>()));
  std::printf("  recovery          %llu/%llu delivered %.2f s after the endpoint came back%s\n",
              static_cast<unsigned long long>(revived.log().distinct()),
              static_cast<unsigned long long>(a_expected), recovery_s,
              recovered ? "" : "  ** NOT ALL DELIVERED **");
  std::printf("  duplicates        %llu\n",
              static_cast<unsigned long long>(result["duplicates"].get<uint64_t>()));
  finish_scenario(nats, d, result);
  result["complete"] = result["complete"].get<bool>() && recovered;
  return result;
}

int run_scenario(const Options& o) {
  TempDir tmp("rd-bench");
  if (o.keep) tmp.keep();
  std::unique_ptr<Process> server;
  std::string url;
  std::unique_ptr<Nats> nats = start_nats(o, tmp, server, url);
  json result =
      o.scenario == "fairness" ? run_fairness(o, tmp, *nats, url) : run_outage(o, tmp, *nats, url);
  if (o.keep) std::printf("  files kept in %s\n", tmp.path().c_str());
  std::fflush(stdout);
  if (!o.json_file.empty()) {
    FILE* f = std::fopen(o.json_file.c_str(), "a");
    if (f == nullptr) throw std::runtime_error("cannot append to " + o.json_file);
    std::fprintf(f, "%s\n", result.dump().c_str());
    std::fclose(f);
  }
  nats.reset();
  if (server) server->stop(std::chrono::seconds(10));
  return result.value("complete", false) && result.value("exit_status", 1) == 0 ? 0 : 1;
}

int run(const Options& o) {
  TempDir tmp("rd-bench");
  if (o.keep) tmp.keep();

  // nats-server, unless given one.
  std::unique_ptr<Process> server;
  std::string url;
  std::unique_ptr<Nats> nats = start_nats(o, tmp, server, url);

  // Sinks.
  std::unique_ptr<HttpReceiver> http_rx;
  std::unique_ptr<MqttReceiver> mqtt_rx;
  const bool uses_webhook = o.kind == "webhook" || o.kind == "mixed";
  const bool uses_mqtt = o.kind == "mqtt_republish" || o.kind == "mixed";
  std::string webhook_url = o.webhook_url;
  if (uses_webhook && (webhook_url.empty() || o.latency_rate > 0)) {
    http_rx = std::make_unique<HttpReceiver>();
    webhook_url = "http://127.0.0.1:" + std::to_string(http_rx->port()) + "/hook";
  }
  if (uses_mqtt && o.latency_rate > 0)
    mqtt_rx = std::make_unique<MqttReceiver>(o.mqtt_host, o.mqtt_port, "bench/#");
  std::vector<std::string> webhook_urls = o.webhook_urls;
  if (http_rx || webhook_urls.empty()) webhook_urls = {webhook_url};
  JobFactory jobs(o, webhook_urls);
  const int64_t job_size = static_cast<int64_t>(jobs.make(o.jobs - 1, wall_ns()).second.size());

  json result = {
      {"label", o.label},
      {"kind", o.kind},
      {"daemon_bin", o.daemon},
      {"jobs", o.jobs},
      {"job_bytes", job_size},
      {"max_in_flight", o.max_in_flight},
      {"fetch_batch", o.fetch_batch},
      {"webhook_sink", uses_webhook ? (http_rx ? "rd_bench receiver" : webhook_url) : ""},
      {"webhook_destinations", uses_webhook ? webhook_urls.size() : 0},
      {"signed", uses_webhook && !o.secret.empty()},
      {"mode", o.latency_rate > 0 ? "latency" : "throughput"}};
  json sets = json::object();
  for (const auto& [k, v] : o.sets) sets[k] = v;
  result["set"] = sets;

  std::printf("rd_bench: kind=%s jobs=%lld (%lld bytes each) max_in_flight=%d fetch_batch=%d%s\n",
              o.kind.c_str(), static_cast<long long>(o.jobs), static_cast<long long>(job_size),
              o.max_in_flight, o.fetch_batch,
              o.latency_rate > 0 ? (" latency@" + fmt(o.latency_rate) + "/s").c_str() : "");
  std::fflush(stdout);

  // Ceiling.
  double ceiling_rate = 0;
  const auto server_cpu = [&]() -> double {
    if (!server) return 0;
    auto s = proc_stats(server->pid());
    return s ? s->cpu_seconds : 0;
  };
  if (o.ceiling) {
    const double pre = nats->preload(jobs, o.jobs);
    const double cpu0 = server_cpu();
    // rd_bench's own CPU while only the bare consumer (and the stream-info poll) runs in it.
    const double self0 = self_cpu_s();
    const Ceiling c = run_ceiling(url, *nats, o.jobs, o.ceiling_batch, o);
    const double consumer_cpu = self_cpu_s() - self0;
    ceiling_rate = c.drain.rate(o.jobs);
    result["preload_rate"] = static_cast<double>(o.jobs) / pre;
    result["ceiling"] = {{"rate", ceiling_rate},
                         {"seconds", c.drain.seconds},
                         {"steady_rate", c.drain.steady_rate},
                         {"inproc_rate", c.inproc_rate},
                         {"fetch_batch", o.ceiling_batch},
                         {"consumer_cpu_s", consumer_cpu},
                         {"nats_server_cpu_s", server_cpu() - cpu0}};
    std::printf("  preload           %s jobs/s (%.2f s)\n", fmt(o.jobs / pre).c_str(), pre);
    std::printf(
        "  ceiling           %s jobs/s (%.2f s; steady 10-90%% %s/s; bare nats.c pull, fetch %d "
        "+ ack each; its CPU %.2f us/job; nats-server CPU %.2f s)\n",
        fmt(ceiling_rate).c_str(), c.drain.seconds, fmt(c.drain.steady_rate).c_str(),
        o.ceiling_batch, 1e6 * consumer_cpu / static_cast<double>(o.jobs), server_cpu() - cpu0);
    std::fflush(stdout);
  }

  // The daemon.
  const bool live = o.latency_rate > 0 || !o.profile_cmd.empty();
  if (!live) {
    const double pre = nats->preload(jobs, o.jobs);
    result["preload_rate"] = static_cast<double>(o.jobs) / pre;
  }
  const int http_port = free_port();
  // --consumer-cmd: another consumer (e.g. the Node.js peer) drains the jobs instead.
  const bool peer = !o.consumer_cmd.empty();
  std::string peer_cmd = o.consumer_cmd;
  for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{
           {"{nats_url}", url},
           {"{stream}", kStream},
           {"{consumer}", kConsumer},
           {"{max_in_flight}", std::to_string(o.max_in_flight)},
           {"{fetch_batch}", std::to_string(o.fetch_batch)}}) {
    for (size_t p; (p = peer_cmd.find(key)) != std::string::npos;)
      peer_cmd.replace(p, key.size(), value);
  }
  if (peer) result["consumer_cmd"] = peer_cmd;
  write_file(tmp.file("route-delivery.yaml"), daemon_config(o, url, http_port));
  std::map<std::string, double> sink_cpu0;
  for (int pid : o.sink_pids) {
    if (auto s = proc_stats(pid)) sink_cpu0[std::to_string(pid)] = s->cpu_seconds;
  }
  const double server_cpu0 = server_cpu();
  const double load0 = loadavg1();
  const MachineCpu machine0 = machine_cpu();
  const double self0 = self_cpu_s();
  // The daemon inherits rd_bench's environment, so env overrides (WEBHOOK_THREADS, ...) apply.
  const std::string daemon_log = tmp.file(peer ? "consumer.log" : "route-delivery.log");
  Process daemon(
      peer ? std::vector<std::string>{"/bin/sh", "-c", "exec " + peer_cmd}
           : std::vector<std::string>{o.daemon, "--config", tmp.file("route-delivery.yaml")},
      {}, daemon_log);
  auto alive = [&] { return daemon.running(); };
  std::unique_ptr<Process> profiler;
  Drain drain;
  std::vector<double> lat_ms;
  uint64_t published = 0, received = 0;
  int64_t total = o.jobs;  // jobs over every batch
  double publish_rate = 0;
  if (live) {
    if (!wait_until([&] { return http_get(http_port, "/ready").status == 200 || !alive(); },
                    std::chrono::seconds(30), std::chrono::milliseconds(20)) ||
        !alive()) {
      throw std::runtime_error("daemon did not become ready:\n" +
                               tail(read_file(tmp.file("route-delivery.log")), 20));
    }
    if (!o.profile_cmd.empty()) {
      std::string cmd = o.profile_cmd;
      for (size_t p; (p = cmd.find("{pid}")) != std::string::npos;)
        cmd.replace(p, 5, std::to_string(daemon.pid()));
      profiler =
          std::make_unique<Process>(std::vector<std::string>{"/bin/sh", "-c", "exec " + cmd},
                                    std::map<std::string, std::string>{}, tmp.file("profiler.log"));
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  }
  if (o.latency_rate > 0) {
    const auto total = static_cast<int64_t>(o.latency_rate * o.duration_s);
    const double interval_ns = 1e9 / o.latency_rate;
    const auto t0 = Clock::now();
    for (int64_t i = 0; i < total; ++i) {
      throw_if_interrupted();
      const auto due = t0 + std::chrono::nanoseconds(static_cast<int64_t>(interval_ns * i));
      std::this_thread::sleep_until(due);
      const auto [subject, body] = jobs.make(i, wall_ns());
      nats->publish(subject, body);
      natsConnection_Flush(nats->nc());  // no client-side batching: each job leaves at once
    }
    published = static_cast<uint64_t>(total);
    publish_rate =
        static_cast<double>(total) / std::chrono::duration<double>(Clock::now() - t0).count();
    auto got = [&] {
      uint64_t n = 0;
      if (http_rx) n += http_rx->log().received();
      if (mqtt_rx) n += mqtt_rx->log().received();
      return n;
    };
    // In "mixed" every third job is a postgresql no-op, which reaches no sink.
    const uint64_t expect = o.kind == "mixed" ? published - published / 3 : published;
    wait_until([&] { return got() >= expect || !alive(); }, std::chrono::seconds(30),
               std::chrono::milliseconds(20));
    drain = observe_drain(*nats, total, o.poll_ms, 30, alive, t0);
    received = got();
    for (auto* log : {http_rx ? &http_rx->log() : nullptr, mqtt_rx ? &mqtt_rx->log() : nullptr}) {
      if (log == nullptr) continue;
      for (double v : log->latencies_ms()) lat_ms.push_back(v);
    }
  } else {
    std::optional<Clock::time_point> since;
    if (live) {
      since = Clock::now();
      nats->preload(jobs, o.jobs, false);  // profiling: published while the daemon consumes
    }
    drain = observe_drain(*nats, o.jobs, o.poll_ms, o.timeout_s, alive, since);
    // Further batches for the same daemon: idle, the between-command, then N jobs published
    // while it runs, each drain timed from its first publish.
    json batches = json::array();
    batches.push_back(
        {{"seconds", drain.seconds}, {"rate", drain.rate(o.jobs)}, {"complete", drain.complete}});
    total = o.jobs;
    for (int b = 2; b <= o.batches && drain.complete && alive() && !interrupted(); ++b) {
      std::this_thread::sleep_for(std::chrono::duration<double>(o.idle_s));
      int between_status = 0;
      if (!o.between_cmd.empty()) between_status = std::system(o.between_cmd.c_str());
      const auto t0 = Clock::now();
      nats->preload(jobs, o.jobs, false);
      const Drain d = observe_drain(*nats, o.jobs, o.poll_ms, o.timeout_s, alive, t0);
      batches.push_back({{"seconds", d.seconds},
                         {"rate", d.rate(o.jobs)},
                         {"complete", d.complete},
                         {"idle_s", o.idle_s},
                         {"between_cmd_status", between_status}});
      std::printf(
          "  batch %d           %s jobs/s (%.2f s from its first publish) after %.1f s "
          "idle%s%s\n",
          b, fmt(d.rate(o.jobs)).c_str(), d.seconds, o.idle_s,
          o.between_cmd.empty() ? "" : " and the between-command, status ",
          o.between_cmd.empty() ? "" : std::to_string(between_status).c_str());
      std::fflush(stdout);
      total += o.jobs;
      drain.complete = d.complete;
      drain.left = d.left;
    }
    if (o.batches > 1) {
      result["batches"] = batches;
      result["jobs_total"] = total;
      if (!o.between_cmd.empty()) result["between_cmd"] = o.between_cmd;
    }
  }
  throw_if_interrupted();  // no figures from a run cut short
  const std::optional<ProcStats> ps = proc_stats(daemon.pid());
  const double server_cpu_run = server_cpu() - server_cpu0;
  const MachineCpu machine1 = machine_cpu();
  const double self_run = self_cpu_s() - self0;
  if (profiler) {
    ::kill(profiler->pid(), SIGINT);
    wait_until([&] { return !profiler->running(); }, std::chrono::seconds(60));
  }
  Outcomes outcomes = peer ? Outcomes{} : read_outcomes(http_port);
  // The host's deferrals (daemons from issue 11 on): jobs sent back unsent, no attempt spent.
  const auto metrics = peer ? std::map<std::string, double>{} : read_metrics(http_port);
  json deferrals = json::object();
  static const std::string kDeferrals = "route_delivery_deferrals_total{reason=\"";
  for (const auto& [series, v] : metrics) {
    if (series.rfind(kDeferrals, 0) == 0 && series.size() > kDeferrals.size() + 2)
      deferrals[series.substr(kDeferrals.size(), series.size() - kDeferrals.size() - 2)] = v;
  }
  int64_t redelivered = -1, ack_pending = -1;
  {
    jsConsumerInfo* ci = nullptr;
    jsErrCode err = static_cast<jsErrCode>(0);
    if (js_GetConsumerInfo(&ci, nats->js(), kStream, kConsumer, nullptr, &err) == NATS_OK) {
      redelivered = ci->NumRedelivered;
      ack_pending = ci->NumAckPending;
      jsConsumerInfo_Destroy(ci);
    }
  }
  const int64_t dlq = std::max<int64_t>(0, nats->stream_msgs(kDlqStream));
  std::map<std::string, double> sink_cpu;
  for (int pid : o.sink_pids) {
    if (auto s = proc_stats(pid)) {
      const std::string k = std::to_string(pid);
      sink_cpu[k] = s->cpu_seconds - sink_cpu0[k];
    }
  }
  const bool was_alive = daemon.running();
  const int exit_status = daemon.stop(std::chrono::seconds(30));
  if (peer) {
    // The peer's counts: the last line of its output that parses as a JSON object with "ok".
    std::istringstream in(read_file(daemon_log));
    for (std::string line; std::getline(in, line);) {
      const json j = json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.is_object() || !j.contains("ok")) continue;
      outcomes.by_outcome.clear();
      outcomes.by_outcome["ok"] = j.value("ok", 0.0);
      outcomes.by_outcome["retry"] = j.value("failed", 0.0) + j.value("errors", 0.0);
      outcomes.by_outcome["invalid"] = j.value("invalid", 0.0);
    }
  }

  const double rate = o.latency_rate > 0 ? publish_rate : drain.rate(o.jobs);
  const double errors = outcomes.total("retry") + outcomes.total("permanent") +
                        outcomes.total("invalid") + outcomes.total("timeout");
  result["rate"] = rate;
  result["seconds"] = drain.seconds;
  result["steady_rate"] = drain.steady_rate;
  result["complete"] = drain.complete;
  result["left"] = drain.left;
  if (ceiling_rate > 0 && !live) result["ratio"] = rate / ceiling_rate;
  result["outcomes"] = outcomes.by_outcome;
  if (!deferrals.empty()) result["host_deferrals"] = deferrals;
  // The host's table lock (daemons from 2026-12-08 on): acquisitions that had to wait, and (from
  // the change that took it off the delivery path) all its acquisitions.
  const auto lock_waits = metrics.find("route_delivery_table_lock_waits_total");
  if (lock_waits != metrics.end()) result["table_lock_waits"] = lock_waits->second;
  const auto lock_takes = metrics.find("route_delivery_table_lock_acquisitions_total");
  if (lock_takes != metrics.end()) result["table_lock_acquisitions"] = lock_takes->second;
  result["errors"] = errors;
  result["redelivered"] = redelivered;
  result["ack_pending_at_end"] = ack_pending;
  result["dead_lettered"] = dlq;
  result["nats_server_cpu_s"] = server_cpu_run;
  // What else ran during the daemon phase: the machine's busy CPU (processes and interrupts: a
  // process's system time may or may not include the softirq work it caused) less the daemon's
  // (from its start), nats-server's, the sinks' and rd_bench's own. About ±0.3 s is an idle
  // machine; much more means another process competed for the cores.
  {
    double known =
        server_cpu_run + self_run + (ps ? ps->cpu_seconds + ps->children_cpu_seconds : 0);
    for (const auto& [pid, cpu] : sink_cpu) known += cpu;
    const double busy = machine1.busy_s - machine0.busy_s, irq = machine1.irq_s - machine0.irq_s;
    result["machine"] = {{"loadavg1_start", load0},
                         {"busy_cpu_s", busy},
                         {"irq_s", irq},
                         {"steal_s", machine1.steal_s - machine0.steal_s},
                         {"other_cpu_s", busy + irq - known}};
  }
  result["exit_status"] = exit_status;
  if (ps) {
    result[peer ? "consumer" : "daemon"] = {
        {"peak_rss_mib", ps->peak_rss_mib},
        {"rss_mib", ps->rss_mib},
        {"cpu_s", ps->cpu_seconds},
        {"children_cpu_s", ps->children_cpu_seconds},
        {"cpu_us_per_job", 1e6 * (ps->cpu_seconds + ps->children_cpu_seconds) /
                               static_cast<double>(std::max<int64_t>(1, o.jobs))},
        {"user_s", ps->user_seconds},
        {"sys_s", ps->sys_seconds},
        {"threads", ps->threads},
        {"voluntary_switches", ps->voluntary_switches},
        {"involuntary_switches", ps->involuntary_switches},
        {"thread_cpu_s", ps->thread_cpu_seconds}};
  }
  if (!sink_cpu.empty()) result["sink_cpu_s"] = sink_cpu;

  if (o.latency_rate > 0) {
    // Leave out the warm-up (connection set-up): the first `warmup_s * rate` arrivals, which at a
    // steady rate are the jobs published first.
    const auto skip = std::min(static_cast<size_t>(o.warmup_s * o.latency_rate), lat_ms.size());
    std::vector<double> s(lat_ms.begin() + static_cast<long>(skip), lat_ms.end());
    result["latency_ms"] = {{"samples", s.size()},         {"p50", percentile(s, 50)},
                            {"p90", percentile(s, 90)},    {"p99", percentile(s, 99)},
                            {"p999", percentile(s, 99.9)}, {"max", s.empty() ? 0.0 : s.back()}};
    result["published"] = published;
    result["received"] = received;
    if (http_rx) result["signed_requests"] = http_rx->signed_requests();
  }

  // Report.
  if (o.latency_rate > 0) {
    std::printf("  route-delivery    %s jobs/s offered for %.0f s%s\n", fmt(rate).c_str(),
                o.duration_s, drain.complete ? "" : "  ** DID NOT DRAIN **");
  } else {
    std::printf("  %-17s %s jobs/s (%.2f s; steady 10-90%% %s/s)%s\n",
                peer ? "consumer cmd" : "route-delivery", fmt(rate).c_str(), drain.seconds,
                fmt(drain.steady_rate).c_str(), drain.complete ? "" : "  ** DID NOT DRAIN **");
  }
  if (result.contains("ratio")) {
    std::printf("  ratio             %.1f %% of the ceiling\n", 100.0 * rate / ceiling_rate);
  }
  std::printf("  outcomes          ");
  for (const auto& [k, v] : outcomes.by_outcome) std::printf("%s=%s ", k.c_str(), fmt(v).c_str());
  std::printf("| errors=%s dead-lettered=%lld redelivered=%lld\n", fmt(errors).c_str(),
              static_cast<long long>(dlq), static_cast<long long>(redelivered));
  if (!deferrals.empty()) {
    std::printf("  host deferrals    ");
    for (const auto& [k, v] : deferrals.items())
      std::printf("%s=%s ", k.c_str(), fmt(v.get<double>()).c_str());
    std::printf("\n");
  }
  if (lock_waits != metrics.end()) {
    const double done = outcomes.total("ok");
    std::printf("  table lock        %s acquisitions waited (%.2f %% of jobs)",
                fmt(lock_waits->second).c_str(), done > 0 ? 100.0 * lock_waits->second / done : 0);
    if (lock_takes != metrics.end() && done > 0)
      std::printf("; %.3f acquisitions per job", lock_takes->second / done);
    std::printf("\n");
  }
  if (ps) {
    std::printf(
        "  %-17s peak RSS %.1f MiB, CPU %.2f s (user %.2f, sys %.2f), %d threads, "
        "%.2f context switches per job\n",
        peer ? "consumer cmd" : "daemon", ps->peak_rss_mib, ps->cpu_seconds, ps->user_seconds,
        ps->sys_seconds, ps->threads,
        static_cast<double>(ps->voluntary_switches + ps->involuntary_switches) /
            static_cast<double>(std::max<int64_t>(
                1, o.latency_rate > 0 ? static_cast<int64_t>(published) : total)));
  }
  if (ps && !ps->thread_cpu_seconds.empty()) {
    // Which threads did the work (the daemon names its own: rd-fetch-N, rd-webhook-N, ...;
    // "route-delivery" is the main thread and the library threads: nats.c's, the HTTP server's).
    std::vector<std::pair<double, std::string>> by_cpu;
    for (const auto& [name, cpu] : ps->thread_cpu_seconds) by_cpu.emplace_back(cpu, name);
    std::sort(by_cpu.rbegin(), by_cpu.rend());
    std::printf("  %-17s", "threads' CPU");
    for (const auto& [cpu, name] : by_cpu) {
      if (cpu >= 0.01) std::printf(" %s %.2f s", name.c_str(), cpu);
    }
    std::printf("\n");
  }
  if (ps && o.latency_rate <= 0) {
    // Its plugin processes (plugins.<name>.isolation: process) count too.
    std::printf(
        "  CPU per job       %.2f us (daemon %.2f s + plugin processes %.2f s, over %lld "
        "jobs, start-up included)\n",
        1e6 * (ps->cpu_seconds + ps->children_cpu_seconds) /
            static_cast<double>(std::max<int64_t>(1, o.jobs)),
        ps->cpu_seconds, ps->children_cpu_seconds, static_cast<long long>(o.jobs));
  }
  if (server) std::printf("  nats-server       CPU %.2f s during the daemon run\n", server_cpu_run);
  std::printf(
      "  machine           load %.2f at the start; other processes' CPU %.2f s, irq+softirq "
      "%.2f s, steal %.2f s during the daemon run\n",
      load0, result["machine"]["other_cpu_s"].get<double>(),
      result["machine"]["irq_s"].get<double>(), result["machine"]["steal_s"].get<double>());
  for (const auto& [pid, cpu] : sink_cpu)
    std::printf("  sink pid %-8s CPU %.2f s during the daemon run\n", pid.c_str(), cpu);
  if (o.latency_rate > 0) {
    const auto& l = result["latency_ms"];
    std::printf(
        "  latency           p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  p99.9 %.2f ms  max %.2f ms  "
        "(%s samples after %.0f s warm-up; %llu published, %llu received)\n",
        l["p50"].get<double>(), l["p90"].get<double>(), l["p99"].get<double>(),
        l["p999"].get<double>(), l["max"].get<double>(), fmt(l["samples"].get<double>()).c_str(),
        o.warmup_s, static_cast<unsigned long long>(published),
        static_cast<unsigned long long>(received));
  }
  // A consumer command ends on SIGTERM; 128 + 15 is its orderly end.
  if (!was_alive || (exit_status != 0 && !(peer && exit_status == 128 + SIGTERM))) {
    std::printf("  %s exited with status %d; log tail:\n%s\n", peer ? "consumer" : "daemon",
                exit_status, tail(read_file(daemon_log), 20).c_str());
  }
  if (o.keep) std::printf("  files kept in %s\n", tmp.path().c_str());
  std::fflush(stdout);

  if (!o.json_file.empty()) {
    FILE* f = std::fopen(o.json_file.c_str(), "a");
    if (f == nullptr) throw std::runtime_error("cannot append to " + o.json_file);
    std::fprintf(f, "%s\n", result.dump().c_str());
    std::fclose(f);
  }
  nats.reset();
  if (server) server->stop(std::chrono::seconds(10));
  return drain.complete && was_alive ? 0 : 1;
}

}  // namespace
}  // namespace bench

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa {};
  sa.sa_handler = bench::on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  const bench::Options o = bench::parse_options(argc, argv);
  int status = 1;
  try {
    status = o.scenario.empty() ? bench::run(o) : bench::run_scenario(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rd_bench: %s\n", e.what());
    status = 1;
  }
  if (bench::g_signal != 0) {
    // Everything is cleaned up by now; die of the signal so that the caller sees it.
    const int sig = bench::g_signal;
    signal(sig, SIG_DFL);
    raise(sig);
  }
  return status;
}
