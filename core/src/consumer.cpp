#include "consumer.hpp"

#include <time.h>

#include <algorithm>
#include <array>
#include <chrono>

#include "duration.hpp"
#include "logging.hpp"

namespace rd {
namespace {
constexpr size_t kMaxReasonChars = 2000;
// Settled messages are destroyed in groups of this many (see Consumer::release).
constexpr size_t kSpentBatch = 64;

int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

int64_t wall_ms() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

// Truncates at a UTF-8 character boundary.
std::string truncate_reason(const char* text, size_t len) {
  std::string s(text != nullptr ? text : "", text != nullptr ? len : 0);
  if (s.size() <= kMaxReasonChars) return s;
  size_t cut = kMaxReasonChars;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  s.resize(cut);
  return s;
}

Outcome label_for(int32_t outcome) {
  switch (outcome) {
    case RD_OUTCOME_OK:
      return Outcome::ok;
    case RD_OUTCOME_RETRY:
      return Outcome::retry;
    default:
      return Outcome::permanent;
  }
}

// Rate-limits a repeated log line to one per interval.
class Throttle {
 public:
  explicit Throttle(int64_t interval_ms) : interval_ns_(interval_ms * 1'000'000) {}
  bool allow() {
    const int64_t now = now_ns();
    int64_t last = last_.load(std::memory_order_relaxed);
    if (now - last < interval_ns_) return false;
    return last_.compare_exchange_strong(last, now);
  }

 private:
  int64_t interval_ns_;
  std::atomic<int64_t> last_{INT64_MIN / 2};
};
Throttle g_fetch_error_log(5000);
Throttle g_duplicate_log(1000);
Throttle g_settle_error_log(5000);
}  // namespace

Consumer::Consumer(const Config& config, NatsClient& nats, PluginSet& plugins, DeadLetterSink& sink,
                   Metrics& metrics)
    : config_(config),
      nats_(nats),
      plugins_(plugins),
      sink_(sink),
      metrics_(metrics),
      retry_(config.nats.backoff_ms, config.nats.max_backoff_ms) {
  const auto n = static_cast<uint32_t>(config.delivery.max_in_flight);
  slots_.reserve(n);
  free_.reserve(n);
  spent_.reserve(kSpentBatch);
  spent_taken_.reserve(kSpentBatch);
  fetch_low_water_ =
      std::max<size_t>(1, std::min<size_t>(static_cast<size_t>(config.nats.fetch_batch), n / 4));
  for (uint32_t i = 0; i < n; ++i) {
    slots_.push_back(std::make_unique<Delivery>());
    free_.push_back(n - 1 - i);
  }
}

Consumer::~Consumer() {
  shutdown(0);
  destroy_spent();
  for (natsSubscription* sub : subs_) {
    if (sub != nullptr) natsSubscription_Destroy(sub);
  }
}

bool Consumer::subscribe(size_t index) {
  natsSubscription*& sub = subs_[index];
  if (sub != nullptr) {
    natsSubscription_Destroy(sub);
    sub = nullptr;
  }
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = config_.nats.stream.c_str();
  so.Consumer = config_.nats.consumer.c_str();  // bind to the existing durable
  jsErrCode err = static_cast<jsErrCode>(0);
  const std::string subject = config_.nats.subjects.size() == 1 ? config_.nats.subjects[0] : "";
  natsStatus s = js_PullSubscribe(&sub, nats_.js(), subject.c_str(), config_.nats.consumer.c_str(),
                                  nullptr, &so, &err);
  if (s != NATS_OK) {
    log::error("consumer_bind_failed",
               {log::kv("error", nats_error_text("pull subscribe", s, err))});
    sub = nullptr;
    return false;
  }
  return true;
}

void Consumer::start(const ConsumerSettings& settings) {
  settings_ = settings;
  max_deliver_.store(settings.max_deliver);
  const bool two_fetchers =
      static_cast<size_t>(config_.delivery.max_in_flight) >= 2 * fetch_low_water_ &&
      fetch_low_water_ >= 16;
  subs_.assign(two_fetchers ? 2 : 1, nullptr);
  for (size_t i = 0; i < subs_.size(); ++i) {
    if (!subscribe(i))
      throw NatsError("cannot bind to durable consumer '" + config_.nats.consumer + "'");
  }
  bound_ = true;
  log::info("consumer_bound",
            {log::kv("stream", config_.nats.stream), log::kv("consumer", config_.nats.consumer),
             log::kv("max_deliver", settings_.max_deliver),
             log::kv("ack_wait", format_duration_ms(settings_.ack_wait_ms)),
             log::kv("max_in_flight", config_.delivery.max_in_flight)});
  for (int i = 0; i < config_.delivery.workers; ++i)
    dl_threads_.emplace_back([this] { dead_letter_loop(); });
  watchdog_thread_ = std::thread([this] { watchdog_loop(); });
  for (size_t i = 0; i < subs_.size(); ++i)
    fetch_threads_.emplace_back([this, i] { fetch_loop(i); });
}

// ---- fetch -> parse -> dispatch ----

void Consumer::fetch_loop(size_t index) {
  int consecutive_errors = 0;
  const int batch_cap = config_.nats.fetch_batch;
  while (!stopping_.load(std::memory_order_relaxed)) {
    destroy_spent();  // what settled since the last batch
    int available;
    {
      std::unique_lock<std::mutex> lock(mu_);
      // Wait for a worthwhile batch of free slots (or 200 ms): fetching each slot as it frees
      // up costs a pull round trip, and a wake-up of this thread, per job.
      slot_freed_.wait_for(lock, std::chrono::milliseconds(200), [&] {
        return free_.size() - reserved_ >= fetch_low_water_ ||
               stopping_.load(std::memory_order_relaxed);
      });
      available = static_cast<int>(free_.size() - reserved_);
    }
    if (stopping_) break;
    if (available == 0) continue;
    if (!nats_.connected()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    natsMsgList list{};
    jsErrCode err = static_cast<jsErrCode>(0);
    int batch;
    {
      // Reserved slots stay free until dispatch() takes them for the fetched jobs.
      std::lock_guard<std::mutex> lock(mu_);
      batch = std::min(batch_cap, static_cast<int>(free_.size() - reserved_));
      if (batch <= 0) continue;  // the other fetch thread took them
      reserved_ += static_cast<size_t>(batch);
    }
    natsStatus s = natsSubscription_Fetch(&list, subs_[index], batch, 500, &err);
    const int got = s == NATS_OK ? list.Count : 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      reserved_ -= static_cast<size_t>(batch - got);
    }
    if (s == NATS_OK) {
      consecutive_errors = 0;
      {
        // One fetch thread hands its batch out while the other's pull is on the wire; the
        // lock keeps xDeliver calls serialised, as the SDK promises.
        std::lock_guard<std::mutex> lock(dispatch_mu_);
        for (int i = 0; i < list.Count; ++i) {
          natsMsg* m = list.Msgs[i];
          list.Msgs[i] = nullptr;  // ownership moves to the in-flight table
          if (!stopping_.load(std::memory_order_relaxed)) {
            dispatch(m);
            continue;
          }
          // Shutting down: a job fetched but not handed to a plugin goes straight back.
          natsMsg_Nak(m, nullptr);
          natsMsg_Destroy(m);
          returned_undispatched_.fetch_add(1);
          std::lock_guard<std::mutex> table_lock(mu_);
          --reserved_;
        }
      }
      natsMsgList_Destroy(&list);
      continue;
    }
    natsMsgList_Destroy(&list);
    if (s == NATS_TIMEOUT) {
      consecutive_errors = 0;
      continue;
    }
    ++consecutive_errors;
    if (g_fetch_error_log.allow()) {
      log::warn("fetch_failed", {log::kv("error", nats_error_text("fetch", s, err))});
    }
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::min(100 * consecutive_errors, 2000)));
    if (consecutive_errors >= 5 && nats_.connected()) {
      // The consumer may have been deleted or recreated: set it up again and rebind.
      try {
        std::lock_guard<std::mutex> rebind_lock(rebind_mu_);
        if (config_.nats.create) {
          nats_.ensure_stream(config_.nats.stream, config_.nats.subjects, true,
                              config_.nats.replicas);
        }
        // Other threads read max_deliver_ meanwhile; settings_ keeps the values of start().
        max_deliver_.store(
            nats_.ensure_consumer(config_.nats, config_.delivery.max_in_flight).max_deliver);
        if (subscribe(index)) {
          log::info("consumer_rebound", {log::kv("consumer", config_.nats.consumer)});
          consecutive_errors = 0;
        }
      } catch (const std::exception& e) {
        if (g_fetch_error_log.allow())
          log::warn("consumer_rebind_failed", {log::kv("error", e.what())});
      }
    }
  }
}

void Consumer::dispatch(natsMsg* msg) {
  Delivery* d;
  const int64_t start = now_ns();
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Each fetched job holds a reservation on a free slot, so this never runs dry.
    --reserved_;
    const uint32_t index = free_.back();
    free_.pop_back();
    d = slots_[index].get();
    d->id = (static_cast<uint64_t>(++generation_) << 32) | index;
    d->state = State::delivering;
    d->msg = msg;
    // The watchdog reads these under mu_ as soon as the slot is delivering.
    d->started_ns = start;
    d->progress_ns = start;
    d->deadline_ns = start + config_.delivery.timeout_ms * 1'000'000;
  }
  metrics_.in_flight.fetch_add(1, std::memory_order_relaxed);
  d->plugin = nullptr;
  d->dest_index = metrics_.unknown_destination();
  d->reason.clear();

  jsMsgMetaData* meta = nullptr;
  if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
    d->attempt = static_cast<uint32_t>(meta->NumDelivered);
    d->stream_seq = meta->Sequence.Stream;
    jsMsgMetaData_Destroy(meta);
  } else {
    d->attempt = 1;
    d->stream_seq = 0;
  }
  d->subject.assign(natsMsg_GetSubject(msg));
  d->message_id.assign(config_.nats.stream);
  d->message_id += ':';
  d->message_id += std::to_string(d->stream_seq);

  const std::string_view data(natsMsg_GetData(msg),
                              static_cast<size_t>(natsMsg_GetDataLength(msg)));
  parse_job(data, subject_tenant(d->subject, config_.nats.subject_prefix),
            static_cast<size_t>(config_.delivery.max_job_bytes), d->parse);
  if (!d->parse.ok) {
    reject(*d, "invalid job: " + d->parse.error);
    return;
  }
  const Job& job = d->parse.job;
  ActivePlugin* plugin = plugins_.find(job.destination_type);
  if (plugin == nullptr || plugin->instance == nullptr) {
    reject(*d, "no plugin serves destination_type '" + job.destination_type + "' (loaded: " +
                   plugins_.destination_types() + "); add its plugin to the plugin folder");
    return;
  }
  d->plugin = plugin;
  d->dest_index = plugin->metrics_index;
  rd_job& j = d->job;
  j.struct_size = sizeof(rd_job);
  j.attempt = d->attempt;
  const int64_t max_deliver = max_deliver_.load(std::memory_order_relaxed);
  j.max_attempts = max_deliver > 0 ? static_cast<uint32_t>(max_deliver) : 0;
  j.route_id = job.route_id;
  j.timeout_ms = config_.delivery.timeout_ms;
  j.tenant_id = job.tenant_id.c_str();
  j.tenant_id_len = job.tenant_id.size();
  j.topic = job.topic.c_str();
  j.topic_len = job.topic.size();
  j.payload_json = job.payload_json.c_str();
  j.payload_json_len = job.payload_json.size();
  j.destination_config_json = job.destination_config_json.c_str();
  j.destination_config_json_len = job.destination_config_json.size();
  j.message_id = d->message_id.c_str();
  j.message_id_len = d->message_id.size();
  const uint64_t id = d->id;
  try {
    plugin->info.descriptor->xDeliver(plugin->instance, id, &d->job);
  } catch (...) {
    // A C plugin cannot throw; a C++ one that forgot its guard is caught here, never crossing
    // further.
    static const char kReason[] = "plugin threw an exception from xDeliver";
    rd_result r{sizeof(rd_result), RD_OUTCOME_PERMANENT, -1, kReason, sizeof kReason - 1};
    on_complete(id, &r);
  }
}

// A job no plugin may see (invalid, or no plugin for its type): straight to the dead-letter queue.
void Consumer::reject(Delivery& d, std::string reason) {
  d.reason = std::move(reason);
  metrics_.destination(d.dest_index).outcomes[static_cast<size_t>(Outcome::invalid)]++;
  metrics_.failed++;
  {
    std::lock_guard<std::mutex> lock(mu_);
    d.state = State::settling;
  }
  std::lock_guard<std::mutex> lock(dl_mu_);
  dl_queue_.push_back(&d);
  dl_cv_.notify_one();
}

// ---- completion and settlement ----

Consumer::Delivery* Consumer::slot_for(uint64_t id) {
  const uint32_t index = static_cast<uint32_t>(id & 0xffffffffu);
  if (index >= slots_.size()) return nullptr;
  Delivery* d = slots_[index].get();
  return d->id == id && d->state == State::delivering ? d : nullptr;
}

void Consumer::on_complete(uint64_t delivery_id, const rd_result* result) noexcept {
  try {
    Delivery* d;
    {
      std::lock_guard<std::mutex> lock(mu_);
      d = slot_for(delivery_id);
      if (d != nullptr) d->state = State::settling;
    }
    if (d == nullptr) {
      {
        // A late completion of a timed-out delivery: its data may be freed now (once settled).
        std::lock_guard<std::mutex> lock(mu_);
        auto it = abandoned_.find(delivery_id);
        if (it != abandoned_.end() && it->second->state == State::free) abandoned_.erase(it);
      }
      metrics_.duplicate_completions++;
      if (g_duplicate_log.allow()) {
        log::error("plugin_completion_ignored",
                   {log::kv("delivery_id", delivery_id),
                    log::kv("reason",
                            "completed twice, after its timeout, or with an unknown id; "
                            "plugins must call complete exactly once per delivery")});
      }
      return;
    }
    const bool has_reason =
        RD_HAS_FIELD(result, rd_result, reason_len) && result->reason != nullptr;
    settle(*d, result->outcome,
           RD_HAS_FIELD(result, rd_result, retry_after_ms) ? result->retry_after_ms : -1,
           has_reason ? result->reason : nullptr, has_reason ? result->reason_len : 0,
           label_for(result->outcome));
  } catch (...) {
    // Nothing may escape into plugin code.
  }
}

void Consumer::settle(Delivery& d, int32_t outcome, int64_t retry_after_ms, const char* reason,
                      size_t reason_len, Outcome label) {
  auto& dest = metrics_.destination(d.dest_index);
  dest.outcomes[static_cast<size_t>(label)].fetch_add(1, std::memory_order_relaxed);
  dest.duration.observe(static_cast<double>(now_ns() - d.started_ns) / 1e9);
  switch (decide(outcome, d.attempt, max_deliver_.load(std::memory_order_relaxed))) {
    case Settlement::Ack: {
      const natsStatus s = natsMsg_Ack(d.msg, nullptr);
      if (s != NATS_OK && g_settle_error_log.allow()) {
        log::warn("ack_failed",
                  {log::kv("message_id", d.message_id), log::kv("error", natsStatus_GetText(s)),
                   log::kv("effect", "the job will be redelivered after ack_wait")});
      }
      metrics_.delivered.fetch_add(1, std::memory_order_relaxed);
      release(d);
      return;
    }
    case Settlement::Nak: {
      const int64_t delay = retry_.delay_ms(d.attempt, retry_after_ms);
      const natsStatus s = natsMsg_NakWithDelay(d.msg, delay, nullptr);
      if (s != NATS_OK && g_settle_error_log.allow()) {
        log::warn("nak_failed",
                  {log::kv("message_id", d.message_id), log::kv("error", natsStatus_GetText(s)),
                   log::kv("effect", "the job will be redelivered after ack_wait")});
      }
      metrics_.failed.fetch_add(1, std::memory_order_relaxed);
      metrics_.retried.fetch_add(1, std::memory_order_relaxed);
      if (log::enabled(log::Level::debug)) {
        log::debug("delivery_retry", {log::kv("message_id", d.message_id),
                                      log::kv("attempt", d.attempt), log::kv("delay_ms", delay),
                                      log::kv("reason", truncate_reason(reason, reason_len))});
      }
      release(d);
      return;
    }
    case Settlement::DeadLetter: {
      metrics_.failed.fetch_add(1, std::memory_order_relaxed);
      std::string why = truncate_reason(reason, reason_len);
      if (why.empty()) why = outcome == RD_OUTCOME_RETRY ? "retry requested" : "permanent failure";
      if (outcome == RD_OUTCOME_RETRY) {
        d.reason = "gave up after " + std::to_string(d.attempt) + " attempts: " + why;
      } else if (outcome == RD_OUTCOME_PERMANENT) {
        d.reason = why;
      } else {
        d.reason = "plugin returned unknown outcome " + std::to_string(outcome) + ": " + why;
      }
      d.reason = truncate_reason(d.reason.data(), d.reason.size());
      {
        std::lock_guard<std::mutex> lock(dl_mu_);
        if (!dl_stop_) {
          dl_queue_.push_back(&d);
          dl_cv_.notify_one();
          return;
        }
      }
      natsMsg_Nak(d.msg, nullptr);  // shutting down: JetStream redelivers it to another instance
      release(d);
      return;
    }
  }
}

// nats.c hands every destroyed message to its garbage-collector thread and wakes that thread
// whenever its list was empty, so destroying each message as it settles costs a futex wake-up and
// a context switch per job. Settled messages are destroyed in groups instead: here once
// kSpentBatch have gathered, and by the fetch thread before each fetch.
void Consumer::release(Delivery& d) {
  std::array<natsMsg*, kSpentBatch> group;
  size_t n = 0;
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    spent_.push_back(d.msg);
    d.msg = nullptr;
    d.state = State::free;
    d.plugin = nullptr;
    const uint32_t index = static_cast<uint32_t>(d.id & 0xffffffffu);
    slots_[index]->state = State::free;  // the slot's own object, when `d` was parked as abandoned
    free_.push_back(index);
    wake = free_.size() - reserved_ == fetch_low_water_;  // the fetch thread waits for this many
    if (spent_.size() >= kSpentBatch) {
      n = spent_.size();
      std::copy(spent_.begin(), spent_.end(), group.begin());
      spent_.clear();
    }
  }
  for (size_t i = 0; i < n; ++i) natsMsg_Destroy(group[i]);
  metrics_.in_flight.fetch_sub(1, std::memory_order_relaxed);
  if (wake) slot_freed_.notify_one();
}

void Consumer::destroy_spent() {
  std::lock_guard<std::mutex> taken_lock(spent_taken_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (spent_.empty()) return;
    spent_taken_.swap(spent_);
  }
  for (natsMsg* m : spent_taken_) natsMsg_Destroy(m);
  spent_taken_.clear();
}

// ---- dead-letter ----

DeadLetterRecord Consumer::make_record(const Delivery& d) const {
  DeadLetterRecord r;
  const Job& job = d.parse.job;
  r.tenant_id = job.tenant_id;
  if (job.has_route_id) r.route_id = job.route_id;
  r.topic = job.topic;
  r.payload_json = job.payload_json;
  r.destination_type = job.destination_type;
  r.destination_config_json = job.destination_config_json;
  r.error = d.reason;
  r.attempts = d.attempt;
  r.message_id = d.message_id;
  r.subject = d.subject;
  r.original.assign(natsMsg_GetData(d.msg), static_cast<size_t>(natsMsg_GetDataLength(d.msg)));
  r.job_valid = d.parse.ok;
  r.failed_at_ms = wall_ms();
  return r;
}

void Consumer::dead_letter_one(Delivery& d) {
  try {
    sink_.write(make_record(d));
  } catch (const std::exception& e) {
    metrics_.dead_letter_errors++;
    const int64_t max_deliver = max_deliver_.load(std::memory_order_relaxed);
    const bool last = max_deliver > 0 && static_cast<int64_t>(d.attempt) >= max_deliver;
    const int64_t delay = retry_.delay_ms(d.attempt, 1000);
    log::error("dead_letter_failed",
               {log::kv("sink", sink_.name()), log::kv("message_id", d.message_id),
                log::kv("error", e.what()),
                log::kv("action", last ? "holding the job and retrying the dead-letter write"
                                       : "nak'd with delay; the job is not lost")});
    if (!last) {
      // Another attempt remains: let JetStream redeliver it later (it will fail and come back
      // here).
      natsMsg_NakWithDelay(d.msg, delay, nullptr);
      release(d);
      return;
    }
    // JetStream will not redeliver past max_deliver, so keep the job (the watchdog keeps it alive
    // with in-progress acks) and retry the write ourselves.
    d.retry_at_ns = now_ns() + delay * 1'000'000;
    return;
  }
  const natsStatus s = natsMsg_Term(d.msg, nullptr);
  if (s != NATS_OK && g_settle_error_log.allow()) {
    log::warn("term_failed",
              {log::kv("message_id", d.message_id), log::kv("error", natsStatus_GetText(s)),
               log::kv("effect", "redelivered later; the dead-letter record is de-duplicated")});
  }
  metrics_.dead_lettered.fetch_add(1, std::memory_order_relaxed);
  metrics_.destination(d.dest_index).dead_lettered.fetch_add(1, std::memory_order_relaxed);
  log::warn("dead_lettered",
            {log::kv("message_id", d.message_id), log::kv("tenant_id", d.parse.job.tenant_id),
             log::kv("destination_type", d.parse.job.destination_type),
             log::kv("attempts", d.attempt), log::kv("reason", d.reason)});
  release(d);
}

void Consumer::dead_letter_loop() {
  std::vector<Delivery*> held;  // writes that failed on the last attempt, retried in time
  while (true) {
    Delivery* d = nullptr;
    {
      std::unique_lock<std::mutex> lock(dl_mu_);
      dl_cv_.wait_for(lock, std::chrono::milliseconds(held.empty() ? 1000 : 100),
                      [&] { return dl_stop_ || !dl_queue_.empty(); });
      if (dl_stop_) break;
      if (!dl_queue_.empty()) {
        d = dl_queue_.front();
        dl_queue_.pop_front();
      }
    }
    if (d != nullptr) {
      d->retry_at_ns = 0;
      dead_letter_one(*d);
      if (d->retry_at_ns != 0) held.push_back(d);
    }
    const int64_t now = now_ns();
    for (size_t i = 0; i < held.size();) {
      if (held[i]->retry_at_ns > now || stopping_) {
        ++i;
        continue;
      }
      Delivery* h = held[i];
      h->retry_at_ns = 0;
      dead_letter_one(*h);
      if (h->retry_at_ns == 0) {
        held.erase(held.begin() + static_cast<long>(i));
      } else {
        ++i;
      }
    }
  }
  // Shutting down: jobs whose dead-letter write never succeeded go back to JetStream.
  for (Delivery* h : held) {
    natsMsg_Nak(h->msg, nullptr);
    release(*h);
  }
}

// ---- watchdog: in-progress acks and plugin timeouts ----

void Consumer::watchdog_loop() {
  const int64_t ack_wait_ns = settings_.ack_wait_ms * 1'000'000;
  const int64_t progress_every_ns = std::max<int64_t>(ack_wait_ns / 3, 200'000'000);
  std::vector<uint64_t> timed_out;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(wd_mu_);
      wd_cv_.wait_for(lock, std::chrono::milliseconds(200), [&] { return stopping_.load(); });
    }
    const bool stopping = stopping_.load();
    const int64_t now = now_ns();
    timed_out.clear();
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& slot : slots_) {
        Delivery& d = *slot;
        if (d.state == State::free || d.msg == nullptr) continue;
        if (d.state == State::delivering && now > d.deadline_ns) {
          timed_out.push_back(d.id);
          continue;
        }
        if (now - d.progress_ns > progress_every_ns) {
          natsMsg_InProgress(d.msg,
                             nullptr);  // keeps JetStream from redelivering a job still in hand
          d.progress_ns = now;
        }
      }
    }
    for (uint64_t id : timed_out) {
      Delivery* d;
      std::string plugin;
      {
        std::lock_guard<std::mutex> lock(mu_);
        d = slot_for(id);
        if (d == nullptr) continue;  // completed meanwhile
        d->state = State::settling;
        plugin = d->plugin != nullptr ? d->plugin->info.name : "?";
        // The plugin may still read this job's data: park it and give the slot a fresh object.
        auto& slot = slots_[static_cast<uint32_t>(id & 0xffffffffu)];
        abandoned_[id] = std::move(slot);
        slot = std::make_unique<Delivery>();
        slot->id = id;
        slot->state = State::settling;  // not free until the parked delivery is released
        constexpr size_t kMaxAbandoned = 100'000;
        if (abandoned_.size() > kMaxAbandoned) {
          // A plugin that never completes anything; bound memory (its data for the oldest goes).
          for (auto it = abandoned_.begin();
               it != abandoned_.end() && abandoned_.size() > kMaxAbandoned;) {
            it = it->second->state == State::free ? abandoned_.erase(it) : std::next(it);
          }
        }
      }
      const std::string reason = "plugin '" + plugin +
                                 "' did not complete within delivery.timeout (" +
                                 format_duration_ms(config_.delivery.timeout_ms) + ")";
      log::error("plugin_timeout",
                 {log::kv("plugin", plugin), log::kv("message_id", d->message_id)});
      settle(*d, RD_OUTCOME_RETRY, -1, reason.data(), reason.size(), Outcome::timeout);
    }
    if (stopping) break;
  }
}

// ---- shutdown ----

void Consumer::shutdown(int64_t grace_ms) {
  if (stopping_.exchange(true)) {
    return;
  }
  bound_ = false;
  slot_freed_.notify_all();
  for (auto& t : fetch_threads_) {
    if (t.joinable()) t.join();
  }
  // Let deliveries in flight finish within the grace period.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(grace_ms);
  while (metrics_.in_flight.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  {
    std::lock_guard<std::mutex> lock(wd_mu_);
    wd_cv_.notify_all();
  }
  if (watchdog_thread_.joinable()) watchdog_thread_.join();
  {
    std::lock_guard<std::mutex> lock(dl_mu_);
    dl_stop_ = true;
    dl_cv_.notify_all();
  }
  for (auto& t : dl_threads_) {
    if (t.joinable()) t.join();
  }
  dl_threads_.clear();
  // Whatever is left goes back without delay: deliveries still running (late completions are
  // ignored from now on) and jobs still queued for dead-lettering. Settlements already under way
  // on other threads finish and release their own slots.
  std::vector<Delivery*> rest;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& slot : slots_) {
      if (slot->state == State::delivering) {
        slot->state = State::settling;
        rest.push_back(slot.get());
      }
    }
  }
  {
    std::lock_guard<std::mutex> lock(dl_mu_);
    rest.insert(rest.end(), dl_queue_.begin(), dl_queue_.end());
    dl_queue_.clear();
  }
  for (Delivery* d : rest) {
    natsMsg_Nak(d->msg, nullptr);
    release(*d);
  }
  destroy_spent();
  const size_t handed_back = rest.size() + returned_undispatched_;
  if (handed_back > 0) log::info("shutdown_nakked", {log::kv("jobs", handed_back)});
}

}  // namespace rd
