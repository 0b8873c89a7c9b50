#include "chaos_support.hpp"

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace rdtest::chaos {
namespace fs = std::filesystem;
using nlohmann::json;

std::vector<std::string> split_urls(const std::string& urls) {
  std::vector<std::string> out;
  std::stringstream ss(urls);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

// ---- Publisher ----

Publisher::Publisher(const std::string& urls) {
  const auto list = split_urls(urls);
  std::vector<const char*> curls;
  for (const auto& u : list) curls.push_back(u.c_str());
  natsOptions* opts = nullptr;
  if (natsOptions_Create(&opts) != NATS_OK) throw std::runtime_error("nats options");
  natsOptions_SetServers(opts, curls.data(), static_cast<int>(curls.size()));
  natsOptions_SetMaxReconnect(opts, -1);
  natsOptions_SetReconnectWait(opts, 100);
  natsOptions_SetReconnectBufSize(opts, 32 * 1024 * 1024);
  natsOptions_SetTimeout(opts, 5000);
  natsStatus s = NATS_OK;
  for (int i = 0; i < 100; ++i) {
    s = natsConnection_Connect(&nc_, opts);
    if (s == NATS_OK) break;
    std::this_thread::sleep_for(100ms);
  }
  natsOptions_Destroy(opts);
  if (s != NATS_OK)
    throw std::runtime_error(std::string("publisher connect: ") + natsStatus_GetText(s));
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = 3000;
  if (natsConnection_JetStream(&js_, nc_, &jo) != NATS_OK) throw std::runtime_error("jetstream");
}

Publisher::~Publisher() {
  if (js_) jsCtx_Destroy(js_);
  if (nc_) natsConnection_Destroy(nc_);
}

uint64_t Publisher::publish(const std::string& subject, const std::string& data,
                            const std::string& msg_id, std::chrono::milliseconds timeout) {
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MsgId = msg_id.c_str();
  po.MaxWait = 3000;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string last;
  while (true) {
    jsPubAck* ack = nullptr;
    jsErrCode err = static_cast<jsErrCode>(0);
    const natsStatus s = js_Publish(&ack, js_, subject.c_str(), data.data(),
                                    static_cast<int>(data.size()), &po, &err);
    if (s == NATS_OK && ack != nullptr) {
      const uint64_t seq = ack->Sequence;
      jsPubAck_Destroy(ack);
      return seq;
    }
    if (ack != nullptr) jsPubAck_Destroy(ack);
    last = std::string(natsStatus_GetText(s)) + " [" + std::to_string(static_cast<int>(err)) + "]";
    if (std::chrono::steady_clock::now() > deadline) {
      throw std::runtime_error("publish " + msg_id + " not acknowledged: " + last);
    }
    std::this_thread::sleep_for(100ms);
  }
}

std::string create_routes_stream(jsCtx* js, const std::string& name, int replicas,
                                 std::chrono::milliseconds dup_window,
                                 std::chrono::milliseconds timeout) {
  return create_stream(js, name, {"routes.>"}, true, replicas, dup_window, timeout);
}

std::string create_stream(jsCtx* js, const std::string& name,
                          const std::vector<std::string>& subjects, bool work_queue, int replicas,
                          std::chrono::milliseconds dup_window, std::chrono::milliseconds timeout) {
  std::vector<const char*> subs;
  for (const auto& x : subjects) subs.push_back(x.c_str());
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = name.c_str();
  cfg.Subjects = subs.data();
  cfg.SubjectsLen = static_cast<int>(subs.size());
  cfg.Storage = js_FileStorage;
  cfg.Retention = work_queue ? js_WorkQueuePolicy : js_LimitsPolicy;
  cfg.Replicas = replicas;
  cfg.Duplicates = static_cast<int64_t>(dup_window.count()) * 1'000'000;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string last;
  while (true) {
    jsStreamInfo* si = nullptr;
    jsErrCode err = static_cast<jsErrCode>(0);
    const natsStatus s = js_AddStream(&si, js, &cfg, nullptr, &err);
    if (si != nullptr) jsStreamInfo_Destroy(si);
    if (s == NATS_OK || err == JSStreamNameExistErr) return "";
    last = std::string(natsStatus_GetText(s)) + " (" + nats_GetLastError(nullptr) + ") [" +
           std::to_string(static_cast<int>(err)) + "]";
    if (std::chrono::steady_clock::now() > deadline) return last;
    std::this_thread::sleep_for(250ms);
  }
}

// ---- record file, /health, dead letters ----

std::vector<Attempt> read_attempts(const std::string& record_path) {
  std::vector<Attempt> out;
  for (const std::string& line : read_lines(record_path)) {
    std::istringstream in(line);
    Attempt a;
    if (in >> a.message_id >> a.attempt >> a.wall_ms >> a.entry) out.push_back(std::move(a));
  }
  return out;
}

json health(const Daemon& daemon) {
  const auto r = daemon.get("/health");
  if (r.status == 0) return json::object();
  const json j = json::parse(r.body, nullptr, false);
  return j.is_object() ? j : json::object();
}

int64_t delivered(const Daemon& daemon) {
  return health(daemon).value("delivered", int64_t{-1});
}

std::vector<json> dead_letters(JsClient& js, const std::string& stream) {
  std::vector<json> out;
  for (const std::string& m : js.stream_messages(stream)) {
    json j = json::parse(m, nullptr, false);
    out.push_back(j.is_discarded() ? json{{"unparsable", m}} : j);
  }
  return out;
}

// ---- plugins ----

PluginFolder::PluginFolder(const std::vector<std::string>& files) : dir_("rdtest-chaos-plugins") {
  for (const auto& f : files) {
    if (::access(f.c_str(), R_OK) != 0) throw std::runtime_error(f + " is missing: build it");
    fs::create_symlink(f, fs::path(dir_.path()) / fs::path(f).filename());
  }
}

std::string webhook_plugin() {
  return plugin_dir() + "/webhook.so";
}
std::string mqtt_plugin() {
  return plugin_dir() + "/mqtt_republish.so";
}
std::string postgresql_plugin() {
  return plugin_dir() + "/postgresql.so";
}
std::string scripted_plugin() {
  return test_plugin_dir() + "/scripted/scripted.so";
}

int connected_port(const std::string& daemon_log) {
  int port = 0;
  std::istringstream in(daemon_log);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find("nats_connected") == std::string::npos &&
        line.find("nats_reconnected") == std::string::npos) {
      continue;
    }
    const size_t at = line.find("server=");
    if (at == std::string::npos) continue;
    const size_t colon = line.rfind(':');
    if (colon == std::string::npos || colon < at) continue;
    port = std::atoi(line.c_str() + colon + 1);
  }
  return port;
}

bool drained(JsClient& js, std::chrono::milliseconds timeout, const std::string& stream,
             const std::string& consumer) {
  return wait_until(
      [&] {
        auto c = js.consumer(stream, consumer);
        return c && c->pending == 0 && c->ack_pending == 0 && js.stream_msgs(stream) == 0;
      },
      timeout, 200ms);
}

// ---- mosquitto ----

PersistentMosquitto::PersistentMosquitto() : dir_("rdtest-chaos-mqtt"), port_(free_port()) {
  std::string conf = "listener " + std::to_string(port_) + " 127.0.0.1\n" +
                     "allow_anonymous true\n"
                     "persistence true\n"
                     "persistence_location " +
                     dir_.path() +
                     "/\n"
                     "log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n"
                     "max_inflight_messages 0\nmax_queued_messages 1000000\n";
  if (::geteuid() == 0) conf += "user root\n";
  write_file(dir_.file("mosquitto.conf"), conf);
  start();
}

PersistentMosquitto::~PersistentMosquitto() {
  proc_.kill_hard();
}

void PersistentMosquitto::start() {
  proc_ = Process({"/usr/sbin/mosquitto", "-c", dir_.file("mosquitto.conf")}, {},
                  dir_.file("mosquitto.log"));
  // Up once a client can connect and get its CONNACK.
  const bool up = wait_until(
      [&] {
        auto r = run_command({"/usr/bin/mosquitto_pub", "-h", "127.0.0.1", "-p",
                              std::to_string(port_), "-t", "probe", "-n"},
                             {}, 5s);
        return r.status == 0;
      },
      15s, 100ms);
  if (!up) throw std::runtime_error("mosquitto did not start: " + log());
}

void PersistentMosquitto::stop() {
  proc_.signal(SIGTERM);
  if (!proc_.wait(10s)) proc_.kill_hard();
}

MqttRecorder::MqttRecorder(int port, const std::string& filter) : dir_("rdtest-chaos-sub") {
  // mosquitto_sub prints and flushes each payload on its own line; -c keeps the session (and its
  // queued QoS 1 messages) across disconnects; it reconnects by itself.
  proc_ = Process({"/usr/bin/mosquitto_sub", "-h", "127.0.0.1", "-p", std::to_string(port), "-t",
                   filter, "-q", "1", "-c", "-i",
                   "rdtest-chaos-recorder-" + std::to_string(::getpid()), "-t", "rdtest/ready"},
                  {}, dir_.file("out.log"));
  // Subscribed once a probe message on rdtest/ready comes through.
  const bool ok = wait_until(
      [&] {
        run_command({"/usr/bin/mosquitto_pub", "-h", "127.0.0.1", "-p", std::to_string(port), "-t",
                     "rdtest/ready", "-q", "1", "-m", "ready"},
                    {}, 5s);
        return subscribed();
      },
      15s, 200ms);
  if (!ok) throw std::runtime_error("mosquitto_sub did not subscribe: " + proc_.log());
}

MqttRecorder::~MqttRecorder() {
  proc_.kill_hard();
}

bool MqttRecorder::subscribed() const {
  for (const auto& line : read_lines(dir_.file("out.log"))) {
    if (line == "ready") return true;
  }
  return false;
}

std::vector<std::string> MqttRecorder::payloads() const {
  std::vector<std::string> out;
  for (auto& line : read_lines(dir_.file("out.log"))) {
    if (line != "ready") out.push_back(std::move(line));
  }
  return out;
}

}  // namespace rdtest::chaos
