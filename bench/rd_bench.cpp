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
//
// See bench/README.md. Output: a report on stdout and, with --json FILE, one JSON line appended.
#include <nats/nats.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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
#include "bench_support.hpp"

namespace bench {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
constexpr const char* kStream = "ROUTES";
constexpr const char* kDlqStream = "ROUTES_DLQ";
constexpr const char* kConsumer = "route-delivery";
constexpr const char* kCeilingConsumer = "rd-bench-ceiling";
constexpr int kTenants = 8;

const char* const kUsage = R"(usage: rd_bench [options]
  --kind K             postgresql (no-op, no config.table) | webhook | mqtt_republish | mixed
                       [postgresql]
  --jobs N             jobs per drain (ceiling and daemon each get their own copy) [200000]
  --job-bytes B        size of one published job [250]
  --max-in-flight M    delivery.max_in_flight [1024]
  --fetch-batch B      nats.fetch_batch [256]
  --set KEY=VALUE      any extra daemon config key, e.g. plugins.webhook.threads=2 (repeatable;
                       VALUE is read as JSON when it parses, else as a string)
  --webhook-url URL    webhook sink (e.g. nginx); default: rd_bench's own HTTP receiver
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
  --sink-pid PID       also report this process's CPU seconds during the daemon run (repeatable)
  --label TEXT         free text carried into the JSON line
  --json FILE          append the results as one JSON line to FILE
  --keep               keep the temp dir (configs, logs, nats store)
)";

struct Options {
  std::string kind = "postgresql";
  int64_t jobs = 200000;
  int job_bytes = 250;
  int max_in_flight = 1024;
  int fetch_batch = 256;
  std::vector<std::pair<std::string, std::string>> sets;
  std::string webhook_url;
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
  std::vector<int> sink_pids;
  std::string label;
  std::string json_file;
  bool keep = false;
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
    } else if (flag("--fetch-batch")) {
      o.fetch_batch = static_cast<int>(num());
    } else if (flag("--set")) {
      const std::string kv = val();
      const auto eq = kv.find('=');
      if (eq == std::string::npos || eq == 0) usage_error("--set wants KEY=VALUE, got " + kv);
      o.sets.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    } else if (flag("--webhook-url")) {
      o.webhook_url = val();
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
    } else if (flag("--sink-pid")) {
      o.sink_pids.push_back(static_cast<int>(num()));
    } else if (flag("--label")) {
      o.label = val();
    } else if (flag("--json")) {
      o.json_file = val();
    } else if (flag("--keep")) {
      o.keep = true;
    } else {
      usage_error("unknown option " + key);
    }
  }
  if (o.kind != "postgresql" && o.kind != "webhook" && o.kind != "mqtt_republish" &&
      o.kind != "mixed")
    usage_error("--kind must be postgresql, webhook, mqtt_republish or mixed");
  if ((o.kind == "mqtt_republish" || o.kind == "mixed") && o.mqtt_port <= 0)
    usage_error("--kind " + o.kind + " needs --mqtt-port (a running broker)");
  if (o.jobs <= 0 || o.max_in_flight <= 0 || o.fetch_batch <= 0 || o.poll_ms <= 0)
    usage_error("--jobs, --max-in-flight, --fetch-batch and --poll-ms must be positive");
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

class JobFactory {
 public:
  JobFactory(const Options& o, std::string webhook_url)
      : o_(o), webhook_url_(std::move(webhook_url)) {}

  // The i-th job: subject and body. Kind "mixed" cycles webhook, mqtt_republish, postgresql.
  std::pair<std::string, std::string> make(int64_t i, int64_t sent_ns) const {
    static const char* const kMixed[] = {"webhook", "mqtt_republish", "postgresql"};
    const std::string kind = o_.kind == "mixed" ? kMixed[i % 3] : o_.kind;
    const std::string tenant = "tenant-" + std::to_string(i % kTenants);
    json config = json::object();
    int64_t route = 100 + i % kTenants;
    if (kind == "webhook") {
      config["url"] = webhook_url_;
      if (!o_.secret.empty()) config["secret"] = o_.secret;
    } else if (kind == "mqtt_republish") {
      config["topic"] = "bench/{tenant_id}/{device_id}";
      route += 100;
    } else {
      route += 200;
    }
    json payload = {{"device_id", "dev-" + std::to_string(i % 1000)},
                    {"seq", i},
                    {"sent_ns", sent_ns},
                    {"temp", 21.5}};
    json job = {
        {"route", {{"id", route}, {"destination_type", kind}, {"destination_config", config}}},
        {"topic", tenant + "/dev-" + std::to_string(i % 1000) + "/telemetry"},
        {"payload", payload},
        {"tenant_id", tenant}};
    std::string body = job.dump();
    if (static_cast<int>(body.size()) < o_.job_bytes) {
      // 9 = the bytes of ,"pad":"" itself.
      const auto room = static_cast<size_t>(o_.job_bytes) - body.size();
      job["payload"]["pad"] = std::string(room > 9 ? room - 9 : 0, 'x');
      body = job.dump();
    }
    return {"routes." + tenant, body};
  }

 private:
  const Options& o_;
  std::string webhook_url_;
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
    if (now - t_begin > std::chrono::seconds(timeout_s) || !alive()) {
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
    while (acked.load() < n) {
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
  if (!r || r->first != 200) return out;
  std::istringstream in(r->second);
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

int run(const Options& o) {
  TempDir tmp("rd-bench");
  if (o.keep) tmp.keep();

  // nats-server, unless given one.
  std::unique_ptr<Process> server;
  std::string url = o.nats_url;
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
  JobFactory jobs(o, webhook_url);
  const int64_t job_size = static_cast<int64_t>(jobs.make(o.jobs - 1, wall_ns()).second.size());

  json result = {
      {"label", o.label},
      {"kind", o.kind},
      {"jobs", o.jobs},
      {"job_bytes", job_size},
      {"max_in_flight", o.max_in_flight},
      {"fetch_batch", o.fetch_batch},
      {"webhook_sink", uses_webhook ? (http_rx ? "rd_bench receiver" : webhook_url) : ""},
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
    const Ceiling c = run_ceiling(url, *nats, o.jobs, o.ceiling_batch, o);
    ceiling_rate = c.drain.rate(o.jobs);
    result["preload_rate"] = static_cast<double>(o.jobs) / pre;
    result["ceiling"] = {{"rate", ceiling_rate},
                         {"seconds", c.drain.seconds},
                         {"steady_rate", c.drain.steady_rate},
                         {"inproc_rate", c.inproc_rate},
                         {"fetch_batch", o.ceiling_batch},
                         {"nats_server_cpu_s", server_cpu() - cpu0}};
    std::printf("  preload           %s jobs/s (%.2f s)\n", fmt(o.jobs / pre).c_str(), pre);
    std::printf(
        "  ceiling           %s jobs/s (%.2f s; steady 10-90%% %s/s; bare nats.c pull, fetch %d "
        "+ ack each; nats-server CPU %.2f s)\n",
        fmt(ceiling_rate).c_str(), c.drain.seconds, fmt(c.drain.steady_rate).c_str(),
        o.ceiling_batch, server_cpu() - cpu0);
    std::fflush(stdout);
  }

  // The daemon.
  const bool live = o.latency_rate > 0 || !o.profile_cmd.empty();
  if (!live) {
    const double pre = nats->preload(jobs, o.jobs);
    result["preload_rate"] = static_cast<double>(o.jobs) / pre;
  }
  const int http_port = free_port();
  write_file(tmp.file("route-delivery.yaml"), daemon_config(o, url, http_port));
  std::map<std::string, double> sink_cpu0;
  for (int pid : o.sink_pids) {
    if (auto s = proc_stats(pid)) sink_cpu0[std::to_string(pid)] = s->cpu_seconds;
  }
  const double server_cpu0 = server_cpu();
  // The daemon inherits rd_bench's environment, so env overrides (WEBHOOK_THREADS, ...) apply.
  Process daemon({o.daemon, "--config", tmp.file("route-delivery.yaml")}, {},
                 tmp.file("route-delivery.log"));
  auto alive = [&] { return daemon.running(); };
  std::unique_ptr<Process> profiler;
  Drain drain;
  std::vector<double> lat_ms;
  uint64_t published = 0, received = 0;
  double publish_rate = 0;
  if (live) {
    if (!wait_until(
            [&] {
              auto r = http_get(http_port, "/ready");
              return (r && r->first == 200) || !alive();
            },
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
  }
  const std::optional<ProcStats> ps = proc_stats(daemon.pid());
  const double server_cpu_run = server_cpu() - server_cpu0;
  if (profiler) {
    ::kill(profiler->pid(), SIGINT);
    wait_until([&] { return !profiler->running(); }, std::chrono::seconds(60));
  }
  const Outcomes outcomes = read_outcomes(http_port);
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
  result["errors"] = errors;
  result["redelivered"] = redelivered;
  result["ack_pending_at_end"] = ack_pending;
  result["dead_lettered"] = dlq;
  result["nats_server_cpu_s"] = server_cpu_run;
  result["exit_status"] = exit_status;
  if (ps) {
    result["daemon"] = {{"peak_rss_mib", ps->peak_rss_mib},
                        {"rss_mib", ps->rss_mib},
                        {"cpu_s", ps->cpu_seconds},
                        {"user_s", ps->user_seconds},
                        {"sys_s", ps->sys_seconds},
                        {"threads", ps->threads},
                        {"voluntary_switches", ps->voluntary_switches},
                        {"involuntary_switches", ps->involuntary_switches}};
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
    std::printf("  route-delivery    %s jobs/s (%.2f s; steady 10-90%% %s/s)%s\n",
                fmt(rate).c_str(), drain.seconds, fmt(drain.steady_rate).c_str(),
                drain.complete ? "" : "  ** DID NOT DRAIN **");
  }
  if (result.contains("ratio")) {
    std::printf("  ratio             %.1f %% of the ceiling\n", 100.0 * rate / ceiling_rate);
  }
  std::printf("  outcomes          ");
  for (const auto& [k, v] : outcomes.by_outcome) std::printf("%s=%s ", k.c_str(), fmt(v).c_str());
  std::printf("| errors=%s dead-lettered=%lld redelivered=%lld\n", fmt(errors).c_str(),
              static_cast<long long>(dlq), static_cast<long long>(redelivered));
  if (ps) {
    std::printf(
        "  daemon            peak RSS %.1f MiB, CPU %.2f s (user %.2f, sys %.2f), %d threads, "
        "%.2f context switches per job\n",
        ps->peak_rss_mib, ps->cpu_seconds, ps->user_seconds, ps->sys_seconds, ps->threads,
        static_cast<double>(ps->voluntary_switches + ps->involuntary_switches) /
            static_cast<double>(std::max<int64_t>(1, o.latency_rate > 0 ? published : o.jobs)));
  }
  if (server) std::printf("  nats-server       CPU %.2f s during the daemon run\n", server_cpu_run);
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
  if (!was_alive || exit_status != 0) {
    std::printf("  daemon exited with status %d; log tail:\n%s\n", exit_status,
                tail(read_file(tmp.file("route-delivery.log")), 20).c_str());
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
  const bench::Options o = bench::parse_options(argc, argv);
  try {
    return bench::run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rd_bench: %s\n", e.what());
    return 1;
  }
}
