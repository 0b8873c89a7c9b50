// RAII owner of the NATS connection and JetStream context, with endless reconnect and the
// stream/consumer set-up the daemon needs.
#pragma once

#include <nats/nats.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "config.hpp"
#include "metrics.hpp"

namespace rd {

class NatsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Formats a nats.c failure: "<what>: <status text> (<last error>)".
std::string nats_error_text(const std::string& what, natsStatus s,
                            jsErrCode js_err = static_cast<jsErrCode>(0));

struct ConsumerSettings {
  int64_t max_deliver = 3;  // the server's value; -1 = unlimited
  int64_t ack_wait_ms = 30'000;
  int64_t max_ack_pending = 0;
};

// Applies nats.user/password, nats.token, nats.credentials_file, nats.nkey_seed_file and
// nats.tls.* to `opts`: the one place every connection (daemon and CLI) gets its security from.
// Throws NatsError naming the key when a file cannot be used.
void apply_nats_security(natsOptions* opts, const Config::Nats& nats);

// Builds the connection options of `config` as a connection would, without connecting: what
// --check-config runs so it refuses what start-up refuses (a CA file that is not PEM, ...).
void check_nats_options(const Config::Nats& nats);

// The public key (U...) of the nkey user seed (SU...) in `seed_text`; throws NatsError if the text
// holds no valid user seed.
std::string nkey_public_key_from_seed(const std::string& seed_text);

// What an operator should do about a failed connection: names the server and the options to check.
std::string nats_connect_hint(const Config::Nats& nats, natsStatus s);

class NatsClient {
 public:
  // `metrics` (optional) gets nats_connected / nats_reconnects updates.
  NatsClient(const Config::Nats& nats, Metrics* metrics, std::string name = "route-delivery");
  ~NatsClient();
  NatsClient(const NatsClient&) = delete;
  NatsClient& operator=(const NatsClient&) = delete;

  // Connects, retrying in the background until connected (endless reconnect afterwards).
  // Returns false if `should_stop` became true first. With `wait` false, one attempt only and
  // throws NatsError (for CLI subcommands).
  bool connect(const std::function<bool()>& should_stop, bool wait = true);
  bool connected() const;
  natsConnection* conn() const { return nc_; }
  jsCtx* js() const { return js_; }

  // Creates the stream when missing (work-queue retention, file storage).
  void ensure_stream(const std::string& name, const std::vector<std::string>& subjects,
                     bool work_queue, int replicas = 1);
  // Creates the durable pull consumer when missing; returns the server's settings for it.
  // Warns when an existing consumer's max_deliver leaves no room for deferrals.
  ConsumerSettings ensure_consumer(const Config& config);
  ConsumerSettings consumer_settings(const std::string& stream, const std::string& consumer);

  void flush(int64_t timeout_ms);

 private:
  static void on_disconnected(natsConnection* nc, void* closure);
  static void on_reconnected(natsConnection* nc, void* closure);
  static void on_closed(natsConnection* nc, void* closure);
  static void on_error(natsConnection* nc, natsSubscription* sub, natsStatus err, void* closure);

  Config::Nats cfg_;
  std::string urls_;
  std::string name_;
  Metrics* metrics_;
  std::atomic<bool> closing_{false};
  // Set by on_closed; the destructor waits for it (see ~NatsClient).
  std::mutex closed_mu_;
  std::condition_variable closed_cv_;
  bool closed_ = false;
  natsOptions* opts_ = nullptr;
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
};

}  // namespace rd
