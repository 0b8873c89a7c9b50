// Helpers for the scale-out, cluster, max-deliveries and chaos tests: a publisher that survives
// server restarts without publishing a job twice, a replicated ROUTES stream, a mosquitto that
// keeps its sessions across a restart with a subscriber that records what it receives, the
// scripted plugin's record file, and small readers for /health and the dead-letter stream.
#pragma once

#include <nats/nats.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace rdtest::chaos {

using namespace std::chrono_literals;

std::vector<std::string> split_urls(const std::string& urls);  // comma-separated

// A JetStream publisher for a server (or cluster) that may restart under it. Each publish carries
// a Nats-Msg-Id, so a re-send after a lost acknowledgement is stored once (the stream's duplicate
// window must cover the test). Safe to call from several threads.
class Publisher {
 public:
  explicit Publisher(const std::string& urls);
  ~Publisher();
  Publisher(const Publisher&) = delete;
  Publisher& operator=(const Publisher&) = delete;

  // Returns the stream sequence the message was stored at; throws when no server acknowledged it
  // within `timeout`.
  uint64_t publish(const std::string& subject, const std::string& data, const std::string& msg_id,
                   std::chrono::milliseconds timeout = 90s);
  jsCtx* js() { return js_; }

 private:
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
};

// Creates the work-queue stream `name` on `routes.>` with `replicas` copies and a duplicate window
// of `dup_window`; retries while the cluster elects its JetStream meta leader. Returns the error
// text of the last attempt when `timeout` passes, "" on success (or when it already exists).
std::string create_routes_stream(jsCtx* js, const std::string& name, int replicas,
                                 std::chrono::milliseconds dup_window,
                                 std::chrono::milliseconds timeout);

// The same for any stream: `subjects`, work-queue or limits retention.
std::string create_stream(jsCtx* js, const std::string& name,
                          const std::vector<std::string>& subjects, bool work_queue, int replicas,
                          std::chrono::milliseconds dup_window, std::chrono::milliseconds timeout);

// One line of the scripted plugin's record file: `<message_id> <attempt> <wall_ms> <entry>`.
struct Attempt {
  std::string message_id;
  int attempt = 0;
  int64_t wall_ms = 0;
  std::string entry;
};
std::vector<Attempt> read_attempts(const std::string& record_path);

// GET /health as JSON (an empty object when the daemon does not answer).
nlohmann::json health(const Daemon& daemon);
int64_t delivered(const Daemon& daemon);

// Every record in the dead-letter stream, parsed.
std::vector<nlohmann::json> dead_letters(JsClient& js, const std::string& stream = "ROUTES_DLQ");

// A folder holding symlinks to the given plugin files, for plugins.dir.
class PluginFolder {
 public:
  explicit PluginFolder(const std::vector<std::string>& files);
  const std::string& path() const { return dir_.path(); }

 private:
  TempDir dir_;
};
std::string webhook_plugin();
std::string mqtt_plugin();
std::string postgresql_plugin();
std::string scripted_plugin();

// The port in the daemon's last `nats_connected` / `nats_reconnected` log line, or 0.
int connected_port(const std::string& daemon_log);

// Waits until the consumer has nothing pending or unacknowledged and the stream is empty.
bool drained(JsClient& js, std::chrono::milliseconds timeout, const std::string& stream = "ROUTES",
             const std::string& consumer = "route-delivery");

// mosquitto that saves its sessions and queued messages on shutdown and loads them on start, so
// a persistent subscriber misses nothing across a restart (tests/support's Mosquitto runs without
// persistence).
class PersistentMosquitto {
 public:
  PersistentMosquitto();
  ~PersistentMosquitto();
  void start();
  void stop();  // SIGTERM: mosquitto writes its persistence file before exiting
  int port() const { return port_; }
  std::string log() const { return proc_.log(); }

 private:
  TempDir dir_;
  int port_;
  Process proc_;
};

// mosquitto_sub with a persistent session (clean session off, QoS 1): reconnects by itself after
// a broker restart and receives what was queued meanwhile. Writes one payload per line.
class MqttRecorder {
 public:
  MqttRecorder(int port, const std::string& filter);
  ~MqttRecorder();
  std::vector<std::string> payloads() const;
  bool subscribed() const;

 private:
  TempDir dir_;
  Process proc_;
};

}  // namespace rdtest::chaos
