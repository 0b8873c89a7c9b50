// Publisher (publisher.hpp): one libmosquitto client, its network thread, the in-flight window and
// the publish deadlines. Lock order: mu_ is the only lock; mosquitto_publish and
// mosquitto_reinitialise run under it, completions to the host after it is released.
#include "publisher.hpp"

#include <mosquitto.h>
#include <route_delivery/plugin.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <deque>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <route_delivery/plugin.hpp>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "config.hpp"
#include "publish_plan.hpp"

namespace rd::mqtt_republish {
namespace {

using Clock = std::chrono::steady_clock;

int seconds_ceil(int64_t ms) {
  return static_cast<int>(std::max<int64_t>(1, (ms + 999) / 1000));
}

// Text for a refused connection: CONNACK return codes are 1..5.
std::string describe_connack(int rc) {
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
    default:
      return "broker refused the connection: " + std::string(mosquitto_connack_string(rc));
  }
}

// Text for a connection attempt that failed below MQTT (TCP, TLS, timeout).
std::string describe_connect_error(int rc, int saved_errno) {
  std::string text =
      "cannot connect (broker unreachable, connection refused or TLS handshake "
      "failed)";
  if (rc == MOSQ_ERR_ERRNO) {
    if (saved_errno != 0) text += ": " + std::string(std::strerror(saved_errno));
  } else if (rc != MOSQ_ERR_SUCCESS) {
    text += ": " + std::string(mosquitto_strerror(rc));
  }
  return text;
}

// CONNACK refusals that mean "reachable, but it will not take us as configured" (protocol, client
// id, credentials): a real answer from the broker, so jobs spend attempts (RETRY) and reach the
// dead-letter queue with the reason. 3 ("server unavailable") is the broker saying it is down.
bool is_refusal(int connack_rc) {
  return connack_rc != 3;
}

// "2026-12-01T22:40:45Z" for a wall-clock time in milliseconds since the epoch.
std::string utc_text(int64_t wall_ms) {
  const std::time_t t = static_cast<std::time_t>(wall_ms / 1000);
  std::tm tm{};
  if (::gmtime_r(&t, &tm) == nullptr) return "?";
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Whether a mosquitto_publish error can never succeed as written.
bool is_permanent_publish_error(int rc) {
  return rc == MOSQ_ERR_INVAL || rc == MOSQ_ERR_MALFORMED_UTF8 || rc == MOSQ_ERR_PAYLOAD_SIZE ||
         rc == MOSQ_ERR_OVERSIZE_PACKET || rc == MOSQ_ERR_QOS_NOT_SUPPORTED ||
         rc == MOSQ_ERR_NOT_SUPPORTED;
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

// mosquitto_lib_init once per process; never cleaned up (plugins are never unloaded).
void init_library() {
  static std::once_flag once;
  std::call_once(once, [] { mosquitto_lib_init(); });
}

}  // namespace

class Publisher::Impl {
 public:
  static std::unique_ptr<Impl> create(const rd_host_services* services, const char* config_json) {
    auto self = std::unique_ptr<Impl>(new Impl(services, config_json));
    self->start();
    return self;
  }

  ~Impl() { shutdown(); }

  void deliver(uint64_t id, const rd_job& job) {
    if (!settings_.configured()) {
      count_failure(RD_OUTCOME_RETRY);
      completer_.retry(id, "MQTT is not configured: set MQTT_HOST (plugins.mqtt_republish.host)");
      return;
    }
    const std::shared_ptr<const RoutePlan> route = cached_route_plan(
        route_plans_, rd::view(job.destination_config_json, job.destination_config_json_len),
        defaults_);
    PublishPlan plan = plan_job(*route, rd::view(job.tenant_id, job.tenant_id_len),
                                rd::view(job.payload_json, job.payload_json_len), defaults_);
    if (!plan.ok()) {
      count_failure(RD_OUTCOME_PERMANENT);
      completer_.permanent(id, plan.error);
      return;
    }

    int64_t timeout_ms = settings_.publish_timeout_ms;
    if (job.timeout_ms > 0) timeout_ms = std::min(timeout_ms, job.timeout_ms);
    const auto now = Clock::now();
    const auto deadline = now + std::chrono::milliseconds(timeout_ms);
    // The job's bytes stay valid until it is completed, so a queued message borrows the payload;
    // mosquitto_publish copies it.
    Queued q{id,         std::move(plan.topic), job.payload_json, job.payload_json_len, plan.qos,
             plan.retain};
    Failure failure;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!connected_) {
        failure = Failure{id, refused_ ? RD_OUTCOME_RETRY : RD_OUTCOME_DEFER,
                          not_connected_reason_locked()};
      } else {
        // Registered before publishing: the acknowledgement may arrive before publish returns
        // (it then waits for mu_).
        pending_.emplace(id, Pending{now, false});
        add_deadline_locked(deadline, id);
        if (backlog_.empty() && inflight_ < window_) {
          publish_locked(q, failure);
        } else {
          backlog_.push_back(std::move(q));
        }
      }
    }
    if (failure.id != kNoDelivery) answer(failure);
  }

  // One broker serves every job, so one key: a broker outage opens one breaker for all routes.
  size_t destination(const rd_job&, char* key, size_t key_len) {
    if (!settings_.configured()) return 0;
    const size_t n = std::min(key_len, destination_key_.size());
    std::memcpy(key, destination_key_.data(), n);
    return n;
  }

  bool health(std::string& detail) {
    if (!settings_.configured()) {
      detail = "MQTT is not configured (MQTT_HOST is empty)";
      return false;
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (connected_) {
      detail = "connected to " + settings_.endpoint();
      return true;
    }
    detail = not_connected_reason_locked();
    return false;
  }

 private:
  static constexpr uint64_t kNoDelivery = ~uint64_t{0};

  struct Queued {
    uint64_t id = 0;
    std::string topic;
    const char* payload = nullptr;  // borrowed from the job until it is completed
    size_t payload_len = 0;
    int qos = 1;
    bool retain = false;
  };
  struct Deadline {
    Clock::time_point at;
    uint64_t id;
  };
  // A job that is not answered yet.
  struct Pending {
    Clock::time_point start;  // when xDeliver took it
    bool sent = false;        // handed to libmosquitto (false: waiting in backlog_ for the window)
  };
  // A completion decided under mu_ and delivered after it is released.
  struct Failure {
    uint64_t id = kNoDelivery;
    int32_t outcome = 0;
    std::string reason;
  };

  Impl(const rd_host_services* services, const char* config_json)
      : services_(services),
        completer_(services),
        settings_(parse_settings(config_json != nullptr ? config_json : "{}")),
        window_(static_cast<size_t>(settings_.max_inflight)),
        destination_key_("mqtt://" + settings_.endpoint()),
        by_mid_(65536, kNoDelivery) {
    down_since_ = Clock::now();
    down_since_wall_ms_ = services_->wall_ms(services_->host);
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
    m_failed_defer_ = reg(services_->counter_register, "mqtt_republish_failed_total",
                          "outcome=\"defer\"", "jobs that failed, by outcome");
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
    init_library();
    mosq_ = mosquitto_new(client_id_.c_str(), true, this);
    if (mosq_ == nullptr) {
      throw std::invalid_argument("plugins.mqtt_republish: cannot create the MQTT client for " +
                                  settings_.server_uri() + ": " + std::strerror(errno));
    }
    if (std::string error = configure_client(); !error.empty()) {
      mosquitto_destroy(mosq_);
      mosq_ = nullptr;
      throw std::invalid_argument("plugins.mqtt_republish: cannot create the MQTT client for " +
                                  settings_.server_uri() + ": " + error);
    }
    network_ = std::thread([this] { network_loop(); });

    // Give the first connection a moment so the first jobs after start-up are not bounced.
    std::unique_lock<std::mutex> lock(mu_);
    state_cv_.wait_for(lock, std::chrono::milliseconds(settings_.connect_timeout_ms),
                       [&] { return attempts_ > 0; });
    if (!connected_) {
      const std::string reason = not_connected_reason_locked();
      lock.unlock();
      log(RD_LOG_WARN, "mqtt_not_connected_at_start endpoint=" + settings_.endpoint() +
                           " detail=\"" + reason + "\"");
    }
  }

  // Options, credentials, TLS and callbacks of a fresh (or reinitialised) client. "" = ok.
  std::string configure_client() {
    mosquitto_threaded_set(mosq_, true);  // our own network thread; publish from any thread
    mosquitto_int_option(mosq_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    // The window is ours (window_, see publish_locked); the library never holds a publish back.
    mosquitto_int_option(mosq_, MOSQ_OPT_SEND_MAXIMUM, 65535);
    mosquitto_connect_callback_set(mosq_, &Impl::on_connect_cb);
    mosquitto_publish_callback_set(mosq_, &Impl::on_publish_cb);
    if (!settings_.username.empty()) {
      if (int rc = mosquitto_username_pw_set(mosq_, settings_.username.c_str(),
                                             settings_.password.c_str());
          rc != MOSQ_ERR_SUCCESS) {
        return std::string("credentials: ") + mosquitto_strerror(rc);
      }
    }
    if (settings_.use_tls()) {
      int rc = MOSQ_ERR_SUCCESS;
      if (!settings_.ca_file.empty()) {
        rc =
            mosquitto_tls_set(mosq_, settings_.ca_file.c_str(), nullptr, nullptr, nullptr, nullptr);
      } else {
        rc = mosquitto_int_option(mosq_, MOSQ_OPT_TLS_USE_OS_CERTS, 1);
      }
      // Verify the broker's certificate chain and its host name.
      if (rc == MOSQ_ERR_SUCCESS) rc = mosquitto_tls_opts_set(mosq_, 1, nullptr, nullptr);
      if (rc == MOSQ_ERR_SUCCESS) rc = mosquitto_tls_insecure_set(mosq_, false);
      if (rc != MOSQ_ERR_SUCCESS) {
        return "TLS cannot be set up" +
               (settings_.ca_file.empty() ? std::string() : " with ca_file " + settings_.ca_file) +
               ": " + mosquitto_strerror(rc);
      }
    }
    return {};
  }

  void shutdown() {
    if (network_.joinable()) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        stop_ = true;
      }
      state_cv_.notify_all();
      network_.join();
    }
    if (mosq_ != nullptr) {
      mosquitto_destroy(mosq_);
      mosq_ = nullptr;
    }
    // The host has already timed these out; answering keeps the "exactly once" rule simple.
    auto [sent, unsent] = take_all_pending();
    sent.insert(sent.end(), unsent.begin(), unsent.end());
    for (uint64_t id : sent) completer_.retry(id, "mqtt_republish is shutting down");
  }

  // ---- the network thread ---------------------------------------------------------------------

  // Connects, runs the connection until it drops, backs off, reconnects; until shutdown.
  void network_loop() {
    int64_t backoff_ms = settings_.reconnect_min_ms;
    // Non-empty: the client could not be set up again (e.g. ca_file became unreadable). No
    // attempt is made then: without its TLS settings the client would connect in plain text.
    std::string setup_error;
    while (!stop_) {
      session_connected_ = false;
      session_refused_ = false;
      const auto attempt_start = Clock::now();
      const int keepalive = std::max(5, seconds_ceil(settings_.keepalive_ms));
      int rc = MOSQ_ERR_INVAL;
      int saved_errno = 0;
      if (setup_error.empty()) {
        errno = 0;
        rc = mosquitto_connect_async(mosq_, settings_.host.c_str(), settings_.port, keepalive);
        saved_errno = errno;
      }
      while (rc == MOSQ_ERR_SUCCESS && !stop_) {
        const int wait_ms = expire_overdue();
        rc = mosquitto_loop(mosq_, wait_ms, 1);
        saved_errno = errno;
        if (rc == MOSQ_ERR_SUCCESS && mosquitto_socket(mosq_) < 0) rc = MOSQ_ERR_NO_CONN;
        if (rc == MOSQ_ERR_SUCCESS && !session_connected_ &&
            Clock::now() - attempt_start >
                std::chrono::milliseconds(settings_.connect_timeout_ms)) {
          rc = MOSQ_ERR_TIMEOUT;
          saved_errno = 0;
        }
      }
      if (stop_) {
        if (session_connected_) close_connection();
        break;
      }
      if (session_connected_) {
        connection_lost(rc == MOSQ_ERR_ERRNO && saved_errno != 0 ? std::strerror(saved_errno)
                                                                 : mosquitto_strerror(rc));
        backoff_ms = settings_.reconnect_min_ms;
      } else if (!session_refused_) {
        connect_failed(!setup_error.empty() ? "cannot connect: " + setup_error
                       : rc == MOSQ_ERR_TIMEOUT
                           ? "cannot connect: no answer from the broker within connect_timeout"
                           : describe_connect_error(rc, saved_errno));
      }
      {
        // A fresh client for every connection (this also closes the old socket): nothing of the
        // old session (unacknowledged publishes) is resent; they were all answered RETRY when
        // the connection dropped.
        std::lock_guard<std::mutex> lock(mu_);
        const int reinit = mosquitto_reinitialise(mosq_, client_id_.c_str(), true, this);
        setup_error = reinit != MOSQ_ERR_SUCCESS
                          ? std::string("cannot reset the client: ") + mosquitto_strerror(reinit)
                          : configure_client();
      }
      sleep_for_ms(backoff_ms);
      if (!session_connected_) {
        backoff_ms = std::min(backoff_ms * 2,
                              std::max(settings_.reconnect_min_ms, settings_.reconnect_max_ms));
      }
    }
  }

  void sleep_for_ms(int64_t ms) {
    std::unique_lock<std::mutex> lock(mu_);
    state_cv_.wait_for(lock, std::chrono::milliseconds(ms), [&] { return stop_.load(); });
  }

  // Graceful end: DISCONNECT, flushed within a second.
  void close_connection() {
    mosquitto_disconnect(mosq_);
    const auto until = Clock::now() + std::chrono::seconds(1);
    while (Clock::now() < until && mosquitto_loop(mosq_, 50, 1) == MOSQ_ERR_SUCCESS &&
           mosquitto_socket(mosq_) >= 0) {
    }
  }

  static void on_connect_cb(struct mosquitto*, void* self, int rc) {
    static_cast<Impl*>(self)->on_connect(rc);
  }
  static void on_publish_cb(struct mosquitto*, void* self, int mid) {
    static_cast<Impl*>(self)->on_publish(mid);
  }

  void on_connect(int rc) {
    if (rc != 0) {
      session_refused_ = true;
      connect_failed(describe_connack(rc), is_refusal(rc));
      return;
    }
    session_connected_ = true;
    bool reconnect = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      reconnect = ever_connected_;
      ever_connected_ = true;
      connected_ = true;
      refused_ = false;
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

  void connection_lost(const std::string& cause) {
    std::string not_connected;
    {
      std::lock_guard<std::mutex> lock(mu_);
      connected_ = false;
      refused_ = false;
      last_error_ = "connection lost" + (cause.empty() ? std::string() : ": " + cause);
      down_since_ = Clock::now();
      down_since_wall_ms_ = services_->wall_ms(services_->host);
      not_connected = not_connected_reason_locked();
    }
    gauge_set(m_connected_, 0);
    // Clean session: unacknowledged publishes are not resent after the reconnect, so each of
    // them is a RETRY now (it was sent: at-least-once, the broker may have had some of them).
    // Jobs still waiting for room in the window never left the plugin: DEFER.
    const auto [sent, unsent] = take_all_pending();
    for (uint64_t id : sent) {
      count_failure(RD_OUTCOME_RETRY);
      completer_.retry(
          id, "connection to MQTT broker " + settings_.endpoint() + " lost before acknowledgement",
          settings_.reconnect_min_ms);
    }
    for (uint64_t id : unsent) answer(Failure{id, RD_OUTCOME_DEFER, not_connected});
    log(RD_LOG_WARN, "mqtt_connection_lost endpoint=" + settings_.endpoint() +
                         " unacknowledged=" + std::to_string(sent.size()) + " deferred=" +
                         std::to_string(unsent.size()) + " detail=\"reconnecting automatically\"");
  }

  // `refused`: the broker answered CONNECT with a refusal (see is_refusal), rather than being
  // unreachable.
  void connect_failed(const std::string& error, bool refused = false) {
    bool changed = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      connected_ = false;
      refused_ = refused;
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

  // PUBACK/PUBCOMP, or the socket write of a QoS 0 publish (network thread).
  void on_publish(int mid) {
    std::optional<Clock::time_point> started;
    uint64_t id = kNoDelivery;
    std::vector<Failure> failures;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (mid <= 0 || mid >= static_cast<int>(by_mid_.size())) return;
      id = by_mid_[mid];
      if (id == kNoDelivery) return;  // from before a reconnect: already answered
      by_mid_[mid] = kNoDelivery;
      --inflight_;
      if (const auto it = pending_.find(id); it != pending_.end()) {
        started = it->second.start;
        pending_.erase(it);
      }
      // else: already answered (timeout); its deadline entry is dropped lazily.
      while (!deadlines_.empty() && pending_.count(deadlines_.front().id) == 0) {
        deadlines_.pop_front();
      }
      send_backlog_locked(failures);
    }
    if (started) {
      counter_add(m_acked_, 1);
      services_->histogram_observe(services_->host, m_ack_seconds_,
                                   std::chrono::duration<double>(Clock::now() - *started).count());
      completer_.ok(id);
    }
    for (const Failure& f : failures) answer(f);
  }

  // Answers publishes whose deadline has passed (network thread). Returns how long
  // mosquitto_loop may wait for the socket: until the next deadline, at most 100 ms (the bound on
  // how late a timeout, the connect timeout or shutdown is noticed).
  int expire_overdue() {
    std::vector<uint64_t> expired;
    std::vector<Failure> unsent;  // still in backlog_: the window never had room for them
    int64_t wait_ms = 100;
    {
      std::lock_guard<std::mutex> lock(mu_);
      const auto now = Clock::now();
      while (!deadlines_.empty()) {
        const Deadline& d = deadlines_.front();
        if (pending_.count(d.id) == 0) {
          deadlines_.pop_front();
          continue;
        }
        if (d.at > now) {
          const auto until =
              std::chrono::duration_cast<std::chrono::milliseconds>(d.at - now).count();
          wait_ms = std::clamp<int64_t>(until + 1, 1, wait_ms);
          break;
        }
        const auto it = pending_.find(d.id);
        if (it->second.sent) {
          expired.push_back(d.id);  // its window slot stays taken until the broker answers
        } else {
          // Skipped by send_backlog_locked once it is no longer pending.
          unsent.push_back(
              Failure{d.id, RD_OUTCOME_DEFER, saturated_reason_locked(now - it->second.start)});
        }
        pending_.erase(it);
        deadlines_.pop_front();
      }
    }
    for (const Failure& f : unsent) answer(f);
    for (uint64_t id : expired) {
      count_failure(RD_OUTCOME_RETRY);
      completer_.retry(id, "no acknowledgement from MQTT broker " + settings_.endpoint() +
                               " within " + std::to_string(settings_.publish_timeout_ms) + "ms");
    }
    return static_cast<int>(wait_ms);
  }

  // ---- under mu_ ------------------------------------------------------------------------------

  // Deadlines are kept sorted; they almost always arrive in order (now + a fixed timeout).
  void add_deadline_locked(Clock::time_point at, uint64_t id) {
    if (deadlines_.empty() || deadlines_.back().at <= at) {
      deadlines_.push_back(Deadline{at, id});
      return;
    }
    const auto pos =
        std::upper_bound(deadlines_.begin(), deadlines_.end(), at,
                         [](Clock::time_point t, const Deadline& d) { return t < d.at; });
    deadlines_.insert(pos, Deadline{at, id});
  }

  // Hands one message to libmosquitto, taking a slot of the window. On an error the job is
  // removed from pending_ and `failure` says how to answer it (after mu_ is released).
  void publish_locked(const Queued& q, Failure& failure) {
    int mid = 0;
    const int rc = mosquitto_publish(mosq_, &mid, q.topic.c_str(), static_cast<int>(q.payload_len),
                                     q.payload, q.qos, q.retain);
    if (rc == MOSQ_ERR_SUCCESS && mid > 0 && mid < static_cast<int>(by_mid_.size())) {
      by_mid_[mid] = q.id;
      ++inflight_;
      if (const auto it = pending_.find(q.id); it != pending_.end()) it->second.sent = true;
      counter_add(m_published_, 1);
      return;
    }
    pending_.erase(q.id);
    if (rc == MOSQ_ERR_NO_CONN || rc == MOSQ_ERR_CONN_LOST) {
      // Refused by the library before anything was written: the broker was not tried.
      failure = Failure{q.id, RD_OUTCOME_DEFER, not_connected_reason_locked()};
    } else {
      failure =
          Failure{q.id, is_permanent_publish_error(rc) ? RD_OUTCOME_PERMANENT : RD_OUTCOME_RETRY,
                  std::string("publish failed: ") + mosquitto_strerror(rc)};
    }
  }

  // Sends queued messages while the window has room, skipping jobs already answered (timed out
  // while queued).
  void send_backlog_locked(std::vector<Failure>& failures) {
    while (!backlog_.empty() && inflight_ < window_ && connected_) {
      Queued q = std::move(backlog_.front());
      backlog_.pop_front();
      if (pending_.count(q.id) == 0) continue;
      Failure f;
      publish_locked(q, f);
      if (f.id != kNoDelivery) failures.push_back(std::move(f));
    }
  }

  void answer(const Failure& f) {
    count_failure(f.outcome);
    if (f.outcome == RD_OUTCOME_DEFER) {
      // No delay of ours: the host's deferral delay grows while the broker stays away.
      completer_.defer(f.id, f.reason);
    } else {
      completer_.finish(f.id, f.outcome, f.reason,
                        f.outcome == RD_OUTCOME_RETRY ? settings_.reconnect_min_ms : -1);
    }
  }

  // Every unanswered job, split into those handed to libmosquitto and those still in backlog_.
  std::pair<std::vector<uint64_t>, std::vector<uint64_t>> take_all_pending() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<uint64_t> sent, unsent;
    for (const auto& [id, p] : pending_) (p.sent ? sent : unsent).push_back(id);
    pending_.clear();
    deadlines_.clear();
    // Clean session: what was on the wire is gone with the connection (the client is
    // reinitialised before the next one), so the window is empty again.
    std::fill(by_mid_.begin(), by_mid_.end(), kNoDelivery);
    inflight_ = 0;
    backlog_.clear();
    return {std::move(sent), std::move(unsent)};
  }

  // Names the broker, since when it has been unreachable and the last connect error.
  std::string not_connected_reason_locked() const {
    const auto down_s =
        std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - down_since_).count();
    return "MQTT broker " + settings_.endpoint() + " not connected since " +
           utc_text(down_since_wall_ms_) + " (" + std::to_string(down_s) + "s)" +
           (last_error_.empty() ? std::string(": connecting") : ": " + last_error_);
  }

  std::string saturated_reason_locked(Clock::duration waited) const {
    return "MQTT broker " + settings_.endpoint() + " saturated: " + std::to_string(inflight_) +
           " publishes awaiting acknowledgement (max_inflight " + std::to_string(window_) +
           "), this one not sent within " +
           std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(waited).count()) +
           "ms";
  }

  void count_failure(int32_t outcome) {
    counter_add(outcome == RD_OUTCOME_PERMANENT ? m_failed_permanent_
                : outcome == RD_OUTCOME_DEFER   ? m_failed_defer_
                                                : m_failed_retry_,
                1);
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
  RoutePlanCache route_plans_;
  std::string client_id_;
  const size_t window_;                // max_inflight
  const std::string destination_key_;  // "mqtt://host:port"

  int32_t m_published_ = -1, m_acked_ = -1, m_failed_retry_ = -1, m_failed_permanent_ = -1,
          m_failed_defer_ = -1, m_reconnects_ = -1, m_connected_ = -1, m_ack_seconds_ = -1;

  struct mosquitto* mosq_ = nullptr;
  std::thread network_;
  // Network thread only.
  bool session_connected_ = false;  // CONNACK accepted on the current connection
  bool session_refused_ = false;    // CONNACK refused (already reported)

  std::mutex mu_;  // guards everything below, and every mosquitto_publish/reinitialise
  std::condition_variable state_cv_;
  std::atomic<bool> stop_{false};  // written under mu_ (state_cv_)
  bool connected_ = false;
  bool ever_connected_ = false;
  bool refused_ = false;  // not connected because the broker refused CONNECT (is_refusal)
  int attempts_ = 0;
  std::string last_error_;
  Clock::time_point down_since_;    // not connected since (start-up, or the connection loss)
  int64_t down_since_wall_ms_ = 0;  // the same, for people
  std::unordered_map<uint64_t, Pending> pending_;
  std::vector<uint64_t> by_mid_;  // MQTT message id -> delivery id on the wire (the window)
  size_t inflight_ = 0;           // entries of by_mid_ in use
  std::deque<Queued> backlog_;    // waiting for room in the window
  std::deque<Deadline> deadlines_;
};

Publisher::Publisher(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Publisher::~Publisher() = default;

void Publisher::validate(const char* config_json) {
  parse_settings(config_json != nullptr ? config_json : "{}");
}

std::unique_ptr<Publisher> Publisher::create(const rd_host_services* services,
                                             const char* config_json) {
  return std::unique_ptr<Publisher>(new Publisher(Impl::create(services, config_json)));
}
void Publisher::deliver(uint64_t id, const rd_job& job) {
  impl_->deliver(id, job);
}
size_t Publisher::destination(const rd_job& job, char* key, size_t key_len) {
  return impl_->destination(job, key, key_len);
}
bool Publisher::health(std::string& detail) {
  return impl_->health(detail);
}

}  // namespace rd::mqtt_republish
