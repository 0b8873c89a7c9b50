// Placing a fetched job: parse it, find its plugin and destination, admit it (circuit breaker,
// fairness share, waiting area) and hand it to the plugin (see consumer.hpp).
#include <algorithm>
#include <charconv>
#include <chrono>
#include <optional>
#include <random>
#include <thread>

#include "ack_subject.hpp"
#include "consumer.hpp"
#include "consumer_internal.hpp"
#include "duration.hpp"
#include "logging.hpp"

namespace rd {
namespace {
Throttle g_attempt_read_log(5000);
constexpr size_t kMaxKeyBytes = 256;
}  // namespace

// The key is built in a buffer the calling thread keeps, so finding a job's destination
// allocates nothing once the thread has seen its longest key; the view is valid until the thread's
// next call.
std::string_view Consumer::destination_key(const ActivePlugin& plugin, const Delivery& d,
                                           bool& named) const {
  thread_local std::string key;
  named = false;
  key.assign(plugin.info.name);
  key += '|';
  const rd_plugin_descriptor* desc = plugin.info.descriptor;
  if (RD_HAS_FIELD(desc, rd_plugin_descriptor, xDestination) && desc->xDestination != nullptr) {
    char buf[kMaxKeyBytes];
    size_t n = 0;
    crash::PluginScope scope(plugin.index, d.stream_seq);
    try {
      // Under the lane's call_mu, like the xDeliver that follows: the instance cannot change.
      n = desc->xDestination(plugin.instance.load(std::memory_order_relaxed), &d.job, buf,
                             sizeof buf);
    } catch (...) {
      n = 0;  // a C++ plugin without its guard; the route stands in
    }
    if (n > 0) {
      key.append(buf, std::min(n, sizeof buf));
      named = true;
      return key;
    }
  }
  const Job& job = d.parse.job;
  key += job.tenant_id;
  key += "/route ";
  if (job.has_route_id) {
    char digits[24];
    const char* end = std::to_chars(digits, digits + sizeof digits, job.route_id).ptr;
    key.append(digits, static_cast<size_t>(end - digits));
  } else {
    key += '?';
  }
  return key;
}

// The slot was taken off the free list by the fetch thread (reserved); until activate() it is
// this thread's alone and still `free` to everyone else, so nothing here takes a lock.
Consumer::Delivery* Consumer::owned_slot(uint32_t index) {
  // Only the element of a slot in use may be replaced (the watchdog parks timed-out deliveries),
  // and this one is not in use: reading it needs no lock. (The free list orders this read after
  // the release that freed the slot.)
  return slots_[index].get();
}

void Consumer::activate(Delivery& d, bool unreserve) {
  if (d.activated) return;
  {
    Gate& g = gates_[d.slot];
    std::lock_guard<std::mutex> lock(g.mu);
    d.id = (static_cast<uint64_t>(++g.generation) << 32) | d.slot;
    d.state = State::settling;  // owned by this thread until it is waiting or delivering
    d.active = true;
  }
  d.activated = true;
  metrics_.in_flight.store(active_.fetch_add(1) + 1, std::memory_order_relaxed);
  if (unreserve) reserved_.fetch_sub(1);
}

bool Consumer::take_in_flight() {
  const int max_in_flight = config_.delivery.max_in_flight;
  int active = active_.load();
  while (active < max_in_flight) {
    if (active_.compare_exchange_weak(active, active + 1)) return true;
  }
  return false;
}

void Consumer::place(natsMsg* msg, uint32_t slot, bool& delivered, bool& overflowed) {
  const int64_t start = now_ns();
  Delivery* d = owned_slot(slot);
  d->slot = slot;
  d->activated = false;
  d->msg = msg;
  d->started_ns = start;
  d->sent_ns = 0;
  d->progress_ns = start;
  d->plugin = nullptr;
  d->dest = nullptr;
  d->shard = nullptr;
  d->probe = false;
  d->withdrawn = false;
  d->taken_back = false;
  d->dest_index = metrics_.unknown_destination();
  d->reason.clear();
  d->failed_before = 0;
  d->failed_known = false;

  // Read from the reply subject in place (ack_subject.hpp); nats.c's reading, which allocates,
  // only for a form this does not know.
  const char* reply = natsMsg_GetReply(msg);
  const std::optional<AckMetadata> ack = reply != nullptr ? parse_ack_subject(reply) : std::nullopt;
  jsMsgMetaData* meta = nullptr;
  if (ack) {
    d->deliveries = static_cast<uint32_t>(ack->delivered);
    d->stream_seq = ack->stream_seq;
    d->published_ms = ack->timestamp_ns / 1'000'000;
  } else if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
    d->deliveries = static_cast<uint32_t>(meta->NumDelivered);
    d->stream_seq = meta->Sequence.Stream;
    d->published_ms = meta->Timestamp / 1'000'000;
    jsMsgMetaData_Destroy(meta);
  } else {
    d->deliveries = 1;
    d->stream_seq = 0;
    d->published_ms = wall_ms();
  }
  d->failed_known = d->deliveries <= 1;  // a first delivery has no failed attempts
  d->subject.assign(natsMsg_GetSubject(msg));
  d->message_id.assign(config_.nats.stream);
  d->message_id += ':';
  d->message_id += std::to_string(d->stream_seq);

  const std::string_view data(natsMsg_GetData(msg),
                              static_cast<size_t>(natsMsg_GetDataLength(msg)));
  parse_job(data, subject_tenant(d->subject, config_.nats.subject_prefix),
            static_cast<size_t>(limits_.max_job_bytes.load(std::memory_order_relaxed)), d->parse);
  if (!d->parse.ok) {
    activate(*d);
    reject(*d, "invalid job: " + d->parse.error);
    delivered = true;
    return;
  }
  if (!d->failed_known) {
    // A redelivered job: how many of its earlier deliveries were real attempts that failed.
    std::optional<AttemptStore::Entry> entry =
        attempts_ != nullptr ? attempts_->read(d->stream_seq) : std::nullopt;
    if (!entry) {
      // No store: JetStream's count is an upper bound (deferrals and crashes count too).
      entry = AttemptStore::Entry{d->deliveries - 1, false, {}};
      if (attempts_ != nullptr && g_attempt_read_log.allow()) {
        log::warn("attempt_count_unreadable",
                  {log::kv("bucket", attempts_->bucket()), log::kv("message_id", d->message_id),
                   log::kv("effect", "counting JetStream's deliveries as attempts")});
      }
    }
    d->failed_before = entry->failed;
    d->failed_known = true;
    if (entry->dead_letter) {
      // Settled as a dead letter before, but its record could not be written: only that is left.
      activate(*d);
      to_dead_letter(*d, entry->reason, entry->failed);
      delivered = true;
      return;
    }
  }
  const Job& job = d->parse.job;
  ActivePlugin* plugin = plugins_.find(job.destination_type);
  if (plugin == nullptr || plugin->instance.load(std::memory_order_acquire) == nullptr) {
    activate(*d);
    reject(*d, "no plugin serves destination_type '" + job.destination_type + "' (loaded: " +
                   plugins_.destination_types() + "); add its plugin to the plugin folder");
    delivered = true;
    return;
  }
  d->plugin = plugin;
  d->dest_index = plugin->metrics_index;
  rd_job& j = d->job;
  j.struct_size = sizeof(rd_job);
  j.attempt = 1;
  j.max_attempts = max_attempts_ > 0 ? static_cast<uint32_t>(max_attempts_) : 0;
  j.route_id = job.route_id;
  j.timeout_ms = limits_.timeout_ms.load(std::memory_order_relaxed);
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
  hand_to_plugin(*d, /*admitted=*/false, start, delivered, overflowed);
}

void Consumer::hand_to_plugin(Delivery& d, bool admitted, int64_t now, bool& delivered,
                              bool& overflowed) {
  Lane& lane = *lanes_[static_cast<size_t>(d.plugin->index)];
  // Another fast thread inside the plugin is waited for (briefly); a slow one is not.
  if (lane.queued.load(std::memory_order_relaxed) == 0 &&
      lane.slow_until_ns.load(std::memory_order_relaxed) < now && enter_briefly(lane)) {
    std::lock_guard<std::mutex> call(lane.call_mu, std::adopt_lock);
    call_plugin(lane, d, admitted, now, delivered, overflowed);
    return;
  }
  delivered = true;  // a job for a plugin: worth the fetch whatever happens to it
  // Visible from here: the watchdog keeps it alive in the lane, shutdown hands it back.
  activate(d);
  {
    std::lock_guard<std::mutex> lock(lane.q_mu);
    // Bounded: a plugin that blocks for good leaves at least a share of the in-flight slots to
    // the others; jobs beyond that go back without an attempt spent. (Jobs from the waiting area
    // are admitted to their destination already and are bounded by the waiting area.)
    if (admitted ||
        lane.queue.size() < static_cast<size_t>(lane_limit_.load(std::memory_order_relaxed))) {
      lane.queue.push_back({&d, admitted});
      lane.queued.store(lane.queue.size(), std::memory_order_relaxed);
      lane.q_cv.notify_one();
      return;
    }
  }
  defer(d, Deferral::plugin_busy, -1, "");
}

// try_lock, retried (yielding, then sleeping 20 µs) while the plugin is not slow, for up to the
// slow-call threshold. Not std::timed_mutex: GCC 12's ThreadSanitizer does not see its
// pthread_mutex_clocklock and reports every unlock as one of an unlocked mutex.
bool Consumer::enter_briefly(Lane& lane) {
  if (lane.call_mu.try_lock()) return true;
  const int64_t until = now_ns() + kSlowCallNs;
  for (int i = 0;; ++i) {
    if (i < 16) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
    if (lane.call_mu.try_lock()) return true;
    const int64_t now = now_ns();
    if (now >= until || lane.slow_until_ns.load(std::memory_order_relaxed) >= now) return false;
  }
}

void Consumer::call_plugin(Lane& lane, Delivery& d, bool admitted, int64_t start, bool& delivered,
                           bool& overflowed) {
  const uint64_t seq = d.stream_seq;
  lane.call_seq.store(seq, std::memory_order_relaxed);
  lane.call_reported.store(false, std::memory_order_relaxed);
  lane.call_started_ns.store(start, std::memory_order_release);
  if (admitted) {
    deliver(d, start);
  } else {
    admit(d, start, delivered, overflowed);
  }
  // `d` may be settled and reused from here on.
  const int64_t took = now_ns() - start;
  lane.call_started_ns.store(0, std::memory_order_release);
  if (took > kSlowCallNs) {
    lane.slow_until_ns.store(now_ns() + kSlowLaneNs, std::memory_order_relaxed);
    report_slow_call(lane, took, seq, false);
  }
}

void Consumer::report_slow_call(Lane& lane, int64_t took_ns, uint64_t seq, bool still_running) {
  lane.slow_calls.fetch_add(1, std::memory_order_relaxed);
  const int64_t now = now_ns();
  int64_t last = lane.last_slow_log_ns.load(std::memory_order_relaxed);
  if (now - last < 10'000'000'000 || !lane.last_slow_log_ns.compare_exchange_strong(last, now))
    return;  // one line per plugin per 10 s
  log::warn("plugin_deliver_slow",
            {log::kv("plugin", lane.plugin->info.name),
             log::kv(still_running ? "running_for_ms" : "took_ms", took_ns / 1'000'000),
             log::kv("message_id", config_.nats.stream + ":" + std::to_string(seq)),
             log::kv("slow_calls", lane.slow_calls.load(std::memory_order_relaxed)),
             log::kv("effect", "its jobs are handed over by its own thread for the next " +
                                   format_duration_ms(kSlowLaneNs / 1'000'000) +
                                   "; other plugins are not held up")});
}

void Consumer::lane_loop(Lane& lane) {
  crash::thread_init();
  t_host_thread = true;
  while (true) {
    Lane::Item item{};
    {
      std::unique_lock<std::mutex> lock(lane.q_mu);
      lane.q_cv.wait(lock, [&] { return lane.stop || !lane.queue.empty(); });
      if (lane.stop) return;  // shutdown() gives back what is left
      item = lane.queue.front();
      lane.queue.pop_front();
      lane.queued.store(lane.queue.size(), std::memory_order_relaxed);
    }
    bool delivered = false;
    bool overflowed = false;
    std::lock_guard<std::mutex> call(lane.call_mu);
    call_plugin(lane, *item.d, item.admitted, now_ns(), delivered, overflowed);
  }
}

// Destination, circuit breaker, fairness share; then to the plugin. Caller holds the plugin's
// lane call_mu (xDestination is a call into the plugin).
void Consumer::admit(Delivery& dr, int64_t start, bool& delivered, bool& overflowed) {
  Delivery* d = &dr;
  ActivePlugin* plugin = d->plugin;
  bool named_by_plugin = false;
  const std::string_view key = destination_key(*plugin, *d, named_by_plugin);

  enum class Verdict { send, hold, circuit_open, overflow } verdict;
  int64_t saturated_delay_ms = -1;
  // The direct path activates here, and leaves reserved_ once counted where the job rests.
  const bool reserved = !d->activated;
  activate(*d, /*unreserve=*/false);
  if (active_.load() > config_.delivery.max_in_flight) {
    // Fetched ahead (see fetch_allowed()): every in-flight slot is taken. It waits, not yet
    // admitted to its destination, for the waiting dispatcher to bring it here again.
    {
      std::lock_guard<std::mutex> lock(gates_[d->slot].mu);
      d->state = State::waiting;
      d->active = false;
      d->ahead = true;
    }
    metrics_.fetched_ahead.store(ahead_count_.fetch_add(1) + 1, std::memory_order_relaxed);
    metrics_.in_flight.store(active_.fetch_sub(1) - 1, std::memory_order_relaxed);
    if (reserved) reserved_.fetch_sub(1);
    ahead_queue_.push(d->id);  // room for two per slot: cannot be full
    // A slot freed meanwhile may have missed this job (it read ahead_count_ before it grew).
    if (active_.load() < config_.delivery.max_in_flight) signal_waiting();
    delivered = true;  // a job for a plugin: worth the fetch
    return;
  }
  {
    DestinationShard& shard = shard_for(key);
    MutexLock lock(shard.mu);
    Destination* dest = shard.table.get(key, start);
    dest->named_by_plugin = named_by_plugin;
    d->dest = dest;
    d->shard = &shard;
    verdict = Verdict::send;
    if (dest->breaker.open()) {
      if (dest->breaker.gate(start) == CircuitBreaker::Gate::probe) {
        d->probe = true;
      } else {
        verdict = Verdict::circuit_open;
      }
    } else if (over_share(*dest, 0) || !dest->waiting.empty()) {
      verdict = waiting_count_.load() < config_.delivery.max_waiting &&
                        dest->waiting.size() < static_cast<size_t>(waiting_per_destination_.load())
                    ? Verdict::hold
                    : Verdict::overflow;
    }
    switch (verdict) {
      case Verdict::send:
        ++dest->in_flight;
        mark_delivering(*d, start);
        break;
      case Verdict::hold: {
        std::lock_guard<std::mutex> gate(gates_[d->slot].mu);
        d->state = State::waiting;
        d->active = false;
      }
        dest->waiting.push_back(d->id);
        metrics_.waiting.store(waiting_count_.fetch_add(1) + 1, std::memory_order_relaxed);
        metrics_.in_flight.store(active_.fetch_sub(1) - 1, std::memory_order_relaxed);
        break;
      case Verdict::overflow: {
        // Back when the destination has drained what it holds, spread over half to one and a
        // half times that, so returning jobs do not arrive as one wave ahead of other
        // destinations' jobs.
        const int64_t drain = dest->drain_ms();
        const int64_t around =
            std::clamp<int64_t>(drain < 0 ? limits_.max_defer_delay_ms.load() : drain,
                                limits_.defer_delay_ms.load(), 60'000);
        thread_local std::minstd_rand rng{std::random_device{}()};
        std::uniform_real_distribution<double> spread(0.5, 1.5);
        saturated_delay_ms = static_cast<int64_t>(static_cast<double>(around) * spread(rng));
        ++dest->deferrals;
        break;
      }
      case Verdict::circuit_open:
        ++dest->deferrals;
        break;
    }
  }
  if (reserved) reserved_.fetch_sub(1);  // counted where it rests (in flight or waiting)
  switch (verdict) {
    case Verdict::send:
      delivered = true;
      call_deliver(*d);
      return;
    case Verdict::hold:
      return;
    case Verdict::circuit_open:
      delivered = true;  // a found job of another destination is worth the scan
      defer(*d, Deferral::circuit_open, -1, "");
      return;
    case Verdict::overflow:
      overflowed = true;
      defer(*d, Deferral::saturated, saturated_delay_ms, "");
      return;
  }
}

void Consumer::mark_delivering(Delivery& d, int64_t now) {
  d.job.attempt = d.failed_before + 1;
  const rd_plugin_descriptor* desc = d.plugin->info.descriptor;
  const bool waits = RD_HAS_FIELD(desc, rd_plugin_descriptor, flags) &&
                     (desc->flags & RD_PLUGIN_REPORTS_STARTED) != 0;
  // Until the plugin says it sent the job, the job waits for its destination: no timeout runs
  // but the bound on how long a plugin may hold a job queued.
  const int64_t deadline = now + (waits ? limits_.queue_timeout_ms.load(std::memory_order_relaxed)
                                        : limits_.timeout_ms.load(std::memory_order_relaxed)) *
                                     1'000'000;
  // The caller holds the plugin's lane call_mu across this and the xDeliver that follows, and a
  // reload switches instances only under it: the instance read here is the one called.
  void* const instance = d.plugin->instance.load(std::memory_order_relaxed);
  Gate& g = gates_[d.slot];
  std::lock_guard<std::mutex> lock(g.mu);
  d.state = State::delivering;
  d.instance = instance;
  d.waits_for_start = waits;
  d.started_ns = now;
  d.progress_ns = now;
  d.deadline_ns = deadline;
  g.id = d.id;
  g.d = &d;
}

void Consumer::deliver(Delivery& d, int64_t now) {
  mark_delivering(d, now);
  call_deliver(d);
}

void Consumer::call_deliver(Delivery& d) {
  const uint64_t id = d.id;
  void* const instance = d.instance;  // set by mark_delivering
  crash::InFlightSlot& held = crash_slots_[static_cast<uint32_t>(id & 0xffffffffu)];
  held.seq.store(d.stream_seq, std::memory_order_relaxed);
  held.plugin.store(d.plugin->index, std::memory_order_relaxed);
  crash::PluginScope scope(d.plugin->index, d.stream_seq);
  const rd_host* from = d.plugin->host.get();  // `d` may be reused once the plugin completed
  try {
    d.plugin->info.descriptor->xDeliver(instance, id, &d.job);
  } catch (...) {
    // A C plugin cannot throw; a C++ one that forgot its guard is caught here, never crossing
    // further.
    static const char kReason[] = "plugin threw an exception from xDeliver";
    rd_result r{sizeof(rd_result), RD_OUTCOME_PERMANENT, -1, kReason, sizeof kReason - 1};
    on_complete(id, &r, from);
  }
}

// Hands waiting jobs to their plugins once their destination is below its share again.
void Consumer::waiting_loop() {
  crash::thread_init();
  t_host_thread = true;
  std::vector<Delivery*> send;
  std::vector<Delivery*> blocked;
  std::vector<Delivery*> ahead;
  while (!stopping_.load()) {
    {
      std::unique_lock<std::mutex> lock(dispatch_mu_);
      waiting_cv_.wait_for(lock, std::chrono::milliseconds(200),
                           [&] { return waiting_ready_.load() || stopping_.load(); });
    }
    // Cleared before the pass: a signal from here on means a change this pass may not see.
    waiting_ready_.store(false);
    if (stopping_) break;
    if (waiting_count_.load() == 0 && ahead_count_.load() == 0) continue;
    int64_t now = now_ns();
    // Slots reserved by a fetch thread are not kept free here: a job it places beyond the
    // in-flight slots waits as fetched ahead (admit()). Each job moved takes an in-flight slot
    // first (take_in_flight), and gives it back if it cannot move after all.
    bool full = false;
    for (size_t i = 0; i < kDestinationShards && !full && waiting_count_.load() > 0; ++i) {
      DestinationShard& shard = shards_[i];
      MutexLock lock(shard.mu);
      // Called by for_each with shard.mu held (the analysis does not follow into the template).
      shard.table.for_each([&](Destination& dest) NO_THREAD_SAFETY_ANALYSIS {
        while (!full && !dest.waiting.empty()) {
          if (!take_in_flight()) {
            full = true;
            break;
          }
          bool probe = false;
          bool defer_it = false;
          if (dest.breaker.open()) {
            if (dest.breaker.gate(now) == CircuitBreaker::Gate::probe) {
              probe = true;
            } else {
              defer_it = true;
            }
          } else if (over_share(dest, 0)) {
            active_.fetch_sub(1);
            break;
          }
          const uint64_t id = dest.waiting.front();
          dest.waiting.pop_front();
          Delivery* d = take_waiting(id, /*ahead=*/false);
          if (d == nullptr) {
            active_.fetch_sub(1);
            if (probe) dest.breaker.probe_cancelled();
            continue;
          }
          waiting_count_.fetch_sub(1);
          if (defer_it) {
            ++dest.deferrals;
            blocked.push_back(d);
            continue;
          }
          d->probe = probe;
          ++dest.in_flight;
          send.push_back(d);
          if (probe) break;  // one probe at a time; the rest wait for its answer
        }
      });
    }
    // Then the jobs fetched ahead, oldest first, into the slots left.
    while (ahead_count_.load() > 0 && take_in_flight()) {
      uint64_t id = 0;
      Delivery* d = nullptr;
      bool popped = false;
      while (d == nullptr && (popped = ahead_queue_.pop(id))) d = take_waiting(id, /*ahead=*/true);
      if (d == nullptr) {
        active_.fetch_sub(1);
        if (!popped) break;  // counted, not queued yet: the next pass
        continue;
      }
      ahead_count_.fetch_sub(1);
      ahead.push_back(d);
    }
    metrics_.in_flight.store(active_.load(), std::memory_order_relaxed);
    metrics_.waiting.store(waiting_count_.load(), std::memory_order_relaxed);
    metrics_.fetched_ahead.store(ahead_count_.load(), std::memory_order_relaxed);
    const bool moved = !send.empty() || !blocked.empty();
    now = now_ns();
    for (Delivery* d : send) {
      bool delivered = false;
      bool overflowed = false;
      hand_to_plugin(*d, /*admitted=*/true, now, delivered, overflowed);
    }
    send.clear();
    for (Delivery* d : ahead) {
      bool delivered = false;
      bool overflowed = false;
      hand_to_plugin(*d, /*admitted=*/false, now, delivered, overflowed);
    }
    ahead.clear();
    for (Delivery* d : blocked) defer(*d, Deferral::circuit_open, -1, "");
    blocked.clear();
    // Room in the waiting area: the fetch threads may be asleep waiting for it.
    if (moved) wake_fetch_if_allowed();
  }
}

Consumer::Delivery* Consumer::take_waiting(uint64_t id, bool ahead) {
  std::lock_guard<std::mutex> gate(gate_of(id).mu);
  Delivery* d = slots_[static_cast<uint32_t>(id & 0xffffffffu)].get();
  if (d->id != id || d->state != State::waiting || d->ahead != ahead) return nullptr;
  d->state = State::settling;
  d->active = true;
  d->ahead = false;
  return d;
}

void Consumer::signal_waiting() {
  if (waiting_ready_.exchange(true)) return;  // signalled already, not run yet
  { std::lock_guard<std::mutex> lock(dispatch_mu_); }
  waiting_cv_.notify_one();
}

// A job no plugin may see (invalid, or no plugin for its type): straight to the dead-letter queue.
void Consumer::reject(Delivery& d, std::string reason) {
  d.reason = std::move(reason);
  d.attempts = d.deliveries;
  metrics_.destination(d.dest_index).outcomes[static_cast<size_t>(Outcome::invalid)]++;
  metrics_.failed++;
  std::lock_guard<std::mutex> lock(dl_mu_);
  dl_queue_.push_back(&d);
  dl_cv_.notify_one();
}

}  // namespace rd
