// mqtt_republish: republishes each job's payload to an MQTT broker through one long-lived
// asynchronous Paho MQTT C++ client, answering a job only once the broker has acknowledged it.
//
// Flow per job: plan (topic template, QoS, retain; permanent on any rule broken) -> fail fast as
// RETRY while disconnected -> publish with this delivery's id as the token context -> the Paho
// callback (PUBACK/PUBCOMP, or socket write for QoS 0) completes it. A sweeper thread turns a
// missing acknowledgement into RETRY after publish_timeout, and a lost connection fails every
// unacknowledged publish at once (clean session: nothing would be resent after a reconnect).
#include <mqtt/async_client.h>
#include <route_delivery/plugin.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <route_delivery/plugin.hpp>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "publish_plan.hpp"
#include "settings.hpp"

namespace mqtt_republish {
namespace {

using Clock = std::chrono::steady_clock;

constexpr rd_config_key kConfigKeys[] = {
    rd::config_key(RD_CONFIG_STRING, "host", "", "MQTT_HOST",
                   "broker host name or address; empty = plugin unavailable"),
    rd::config_key(RD_CONFIG_INT, "port", "1883", "MQTT_PORT",
                   "broker port (8883 is usual for TLS)"),
    rd::config_key(RD_CONFIG_STRING, "username", "", "MQTT_USERNAME",
                   "user name; empty = anonymous"),
    rd::config_key(RD_CONFIG_SECRET, "password", "", "MQTT_PASSWORD", "password for username"),
    rd::config_key(RD_CONFIG_INT, "qos", "1", "MQTT_QOS",
                   "QoS when the route does not set one (0, 1 or 2)"),
    rd::config_key(
        RD_CONFIG_STRING, "topic_prefix", "", "MQTT_TOPIC_PREFIX",
        "every topic must start with this (may use {tenant_id}), e.g. tenants/{tenant_id}/"),
    rd::config_key(RD_CONFIG_BOOL, "tls", "false", "MQTT_TLS", "connect with TLS (ssl://)"),
    rd::config_key(RD_CONFIG_STRING, "ca_file", "", "MQTT_CA_FILE",
                   "PEM CA bundle to verify the broker; setting it turns TLS on"),
    rd::config_key(RD_CONFIG_INT, "max_inflight", "100", nullptr,
                   "unacknowledged QoS 1/2 publishes on the connection at once"),
    rd::config_key(RD_CONFIG_DURATION, "publish_timeout", "10s", nullptr,
                   "no acknowledgement within this = retry"),
    rd::config_key(RD_CONFIG_DURATION, "connect_timeout", "5s", nullptr,
                   "TCP+CONNACK timeout; start-up waits this long for the first connection"),
    rd::config_key(RD_CONFIG_DURATION, "reconnect_min", "1s", nullptr,
                   "first reconnect delay (doubles up to reconnect_max)"),
    rd::config_key(RD_CONFIG_DURATION, "reconnect_max", "10s", nullptr, "longest reconnect delay"),
    rd::config_key(RD_CONFIG_DURATION, "keepalive", "30s", nullptr, "MQTT keep-alive interval"),
    rd::config_key(RD_CONFIG_STRING, "client_id_prefix", "route-delivery", "MQTT_CLIENT_ID_PREFIX",
                   "client id = <prefix>-<hostname>-<pid>-<n>-<random>, unique per process"),
};

int seconds_ceil(int64_t ms) {
  return static_cast<int>(std::max<int64_t>(1, (ms + 999) / 1000));
}

// Text for a failed connect: CONNACK return codes are 1..5, negative values are Paho's own.
std::string describe_connect_failure(int rc) {
  switch (rc) {
    case 1:
      return "broker refused the connection: unacceptable protocol version";
    case 2:
      return "broker refused the connection: client identifier rejected";
    case 3:
      return "broker refused the connection: server unavailable";
    case 4:
      return "broker refused the connection: bad user name or password (check MQTT_USERNAME and "
             "MQTT_PASSWORD)";
    case 5:
      return "broker refused the connection: not authorized (check MQTT_USERNAME and "
             "MQTT_PASSWORD)";
    case MQTTASYNC_FAILURE:
      return "cannot connect (broker unreachable, connection refused or TLS handshake failed)";
    default: {
      const char* text = ::MQTTAsync_strerror(rc);
      return "cannot connect: " +
             std::string(text != nullptr ? text : "error " + std::to_string(rc));
    }
  }
}

// Whether a synchronous publish error can never succeed as written.
bool is_permanent_publish_error(int rc) {
  return rc == MQTTASYNC_BAD_UTF8_STRING || rc == MQTTASYNC_NULL_PARAMETER ||
         rc == MQTTASYNC_TOPICNAME_TRUNCATED || rc == MQTTASYNC_BAD_QOS ||
         rc == MQTTASYNC_BAD_STRUCTURE;
}

std::string hostname() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof buf - 1) != 0) return {};
  return buf;
}

// Process-wide parts of the client id: one random value per process, a counter per instance.
uint32_t process_random() {
  static const uint32_t value = [] {
    std::random_device rd;
    return static_cast<uint32_t>(rd());
  }();
  return value;
}
std::atomic<unsigned> g_instance_counter{0};

class MqttRepublish {
 public:
  static std::unique_ptr<MqttRepublish> create(const rd_host_services* services,
                                               const char* config_json) {
    auto self = std::unique_ptr<MqttRepublish>(new MqttRepublish(services, config_json));
    self->start();
    return self;
  }

  ~MqttRepublish() { shutdown(); }

  void deliver(uint64_t id, const rd_job& job) {
    if (!settings_.configured()) {
      count_failure(RD_OUTCOME_RETRY);
      completer_.retry(id, "MQTT is not configured: set MQTT_HOST (plugins.mqtt_republish.host)");
      return;
    }
    PublishPlan plan =
        plan_publish(rd::view(job.destination_config_json, job.destination_config_json_len),
                     rd::view(job.tenant_id, job.tenant_id_len),
                     rd::view(job.payload_json, job.payload_json_len), defaults_);
    if (!plan.ok()) {
      count_failure(RD_OUTCOME_PERMANENT);
      completer_.permanent(id, plan.error);
      return;
    }
    if (!connected_.load(std::memory_order_acquire)) {
      count_failure(RD_OUTCOME_RETRY);
      completer_.retry(id, not_connected_reason(), settings_.reconnect_min_ms);
      return;
    }

    int64_t timeout_ms = settings_.publish_timeout_ms;
    if (job.timeout_ms > 0) timeout_ms = std::min(timeout_ms, job.timeout_ms);
    const auto now = Clock::now();
    const auto deadline = now + std::chrono::milliseconds(timeout_ms);
    // The job's bytes are borrowed only until completion; the message owns a copy.
    mqtt::const_message_ptr msg = mqtt::message::create(
        std::move(plan.topic), job.payload_json, job.payload_json_len, plan.qos, plan.retain);
    bool send_now = false;
    {
      // Registered before publishing: the acknowledgement may arrive before publish() returns.
      std::lock_guard<std::mutex> lock(mu_);
      pending_[id] = Pending{deadline, now};
      deadlines_.emplace(deadline, id);
      if (backlog_.empty() && on_wire_.size() < static_cast<size_t>(settings_.max_inflight)) {
        on_wire_.insert(id);
        send_now = true;
      } else {
        backlog_.push_back(Queued{id, std::move(msg)});
      }
    }
    if (deadline < next_wake_.load(std::memory_order_relaxed)) sweeper_cv_.notify_one();
    if (send_now) dispatch({Queued{id, std::move(msg)}});
  }

  bool health(std::string& detail) {
    if (!settings_.configured()) {
      detail = "MQTT is not configured (MQTT_HOST is empty)";
      return false;
    }
    if (connected_.load(std::memory_order_acquire)) {
      detail = "connected to " + settings_.endpoint();
      return true;
    }
    detail = not_connected_reason();
    return false;
  }

 private:
  struct Pending {
    Clock::time_point deadline;
    Clock::time_point started;
  };
  struct Queued {
    uint64_t id = 0;
    mqtt::const_message_ptr msg;
  };

  // Publish acknowledgements (PUBACK/PUBCOMP; socket write for QoS 0) and failures.
  class PublishListener final : public mqtt::iaction_listener {
   public:
    explicit PublishListener(MqttRepublish& owner) : owner_(owner) {}
    void on_success(const mqtt::token& tok) override { owner_.on_publish_done(tok, true); }
    void on_failure(const mqtt::token& tok) override { owner_.on_publish_done(tok, false); }

   private:
    MqttRepublish& owner_;
  };

  // Outcome of each connection attempt, including automatic reconnects (Paho reuses the token).
  class ConnectListener final : public mqtt::iaction_listener {
   public:
    explicit ConnectListener(MqttRepublish& owner) : owner_(owner) {}
    void on_success(const mqtt::token&) override {}  // handled by the connected handler
    void on_failure(const mqtt::token& tok) override { owner_.on_connect_failed(tok); }

   private:
    MqttRepublish& owner_;
  };

  // Counts Paho callbacks running in our code, so shutdown can wait for them.
  class CallbackScope {
   public:
    explicit CallbackScope(MqttRepublish& owner) : owner_(owner) { owner_.callbacks_running_++; }
    ~CallbackScope() { owner_.callbacks_running_--; }
    CallbackScope(const CallbackScope&) = delete;
    CallbackScope& operator=(const CallbackScope&) = delete;

   private:
    MqttRepublish& owner_;
  };

  MqttRepublish(const rd_host_services* services, const char* config_json)
      : services_(services),
        completer_(services),
        settings_(parse_settings(config_json != nullptr ? config_json : "{}")),
        publish_listener_(*this),
        connect_listener_(*this) {
    defaults_.qos = settings_.qos;
    defaults_.topic_prefix = settings_.topic_prefix;
    client_id_ =
        make_client_id(settings_.client_id_prefix, hostname(), static_cast<long>(::getpid()),
                       ++g_instance_counter, process_random());
    register_metrics();
  }

  void register_metrics() {
    const auto reg = [&](auto fn, const char* name, const char* labels, const char* help) {
      return fn(services_->host, name, labels, help);
    };
    m_published_ = reg(services_->counter_register, "mqtt_republish_published_total", nullptr,
                       "publishes handed to the MQTT client");
    m_acked_ = reg(services_->counter_register, "mqtt_republish_acked_total", nullptr,
                   "publishes acknowledged by the broker");
    m_failed_retry_ = reg(services_->counter_register, "mqtt_republish_failed_total",
                          "outcome=\"retry\"", "jobs that failed, by outcome");
    m_failed_permanent_ = reg(services_->counter_register, "mqtt_republish_failed_total",
                              "outcome=\"permanent\"", "jobs that failed, by outcome");
    m_reconnects_ = reg(services_->counter_register, "mqtt_republish_reconnects_total", nullptr,
                        "connections re-established after a loss");
    m_connected_ = reg(services_->gauge_register, "mqtt_republish_connected", nullptr,
                       "1 while connected to the broker");
    m_ack_seconds_ = reg(services_->histogram_register, "mqtt_republish_ack_seconds", nullptr,
                         "publish to broker acknowledgement");
  }

  void start() {
    if (!settings_.configured()) {
      log(RD_LOG_WARN,
          "mqtt_not_configured detail=\"MQTT_HOST is empty; mqtt_republish jobs will "
          "be retried and then dead-lettered\"");
      return;
    }
    if (!settings_.ca_file.empty() && !std::ifstream(settings_.ca_file).good()) {
      throw std::invalid_argument("plugins.mqtt_republish.ca_file: cannot read " +
                                  settings_.ca_file);
    }
    try {
      // No persistence and no offline buffering: while disconnected, jobs fail fast as RETRY and
      // JetStream holds them, instead of piling up in memory here.
      // The C library queues publishes beyond max_inflight and refuses new ones once that queue
      // holds maxBufferedMessages; the host already bounds jobs in flight, so do not cap it here.
      mqtt::create_options create(MQTTVERSION_3_1_1);
      create.set_send_while_disconnected(false);
      create.set_max_buffered_messages(1 << 20);
      client_ =
          std::make_unique<mqtt::async_client>(settings_.server_uri(), client_id_, create, nullptr);
      client_->set_connected_handler([this](const std::string&) { on_connected(); });
      client_->set_connection_lost_handler(
          [this](const std::string& cause) { on_connection_lost(cause); });

      mqtt::connect_options opts;
      opts.set_mqtt_version(MQTTVERSION_3_1_1);
      opts.set_clean_session(true);
      opts.set_keep_alive_interval(seconds_ceil(settings_.keepalive_ms));
      opts.set_connect_timeout(seconds_ceil(settings_.connect_timeout_ms));
      opts.set_automatic_reconnect(seconds_ceil(settings_.reconnect_min_ms),
                                   seconds_ceil(settings_.reconnect_max_ms));
      opts.set_max_inflight(65535);  // the window is enforced by dispatch(), see there
      if (!settings_.username.empty()) {
        opts.set_user_name(settings_.username);
        opts.set_password(settings_.password);
      }
      if (settings_.use_tls()) {
        mqtt::ssl_options ssl;
        if (!settings_.ca_file.empty()) ssl.set_trust_store(settings_.ca_file);
        ssl.set_enable_server_cert_auth(true);
        ssl.set_verify(true);
        opts.set_ssl(std::move(ssl));
      }
      client_->connect(std::move(opts), nullptr, connect_listener_);
    } catch (const mqtt::exception& e) {
      throw std::invalid_argument("plugins.mqtt_republish: cannot create the MQTT client for " +
                                  settings_.server_uri() + ": " + e.get_error_str());
    }
    sweeper_ = std::thread([this] { sweep_loop(); });

    // Give the first connection a moment so the first jobs after start-up are not bounced.
    std::unique_lock<std::mutex> lock(mu_);
    state_cv_.wait_for(lock, std::chrono::milliseconds(settings_.connect_timeout_ms),
                       [&] { return attempts_ > 0; });
    if (!connected_) {
      lock.unlock();
      log(RD_LOG_WARN, "mqtt_not_connected_at_start endpoint=" + settings_.endpoint() +
                           " detail=\"" + not_connected_reason() + "\"");
    }
  }

  void shutdown() {
    closing_ = true;
    if (sweeper_.joinable()) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        stop_sweeper_ = true;
      }
      sweeper_cv_.notify_all();
      sweeper_.join();
    }
    if (client_) {
      try {
        if (client_->is_connected()) client_->disconnect(1000)->wait_for(std::chrono::seconds(2));
      } catch (...) {
        // Shutting down anyway; the broker drops the session when the socket closes.
      }
      try {
        client_.reset();
      } catch (...) {
      }
    }
    while (callbacks_running_.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    // The host has already timed these out; answering keeps the "exactly once" rule simple.
    for (uint64_t id : take_all_pending()) completer_.retry(id, "mqtt_republish is shutting down");
  }

  // Hands messages to Paho, each already counted in the window (on_wire_). The window is ours,
  // not Paho's: Paho's own queue for publishes beyond its max_inflight is only re-examined about
  // once a second (an acknowledgement does not wake it), which caps throughput at max_inflight
  // per second. So Paho never queues. Runs on the host's thread after a deliver and on Paho's
  // thread after an acknowledgement.
  void dispatch(std::vector<Queued> batch) {
    for (size_t i = 0; i < batch.size(); ++i) {
      const uint64_t id = batch[i].id;
      int32_t outcome = RD_OUTCOME_RETRY;
      std::string reason;
      try {
        client_->publish(std::move(batch[i].msg),
                         reinterpret_cast<void*>(static_cast<uintptr_t>(id)), publish_listener_);
        counter_add(m_published_, 1);
        continue;
      } catch (const mqtt::exception& e) {
        if (is_permanent_publish_error(e.get_return_code())) outcome = RD_OUTCOME_PERMANENT;
        reason = e.get_return_code() == MQTTASYNC_DISCONNECTED
                     ? not_connected_reason()
                     : "publish failed: " + e.get_error_str();
      } catch (const std::exception& e) {
        reason = std::string("publish failed: ") + e.what();
      }
      bool answer = false;
      {
        std::lock_guard<std::mutex> lock(mu_);
        on_wire_.erase(id);
        answer = take_pending_locked(id).has_value();
        take_sendable_locked(batch);
      }
      if (answer) {
        count_failure(outcome);
        completer_.finish(id, outcome, reason,
                          outcome == RD_OUTCOME_RETRY ? settings_.reconnect_min_ms : -1);
      }
    }
  }

  // Under mu_: moves queued messages into `out` while the window has room, skipping jobs that
  // were already answered (timed out while queued).
  void take_sendable_locked(std::vector<Queued>& out) {
    const auto window = static_cast<size_t>(settings_.max_inflight);
    while (!backlog_.empty() && on_wire_.size() < window) {
      Queued q = std::move(backlog_.front());
      backlog_.pop_front();
      if (pending_.count(q.id) == 0) continue;
      on_wire_.insert(q.id);
      out.push_back(std::move(q));
    }
  }

  void on_connected() {
    CallbackScope scope(*this);
    if (closing_) return;
    bool reconnect = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      reconnect = ever_connected_;
      ever_connected_ = true;
      connected_ = true;
      ++attempts_;
      last_error_.clear();
    }
    state_cv_.notify_all();
    gauge_set(m_connected_, 1);
    if (reconnect) counter_add(m_reconnects_, 1);
    log(RD_LOG_INFO, std::string(reconnect ? "mqtt_reconnected" : "mqtt_connected") +
                         " endpoint=" + settings_.endpoint() + " client_id=" + client_id_ +
                         " tls=" + (settings_.use_tls() ? "true" : "false"));
  }

  void on_connection_lost(const std::string& cause) {
    CallbackScope scope(*this);
    if (closing_) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      connected_ = false;
      last_error_ = "connection lost" + (cause.empty() ? std::string() : ": " + cause);
    }
    gauge_set(m_connected_, 0);
    // Clean session: unacknowledged publishes are not resent after the reconnect, so each of
    // them is a RETRY now (at-least-once: the broker may have had some of them).
    const auto ids = take_all_pending();
    for (uint64_t id : ids) {
      count_failure(RD_OUTCOME_RETRY);
      completer_.retry(
          id, "connection to MQTT broker " + settings_.endpoint() + " lost before acknowledgement",
          settings_.reconnect_min_ms);
    }
    log(RD_LOG_WARN, "mqtt_connection_lost endpoint=" + settings_.endpoint() + " unacknowledged=" +
                         std::to_string(ids.size()) + " detail=\"reconnecting automatically\"");
  }

  void on_connect_failed(const mqtt::token& tok) {
    CallbackScope scope(*this);
    if (closing_) return;
    const std::string error = describe_connect_failure(tok.get_return_code());
    bool changed = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      connected_ = false;
      ++attempts_;
      changed = error != last_error_;
      last_error_ = error;
    }
    state_cv_.notify_all();
    gauge_set(m_connected_, 0);
    // Reconnect attempts repeat; log each distinct error once at warn.
    log(changed ? RD_LOG_WARN : RD_LOG_DEBUG,
        "mqtt_connect_failed endpoint=" + settings_.endpoint() + " detail=\"" + error + "\"");
  }

  void on_publish_done(const mqtt::token& tok, bool success) {
    CallbackScope scope(*this);
    if (closing_) return;
    const auto id = static_cast<uint64_t>(reinterpret_cast<uintptr_t>(tok.get_user_context()));
    std::optional<Pending> pending;
    std::vector<Queued> next;
    {
      std::lock_guard<std::mutex> lock(mu_);
      on_wire_.erase(id);
      pending = take_pending_locked(id);
      take_sendable_locked(next);
    }
    if (pending) {
      if (success) {
        counter_add(m_acked_, 1);
        services_->histogram_observe(
            services_->host, m_ack_seconds_,
            std::chrono::duration<double>(Clock::now() - pending->started).count());
        completer_.ok(id);
      } else {
        count_failure(RD_OUTCOME_RETRY);
        const int rc = tok.get_return_code();
        const char* text = ::MQTTAsync_strerror(rc);
        completer_.retry(id,
                         "MQTT publish not acknowledged: " +
                             std::string(text != nullptr ? text : "error " + std::to_string(rc)),
                         settings_.reconnect_min_ms);
      }
    }
    // else: already answered (timeout or connection loss)
    if (!next.empty()) dispatch(std::move(next));
  }

  void sweep_loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_sweeper_) {
      const auto now = Clock::now();
      std::vector<uint64_t> expired;
      while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
        const uint64_t id = deadlines_.begin()->second;
        deadlines_.erase(deadlines_.begin());
        pending_.erase(id);
        expired.push_back(id);
      }
      if (!expired.empty()) {
        lock.unlock();
        for (uint64_t id : expired) {
          count_failure(RD_OUTCOME_RETRY);
          completer_.retry(id, "no acknowledgement from MQTT broker " + settings_.endpoint() +
                                   " within " + std::to_string(settings_.publish_timeout_ms) +
                                   "ms");
        }
        lock.lock();
        continue;
      }
      const auto wake =
          deadlines_.empty() ? now + std::chrono::seconds(1) : deadlines_.begin()->first;
      next_wake_.store(wake, std::memory_order_relaxed);
      sweeper_cv_.wait_until(lock, wake);
    }
  }

  std::optional<Pending> take_pending_locked(uint64_t id) {
    const auto it = pending_.find(id);
    if (it == pending_.end()) return std::nullopt;
    Pending p = it->second;
    deadlines_.erase({p.deadline, id});
    pending_.erase(it);
    return p;
  }

  std::vector<uint64_t> take_all_pending() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<uint64_t> ids;
    ids.reserve(pending_.size());
    for (const auto& entry : pending_) ids.push_back(entry.first);
    pending_.clear();
    deadlines_.clear();
    // Clean session: what was on the wire is gone with the connection; Paho's late failure
    // callbacks for it find nothing to release.
    on_wire_.clear();
    backlog_.clear();
    return ids;
  }

  std::string not_connected_reason() {
    std::lock_guard<std::mutex> lock(mu_);
    return "MQTT broker " + settings_.endpoint() + " not connected" +
           (last_error_.empty() ? std::string(" (connecting)") : ": " + last_error_);
  }

  void count_failure(int32_t outcome) {
    counter_add(outcome == RD_OUTCOME_PERMANENT ? m_failed_permanent_ : m_failed_retry_, 1);
  }
  void counter_add(int32_t handle, double v) {
    if (handle >= 0) services_->counter_add(services_->host, handle, v);
  }
  void gauge_set(int32_t handle, double v) {
    if (handle >= 0) services_->gauge_set(services_->host, handle, v);
  }
  void log(int32_t level, const std::string& message) {
    services_->log(services_->host, level, message.c_str());
  }

  const rd_host_services* services_;
  rd::Completer completer_;
  Settings settings_;
  PlanDefaults defaults_;
  std::string client_id_;

  int32_t m_published_ = -1, m_acked_ = -1, m_failed_retry_ = -1, m_failed_permanent_ = -1,
          m_reconnects_ = -1, m_connected_ = -1, m_ack_seconds_ = -1;

  std::atomic<bool> connected_{false};
  std::atomic<bool> closing_{false};
  std::atomic<int> callbacks_running_{0};

  std::mutex mu_;  // guards everything below
  std::condition_variable state_cv_;
  std::condition_variable sweeper_cv_;
  std::atomic<Clock::time_point> next_wake_{Clock::time_point::min()};
  bool stop_sweeper_ = false;
  bool ever_connected_ = false;
  int attempts_ = 0;
  std::string last_error_;
  std::unordered_map<uint64_t, Pending> pending_;
  std::unordered_set<uint64_t> on_wire_;  // handed to Paho, no callback yet (the window)
  std::deque<Queued> backlog_;            // waiting for room in the window
  std::set<std::pair<Clock::time_point, uint64_t>> deadlines_;

  // Declared last: destroyed first (after shutdown() has already reset the client).
  PublishListener publish_listener_;
  ConnectListener connect_listener_;
  std::unique_ptr<mqtt::async_client> client_;
  std::thread sweeper_;
};

}  // namespace
}  // namespace mqtt_republish

RD_DEFINE_CPP_PLUGIN(
    mqtt_republish::MqttRepublish, "mqtt_republish", "1.0.0", "mqtt_republish",
    "republishes the payload to an MQTT broker, ok on the broker's acknowledgement",
    mqtt_republish::kConfigKeys,
    sizeof(mqtt_republish::kConfigKeys) / sizeof(mqtt_republish::kConfigKeys[0]))
