#include "nats_client.hpp"

#include <chrono>
#include <sstream>
#include <thread>

#include "logging.hpp"
#include "retry_policy.hpp"

namespace rd {

std::string nats_error_text(const std::string& what, natsStatus s, jsErrCode js_err) {
  std::string text = what + ": " + natsStatus_GetText(s);
  const char* last = nats_GetLastError(nullptr);
  if (last != nullptr && *last != '\0') text += std::string(" (") + last + ")";
  if (js_err != 0) text += " [JetStream error " + std::to_string(static_cast<int>(js_err)) + "]";
  return text;
}

namespace {
std::vector<std::string> split_urls(const std::string& urls) {
  std::vector<std::string> out;
  std::stringstream ss(urls);
  std::string item;
  while (std::getline(ss, item, ',')) {
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (!item.empty()) out.push_back(item);
  }
  return out;
}
}  // namespace

NatsClient::NatsClient(const std::string& urls, Metrics* metrics, std::string name)
    : urls_(urls), name_(std::move(name)), metrics_(metrics) {}

NatsClient::~NatsClient() {
  closing_ = true;
  if (js_ != nullptr) jsCtx_Destroy(js_);
  if (nc_ != nullptr) {
    natsConnection_Close(nc_);
    // nats.c runs the disconnected and closed callbacks on its own thread after Close returns,
    // with `this` as closure: wait for the closed one, the last, before the members go away.
    std::unique_lock<std::mutex> lock(closed_mu_);
    closed_cv_.wait_for(lock, std::chrono::seconds(5), [&] { return closed_; });
    lock.unlock();
    natsConnection_Destroy(nc_);
  }
  if (opts_ != nullptr) natsOptions_Destroy(opts_);
}

void NatsClient::on_disconnected(natsConnection*, void* closure) {
  auto* self = static_cast<NatsClient*>(closure);
  if (self->metrics_) self->metrics_->nats_connected = 0;
  if (self->closing_) return;
  log::warn("nats_disconnected", {log::kv("reason", "connection lost; reconnecting")});
}

void NatsClient::on_reconnected(natsConnection* nc, void* closure) {
  auto* self = static_cast<NatsClient*>(closure);
  if (self->metrics_) {
    self->metrics_->nats_connected = 1;
    self->metrics_->nats_reconnects++;
  }
  char url[256] = {0};
  natsConnection_GetConnectedUrl(nc, url, sizeof url);
  log::info("nats_reconnected", {log::kv("server", redact_url(url))});
}

void NatsClient::on_closed(natsConnection*, void* closure) {
  auto* self = static_cast<NatsClient*>(closure);
  if (self->metrics_) self->metrics_->nats_connected = 0;
  // Notified under the lock: once the destructor sees closed_, nothing here touches `self`.
  std::lock_guard<std::mutex> lock(self->closed_mu_);
  self->closed_ = true;
  self->closed_cv_.notify_all();
}

void NatsClient::on_error(natsConnection*, natsSubscription*, natsStatus err, void*) {
  log::warn("nats_async_error", {log::kv("error", natsStatus_GetText(err))});
}

bool NatsClient::connect(const std::function<bool()>& should_stop, bool wait) {
  const auto urls = split_urls(urls_);
  std::vector<const char*> curls;
  for (const auto& u : urls) curls.push_back(u.c_str());
  natsStatus s = natsOptions_Create(&opts_);
  if (s == NATS_OK) s = natsOptions_SetServers(opts_, curls.data(), static_cast<int>(curls.size()));
  if (s != NATS_OK) {
    throw NatsError(nats_error_text(
        "invalid nats.url '" + redact_url(urls_) + "' (expected nats://host:port[,nats://...])",
        s));
  }
  natsOptions_SetName(opts_, name_.c_str());
  natsOptions_SetMaxReconnect(opts_, -1);  // endless
  natsOptions_SetReconnectWait(opts_, 250);
  natsOptions_SetReconnectJitter(opts_, 100, 1000);
  natsOptions_SetReconnectBufSize(opts_, 64 * 1024 * 1024);  // acks issued while reconnecting
  natsOptions_SetTimeout(opts_, 5000);
  natsOptions_SetPingInterval(opts_, 5000);
  natsOptions_SetMaxPingsOut(opts_, 3);
  natsOptions_SetDisconnectedCB(opts_, &NatsClient::on_disconnected, this);
  natsOptions_SetReconnectedCB(opts_, &NatsClient::on_reconnected, this);
  natsOptions_SetClosedCB(opts_, &NatsClient::on_closed, this);
  natsOptions_SetErrorHandler(opts_, &NatsClient::on_error, this);
  if (urls.size() > 1) natsOptions_SetNoRandomize(opts_, false);

  auto last_log = std::chrono::steady_clock::now() - std::chrono::hours(1);
  while (true) {
    s = natsConnection_Connect(&nc_, opts_);
    if (s == NATS_OK) break;
    if (!wait)
      throw NatsError(nats_error_text("cannot connect to NATS at " + redact_url(urls_), s));
    const auto now = std::chrono::steady_clock::now();
    if (now - last_log > std::chrono::seconds(5)) {
      log::warn(
          "nats_connect_failed",
          {log::kv("url", redact_url(urls_)), log::kv("error", natsStatus_GetText(s)),
           log::kv("action", "retrying; check nats.url / NATS_URL and that nats-server runs")});
      last_log = now;
    }
    for (int i = 0; i < 10; ++i) {
      if (should_stop()) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  if (metrics_) metrics_->nats_connected = 1;
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = 5000;
  s = natsConnection_JetStream(&js_, nc_, &jo);
  if (s != NATS_OK) throw NatsError(nats_error_text("JetStream context", s));
  char url[256] = {0};
  natsConnection_GetConnectedUrl(nc_, url, sizeof url);
  log::info("nats_connected", {log::kv("server", redact_url(url))});
  return true;
}

bool NatsClient::connected() const {
  return nc_ != nullptr && natsConnection_Status(nc_) == NATS_CONN_STATUS_CONNECTED;
}

void NatsClient::ensure_stream(const std::string& name, const std::vector<std::string>& subjects,
                               bool work_queue, int replicas) {
  jsStreamInfo* si = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&si, js_, name.c_str(), nullptr, &err);
  if (s == NATS_OK) {
    jsStreamInfo_Destroy(si);
    return;
  }
  if (s != NATS_NOT_FOUND && err != JSStreamNotFoundErr) {
    throw NatsError(nats_error_text(
        "stream info for '" + name + "' (is JetStream enabled? start nats-server with -js)", s,
        err));
  }
  std::vector<const char*> subs;
  for (const auto& x : subjects) subs.push_back(x.c_str());
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = name.c_str();
  cfg.Subjects = subs.data();
  cfg.SubjectsLen = static_cast<int>(subs.size());
  cfg.Storage = js_FileStorage;
  cfg.Retention = work_queue ? js_WorkQueuePolicy : js_LimitsPolicy;
  cfg.Duplicates = 2LL * 60 * 1'000'000'000;
  cfg.Replicas = replicas;  // 2 min de-duplication window (Nats-Msg-Id)
  s = js_AddStream(&si, js_, &cfg, nullptr, &err);
  if (s != NATS_OK && err != JSStreamNameExistErr) {
    throw NatsError(nats_error_text("cannot create stream '" + name + "'", s, err));
  }
  if (si) jsStreamInfo_Destroy(si);
  log::info("stream_created",
            {log::kv("stream", name), log::kv("subjects", subjects.empty() ? "" : subjects[0])});
}

ConsumerSettings NatsClient::consumer_settings(const std::string& stream,
                                               const std::string& consumer) {
  jsConsumerInfo* ci = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  natsStatus s = js_GetConsumerInfo(&ci, js_, stream.c_str(), consumer.c_str(), nullptr, &err);
  if (s != NATS_OK)
    throw NatsError(nats_error_text("consumer info for " + stream + "/" + consumer, s, err));
  ConsumerSettings out;
  out.max_deliver = ci->Config->MaxDeliver <= 0 ? -1 : ci->Config->MaxDeliver;
  out.ack_wait_ms = ci->Config->AckWait / 1'000'000;
  out.max_ack_pending = ci->Config->MaxAckPending;
  jsConsumerInfo_Destroy(ci);
  return out;
}

ConsumerSettings NatsClient::ensure_consumer(const Config& config) {
  const Config::Nats& cfg = config.nats;
  const int max_in_flight = config.delivery.max_in_flight + config.delivery.max_waiting;
  const int64_t wanted_max_deliver = jetstream_max_deliver(config);
  jsConsumerInfo* ci = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  natsStatus s =
      js_GetConsumerInfo(&ci, js_, cfg.stream.c_str(), cfg.consumer.c_str(), nullptr, &err);
  if (s == NATS_OK) {
    jsConsumerInfo_Destroy(ci);
  } else if (!cfg.create) {
    throw NatsError(nats_error_text(
        "durable consumer '" + cfg.consumer + "' on stream '" + cfg.stream +
            "' does not exist and nats.create is false (create it, or set nats.create: true)",
        s, err));
  } else {
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = cfg.consumer.c_str();
    cc.AckPolicy = js_AckExplicit;
    cc.DeliverPolicy = js_DeliverAll;
    cc.AckWait = cfg.ack_wait_ms * 1'000'000;
    cc.MaxDeliver = wanted_max_deliver;
    // Each instance bounds itself with delivery.max_in_flight; leave room for several instances.
    cc.MaxAckPending = std::max<int64_t>(65'536, static_cast<int64_t>(max_in_flight) * 16);
    cc.MaxWaiting = 512;
    if (cfg.subjects.size() == 1 && cfg.subjects[0] != cfg.subject_prefix + ".>") {
      cc.FilterSubject = cfg.subjects[0].c_str();
    }
    s = js_AddConsumer(&ci, js_, cfg.stream.c_str(), &cc, nullptr, &err);
    if (s != NATS_OK && err != JSConsumerNameExistErr && err != JSConsumerExistingActiveErr) {
      throw NatsError(
          nats_error_text("cannot create durable consumer '" + cfg.consumer + "'", s, err));
    }
    if (ci) jsConsumerInfo_Destroy(ci);
    log::info("consumer_created", {log::kv("stream", cfg.stream), log::kv("consumer", cfg.consumer),
                                   log::kv("max_deliver", wanted_max_deliver),
                                   log::kv("max_attempts", cfg.max_deliver)});
  }
  ConsumerSettings settings = consumer_settings(cfg.stream, cfg.consumer);
  if (wanted_max_deliver > 0 && settings.max_deliver > 0 &&
      settings.max_deliver < wanted_max_deliver) {
    log::warn(
        "consumer_max_deliver_low",
        {log::kv("consumer", cfg.stream + "/" + cfg.consumer),
         log::kv("max_deliver", settings.max_deliver), log::kv("needed", wanted_max_deliver),
         log::kv("effect",
                 "JetStream counts every deferral (destination down or saturated) as a "
                 "delivery: a job deferred more than " +
                     std::to_string(std::max<int64_t>(0, settings.max_deliver - cfg.max_deliver)) +
                     " times is dead-lettered before delivery.give_up_after"),
         log::kv("fix", "nats consumer edit " + cfg.stream + " " + cfg.consumer +
                            " --max-deliver " + std::to_string(wanted_max_deliver) +
                            ", or delete the consumer and let route-delivery create it "
                            "(nats.max_deliver " +
                            std::to_string(cfg.max_deliver) +
                            " stays the number of real attempts)")});
  }
  if (settings.max_ack_pending > 0 && settings.max_ack_pending < max_in_flight) {
    log::warn(
        "consumer_max_ack_pending_low",
        {log::kv("max_ack_pending", settings.max_ack_pending),
         log::kv("max_in_flight", max_in_flight),
         log::kv("effect", "the server caps unacknowledged jobs below delivery.max_in_flight")});
  }
  return settings;
}

void NatsClient::flush(int64_t timeout_ms) {
  if (nc_ != nullptr) natsConnection_FlushTimeout(nc_, timeout_ms);
}

}  // namespace rd
