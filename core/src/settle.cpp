// Settling a job: plugin completions, the circuit breaker's bookkeeping, ack / nak with delay /
// dead-letter, and the attempt count (see consumer.hpp and docs/architecture.md).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>

#include "consumer.hpp"
#include "consumer_internal.hpp"
#include "duration.hpp"
#include "logging.hpp"

namespace rd {
namespace {
Throttle g_duplicate_log(1000);
Throttle g_settle_error_log(5000);

void warn_settle_failed(const char* what, const std::string& message_id, natsStatus s,
                        const char* effect) {
  if (s != NATS_OK && g_settle_error_log.allow()) {
    log::warn(what, {log::kv("message_id", message_id), log::kv("error", natsStatus_GetText(s)),
                     log::kv("effect", effect)});
  }
}
}  // namespace

// Under the slot's gate only, not mu_ (see Gate). What it reads besides the four fields the gate
// guards was written before the gate opened (dest, probe), and the destination outlives the
// job's delivery (it is pruned only with nothing in flight); its breaker's open flag is atomic.
bool Consumer::on_started(uint64_t delivery_id) noexcept {
  const uint32_t index = static_cast<uint32_t>(delivery_id & 0xffffffffu);
  if (index >= slot_count_) return false;
  Gate& g = gates_[index];
  std::lock_guard<std::mutex> lock(g.mu);
  Delivery* d = g.id == delivery_id ? g.d : nullptr;
  // Not held by the host any more: taken back after delivery.queue_timeout (parked in
  // abandoned_, its message deferred), or completed already. Sending it now would deliver a job
  // that JetStream will hand out again.
  if (d == nullptr) return false;
  if (!d->waits_for_start) return true;
  d->waits_for_start = false;
  d->sent_ns = now_ns();
  d->deadline_ns = d->sent_ns + limits_.timeout_ms.load(std::memory_order_relaxed) * 1'000'000;
  // A job that waited in the plugin's queue while its destination's circuit opened is not sent
  // into the outage (a black hole would hold a connection for a whole timeout, job after job).
  if (d->dest != nullptr && d->dest->breaker.open() && !d->probe) {
    d->withdrawn = true;
    return false;
  }
  return true;
}

void Consumer::on_complete(uint64_t delivery_id, const rd_result* result,
                           const rd_host* from) noexcept {
  try {
    Delivery* d;
    const bool has_reason =
        RD_HAS_FIELD(result, rd_result, reason_len) && result->reason != nullptr;
    const char* reason = has_reason ? result->reason : nullptr;
    const size_t reason_len = has_reason ? result->reason_len : 0;
    const uint32_t index = static_cast<uint32_t>(delivery_id & 0xffffffffu);
    d = nullptr;
    if (index < slot_count_) {
      // The slot's lock only: the job is this thread's to settle from here.
      Gate& g = gates_[index];
      std::lock_guard<std::mutex> lock(g.mu);
      Delivery* slot = slots_[index].get();
      if (slot->id == delivery_id && slot->state == State::delivering) {
        d = slot;
        d->state = State::settling;
        d->instance = nullptr;  // a replaced instance holds one job fewer (reap_retired)
        close_gate(g, delivery_id);
      }
    }
    if (d != nullptr) {
      const bool wake_waiting = finish_at_destination(
          *d, result->outcome,
          result->outcome == RD_OUTCOME_OK ? std::string() : truncate_reason(reason, reason_len));
      if (wake_waiting) signal_waiting();
      // A job delivered on a plugin's thread (the common case): its ack is queued, to leave in a
      // burst (a redelivered one's attempt count is forgotten in settle()).
      if (result->outcome == RD_OUTCOME_OK && !t_host_thread &&
          (attempts_ == nullptr || d->failed_before == 0)) {
        count_settled(d->dest_index, d->started_ns, Outcome::ok);
        metrics_.delivered.fetch_add(1, std::memory_order_relaxed);
        release(*d, /*ack=*/true);
        return;
      }
    }
    if (d == nullptr) {
      bool expected = false;
      std::string message_id = "unknown";
      {
        // A late completion of a timed-out delivery: its data may be freed now (once settled).
        MutexLock lock(mu_);
        auto it = abandoned_.find(delivery_id);
        if (it != abandoned_.end()) {
          // Taken back while queued (delivery.queue_timeout): the plugin was told so by `started`
          // and completes it as the SDK asks; nothing is wrong.
          expected = it->second->taken_back;
          message_id = it->second->message_id;
          if (it->second->state == State::free) abandoned_.erase(it);
        } else if (index < slot_count_) {
          std::lock_guard<std::mutex> gate(gates_[index].mu);
          const Delivery& slot = *slots_[index];
          if (slot.id == delivery_id) {
            // A second completion. Not message_id: a free slot may be a fetch thread's already,
            // being filled without a lock (see place()); settled_seq is written under the slot
            // lock. (stream_seq of a slot settling is its owner's; read for the log only.)
            message_id =
                config_.nats.stream + ":" +
                std::to_string(slot.state == State::free ? slot.settled_seq : slot.stream_seq);
          }
        }
      }
      if (expected) return;
      if (from != nullptr) {
        metrics_.destination(from->metrics_index)
            .duplicate_completions.fetch_add(1, std::memory_order_relaxed);
      }
      if (g_duplicate_log.allow()) {
        log::error("plugin_completion_ignored",
                   {log::kv("plugin", from != nullptr ? from->plugin_name : std::string("host")),
                    log::kv("message_id", message_id), log::kv("delivery_id", delivery_id),
                    log::kv("reason",
                            "completed twice, after its timeout, or with an unknown id; "
                            "plugins must call complete exactly once per delivery")});
      }
      return;
    }
    settle(*d, result->outcome,
           RD_HAS_FIELD(result, rd_result, retry_after_ms) ? result->retry_after_ms : -1, reason,
           reason_len, label_for(result->outcome));
  } catch (...) {
    // Nothing may escape into plugin code.
  }
}

// The destination's side of a settled delivery: its in-flight count and its circuit breaker.
// Returns true when the waiting dispatcher should look at this destination again.
//
// What the breaker counts: a DEFER ("destination unavailable") and a timeout always fail it; a
// RETRY fails it only when the plugin named the destination (xDestination). A destination the
// host keys by route stands for jobs that may fail each for its own reason (a bad payload, a row
// that conflicts), so there a RETRY is the job's failure, neither a failure nor a success of the
// destination: a route with many retrying jobs is not throttled to one probe a second.
bool Consumer::finish_at_destination(Delivery& d, int32_t outcome, const std::string& reason,
                                     bool timed_out) {
  crash_slots_[static_cast<uint32_t>(d.id & 0xffffffffu)].plugin.store(-1,
                                                                       std::memory_order_relaxed);
  Destination* dest = d.dest;
  if (dest == nullptr) return false;
  MutexLock lock(d.shard->mu);
  --dest->in_flight;
  const int64_t now = now_ns();
  dest->count_done(now);
  // Only answers the destination meant: a refused connection or a 503 is quick too, and must not
  // make a failing destination "fast" (able to borrow slots beyond its share). Timed from when the
  // request went out where the plugin says so (started): the wait in the plugin's own queue grows
  // with what the host hands it, and counting it made a busy but quick destination look slow and
  // stop borrowing the idle slots (saturated deferrals with no other destination to be fair to).
  if (!d.withdrawn && (outcome == RD_OUTCOME_OK || outcome == RD_OUTCOME_PERMANENT)) {
    const double took = static_cast<double>(now - (d.sent_ns > 0 ? d.sent_ns : d.started_ns)) / 1e6;
    dest->latency_ms = dest->latency_ms < 0 ? took : 0.9 * dest->latency_ms + 0.1 * took;
  }
  CircuitBreaker::Transition t = CircuitBreaker::Transition::none;
  const bool fails_destination =
      outcome == RD_OUTCOME_DEFER ||
      (outcome == RD_OUTCOME_RETRY && (timed_out || dest->named_by_plugin));
  if (d.withdrawn) {
    // Never sent: says nothing about the destination.
  } else if (outcome == RD_OUTCOME_OK || outcome == RD_OUTCOME_PERMANENT) {
    t = dest->breaker.success();  // the destination answered
  } else if (fails_destination) {
    t = dest->breaker.failure(now_ns(), wall_ms(), reason);
  } else if (d.probe) {
    dest->breaker.probe_cancelled();
  }
  d.probe = false;
  if (t != CircuitBreaker::Transition::none) log_transition(dest->key, t, dest->breaker);
  if (t == CircuitBreaker::Transition::opened) {
    metrics_.circuit_opened.fetch_add(1, std::memory_order_relaxed);
  }
  if (t == CircuitBreaker::Transition::opened) {
    metrics_.open_destinations.fetch_add(1, std::memory_order_relaxed);
  } else if (t == CircuitBreaker::Transition::closed) {
    metrics_.open_destinations.fetch_sub(1, std::memory_order_relaxed);
  }
  // A fast destination borrowing beyond its share: woken when a quarter share can be borrowed.
  const int share = share_.load(std::memory_order_relaxed);
  const bool room_to_borrow = fast(*dest) && config_.delivery.max_in_flight - active_.load() >=
                                                 share + std::max(1, share / 4);
  return !dest->waiting.empty() &&
         (dest->in_flight <= share_low_water_.load(std::memory_order_relaxed) ||
          dest->breaker.open() || t == CircuitBreaker::Transition::closed || room_to_borrow) &&
         !waiting_ready_.load(std::memory_order_relaxed);  // else signalled, not run yet
}

void Consumer::log_transition(const std::string& key, CircuitBreaker::Transition t,
                              const CircuitBreaker& breaker) {
  if (t == CircuitBreaker::Transition::opened) {
    log::warn("destination_unavailable",
              {log::kv("destination", key), log::kv("since", format_utc(breaker.open_since_ms())),
               log::kv("consecutive_failures", breaker.consecutive_failures()),
               log::kv("last_error", breaker.last_error()),
               log::kv("action",
                       "circuit open: its jobs are deferred (no attempt spent), one probe "
                       "every " +
                           format_duration_ms(limits_.circuit_probe_interval_ms.load()))});
  } else if (t == CircuitBreaker::Transition::closed) {
    log::info("destination_available",
              {log::kv("destination", key),
               log::kv("unavailable_for", format_duration_ms(std::max<int64_t>(
                                              0, wall_ms() - breaker.open_since_ms()))),
               log::kv("action", "circuit closed: its deferred jobs are delivered again")});
  }
}

bool Consumer::given_up(const Delivery& d) const {
  return wall_ms() - d.published_ms > limits_.give_up_after_ms.load(std::memory_order_relaxed);
}

bool Consumer::last_jetstream_delivery(const Delivery& d) const {
  const int64_t limit = js_max_deliver_.load(std::memory_order_relaxed);
  return limit > 0 && static_cast<int64_t>(d.deliveries) >= limit;
}

void Consumer::count_settled(size_t dest_index, int64_t started_ns, Outcome label) {
  auto& dest = metrics_.destination(dest_index);
  dest.outcomes[static_cast<size_t>(label)].fetch_add(1, std::memory_order_relaxed);
  dest.duration.observe(static_cast<double>(now_ns() - started_ns) / 1e9);
}

void Consumer::settle(Delivery& d, int32_t outcome, int64_t retry_after_ms, const char* reason,
                      size_t reason_len, Outcome label) {
  count_settled(d.dest_index, d.started_ns, label);
  std::string why;
  if (outcome != RD_OUTCOME_OK) {
    why = truncate_reason(reason, reason_len);
    if (why.empty()) {
      why = outcome == RD_OUTCOME_RETRY   ? "retry requested"
            : outcome == RD_OUTCOME_DEFER ? "destination unavailable"
                                          : "permanent failure";
    }
  }
  switch (outcome) {
    case RD_OUTCOME_OK: {
      metrics_.delivered.fetch_add(1, std::memory_order_relaxed);
      if (attempts_ != nullptr && d.failed_before > 0) attempts_->forget(d.stream_seq);
      if (!t_host_thread) {
        // Completed on a plugin's thread, as jobs complete one by one: the ack joins the next
        // burst (ack_loop). Once released, no other thread reaches the message (the watchdog
        // skips a slot without one), so it needs no msg_mu from there.
        release(d, /*ack=*/true);
        return;
      }
      // Completed inside xDeliver on a host thread (fetch, lane, waiting dispatcher): it hands out
      // jobs in a row (a fetch thread a whole batch), so these acks leave together anyway; a
      // hand-over to the ack thread would only cost a wake-up.
      natsStatus s;
      {
        std::lock_guard<std::mutex> lock(d.msg_mu);
        s = natsMsg_Ack(d.msg, nullptr);
      }
      warn_settle_failed("ack_failed", d.message_id, s,
                         "the job will be redelivered after ack_wait");
      release(d);
      return;
    }
    case RD_OUTCOME_RETRY: {
      metrics_.failed.fetch_add(1, std::memory_order_relaxed);
      const uint32_t attempt = d.failed_before + 1;  // this one failed
      if (max_attempts_ > 0 && static_cast<int64_t>(attempt) >= max_attempts_) {
        to_dead_letter(d, "gave up after " + std::to_string(attempt) + " attempts: " + why,
                       attempt);
        return;
      }
      if (given_up(d)) {
        metrics_.given_up.fetch_add(1, std::memory_order_relaxed);
        to_dead_letter(
            d,
            "gave up after " + std::to_string(attempt) + " attempts: the job was published " +
                format_utc(d.published_ms) + ", longer ago than delivery.give_up_after (" +
                format_duration_ms(limits_.give_up_after_ms.load()) + "); last error: " + why,
            attempt);
        return;
      }
      if (last_jetstream_delivery(d)) {
        to_dead_letter(d,
                       "JetStream max_deliver (" + std::to_string(js_max_deliver_.load()) +
                           ") reached after " + std::to_string(attempt) +
                           " attempts; last error: " + why,
                       attempt);
        return;
      }
      if (attempts_ != nullptr) attempts_->record(d.stream_seq, attempt);
      int64_t delay = 0;
      {
        std::lock_guard<std::mutex> lock(retry_mu_);  // a reload may replace the policy
        delay = retry_.delay_ms(attempt, retry_after_ms);
      }
      natsStatus s;
      {
        std::lock_guard<std::mutex> lock(d.msg_mu);
        s = natsMsg_NakWithDelay(d.msg, delay, nullptr);
      }
      warn_settle_failed("nak_failed", d.message_id, s,
                         "the job will be redelivered after ack_wait");
      metrics_.retried.fetch_add(1, std::memory_order_relaxed);
      if (log::enabled(log::Level::debug)) {
        log::debug("delivery_retry",
                   {log::kv("message_id", d.message_id), log::kv("attempt", attempt),
                    log::kv("delay_ms", delay), log::kv("reason", why)});
      }
      release(d);
      return;
    }
    case RD_OUTCOME_DEFER:
      defer(d, d.withdrawn ? Deferral::circuit_open : Deferral::unavailable, retry_after_ms, why);
      return;
    case RD_OUTCOME_PERMANENT:
      metrics_.failed.fetch_add(1, std::memory_order_relaxed);
      to_dead_letter(d, why, d.failed_before + 1);
      return;
    default:
      metrics_.failed.fetch_add(1, std::memory_order_relaxed);
      to_dead_letter(d, "plugin returned unknown outcome " + std::to_string(outcome) + ": " + why,
                     d.failed_before + 1);
      return;
  }
}

// The destination could not be tried (it said so, its circuit is open, or it is at its share and
// the waiting area is full): back to JetStream with a growing delay, no attempt spent — until the
// job has waited longer than delivery.give_up_after.
void Consumer::defer(Delivery& d, Deferral why, int64_t suggested_ms, std::string reason) {
  std::string key;
  int64_t since_ms = 0;
  std::string last_error;
  const int share = share_.load();
  if (d.dest != nullptr) {
    MutexLock lock(d.shard->mu);
    key = d.dest->key;
    const CircuitBreaker& b = d.dest->breaker;
    since_ms = b.open() ? b.open_since_ms() : b.failing_since_ms();
    last_error = b.last_error();
  }
  switch (why) {
    case Deferral::unavailable:
      metrics_.deferred_unavailable.fetch_add(1, std::memory_order_relaxed);
      break;
    case Deferral::circuit_open:
      metrics_.deferred_circuit_open.fetch_add(1, std::memory_order_relaxed);
      reason = "circuit open: " + last_error;
      break;
    case Deferral::plugin_busy:
      metrics_.deferred_plugin_busy.fetch_add(1, std::memory_order_relaxed);
      reason = "plugin '" + (d.plugin != nullptr ? d.plugin->info.name : std::string("?")) +
               "' is slow: its lane holds " + std::to_string(lane_limit_.load()) + " jobs";
      break;
    case Deferral::saturated:
      metrics_.deferred_saturated.fetch_add(1, std::memory_order_relaxed);
      reason = "saturated: its " + std::to_string(share) +
               " in-flight slots (delivery.max_in_flight_per_destination) and the waiting area (" +
               std::to_string(config_.delivery.max_waiting) + ", delivery.max_waiting) are full";
      break;
  }
  if (given_up(d) || last_jetstream_delivery(d)) {
    std::string text = "destination " + key + " unavailable";
    if (since_ms > 0) text += " since " + format_utc(since_ms);
    text += " (" + reason + "); ";
    if (given_up(d)) {
      metrics_.given_up.fetch_add(1, std::memory_order_relaxed);
      text += "the job was published " + format_utc(d.published_ms) +
              ", longer ago than delivery.give_up_after (" +
              format_duration_ms(limits_.give_up_after_ms.load()) + ")";
    } else {
      text += "JetStream max_deliver (" + std::to_string(js_max_deliver_.load()) +
              ") reached; raise the consumer's max_deliver";
    }
    metrics_.failed.fetch_add(1, std::memory_order_relaxed);
    to_dead_letter(d, std::move(text), d.failed_before);
    return;
  }
  // Growing with the job's deliveries: 250 ms, 500 ms, 1 s, ... up to delivery.max_defer_delay.
  thread_local std::minstd_rand rng{std::random_device{}()};
  const uint32_t doublings = std::min<uint32_t>(d.deliveries > 0 ? d.deliveries - 1 : 0, 30);
  const double base =
      std::min(static_cast<double>(limits_.defer_delay_ms.load(std::memory_order_relaxed)) *
                   std::ldexp(1.0, static_cast<int>(doublings)),
               static_cast<double>(limits_.max_defer_delay_ms.load(std::memory_order_relaxed)));
  std::uniform_real_distribution<double> jitter(0.8, 1.2);
  int64_t delay = static_cast<int64_t>(std::llround(base * jitter(rng)));
  if (why == Deferral::saturated && suggested_ms > 0)
    delay = suggested_ms;  // see place()
  else if (suggested_ms > delay)
    delay = std::min(suggested_ms, limits_.max_backoff_ms.load(std::memory_order_relaxed));
  natsStatus s;
  {
    std::lock_guard<std::mutex> lock(d.msg_mu);
    s = natsMsg_NakWithDelay(d.msg, delay, nullptr);
  }
  warn_settle_failed("nak_failed", d.message_id, s, "the job will be redelivered after ack_wait");
  if (log::enabled(log::Level::debug)) {
    log::debug("delivery_deferred",
               {log::kv("message_id", d.message_id), log::kv("destination", key),
                log::kv("delay_ms", delay), log::kv("reason", reason)});
  }
  release(d);
}

void Consumer::to_dead_letter(Delivery& d, std::string reason, uint32_t attempts) {
  d.reason = truncate_reason(reason.data(), reason.size());
  d.attempts = attempts;
  {
    std::lock_guard<std::mutex> lock(dl_mu_);
    if (!dl_stop_) {
      dl_queue_.push_back(&d);
      dl_cv_.notify_one();
      return;
    }
  }
  {
    std::lock_guard<std::mutex> lock(d.msg_mu);
    natsMsg_Nak(d.msg, nullptr);  // shutting down: JetStream redelivers it to another instance
  }
  release(d);
}

// nats.c hands every destroyed message to its garbage-collector thread and wakes that thread
// whenever its list was empty, so destroying each message as it settles costs a futex wake-up and
// a context switch per job. Settled messages are destroyed in groups instead: by the fetch thread
// before each fetch (about one group per fetch batch), and by queue_spent() when kSpentBatch have
// gathered (fetch threads waiting a long time for capacity).
//
// No lock common to all jobs: the message goes to a lock-free queue, the slot is freed under its
// own lock and handed to the fetch threads through the free list (a lock-free stack), the counts
// are atomics. Whoever must act on the change (a fetch thread asleep, the waiting dispatcher, the
// ack thread) is woken only when it waits for it.
void Consumer::release(Delivery& d, bool ack) {
  natsMsg* const msg = d.msg;
  const uint64_t stream_seq = d.stream_seq;
  const uint32_t index = static_cast<uint32_t>(d.id & 0xffffffffu);
  bool parked = false;
  bool was_active = false;
  bool was_ahead = false;
  {
    std::lock_guard<std::mutex> lock(gates_[index].mu);
    Delivery& own = *slots_[index];  // not `d` when `d` was parked as abandoned
    parked = &own != &d;
    own.state = State::free;
    own.settled_seq = d.stream_seq;  // names it in a late second completion
    was_active = d.active;
    was_ahead = d.ahead;
    d.active = false;
    d.ahead = false;
  }
  // The slot is free (the watchdog no longer sends its in-progress): the message may go.
  if (ack) {
    queue_ack(msg, stream_seq);  // destroyed by send_acks once acked
  } else {
    queue_spent(msg);
  }
  d.msg = nullptr;
  d.plugin = nullptr;
  d.dest = nullptr;
  d.shard = nullptr;
  if (parked) {
    MutexLock lock(mu_);  // a parked delivery's state is read under it (abandoned_)
    d.state = State::free;
  }
  const int max_in_flight = config_.delivery.max_in_flight;
  int active = active_.load();
  if (was_active) {
    active = active_.fetch_sub(1) - 1;
    metrics_.in_flight.store(active, std::memory_order_relaxed);
  } else if (was_ahead) {
    // Handed back at shutdown.
    metrics_.fetched_ahead.store(ahead_count_.fetch_sub(1) - 1, std::memory_order_relaxed);
  } else {
    metrics_.waiting.store(waiting_count_.fetch_sub(1) - 1, std::memory_order_relaxed);
  }
  free_.push(index);
  // The waiting dispatcher: jobs held for their destination may move when the in-flight slots
  // were all taken and a low water's worth is free again (each count is passed by exactly one
  // release); jobs fetched ahead move on a few slots at a time.
  if ((was_active && waiting_count_.load() > 0 && max_in_flight - active == fetch_low_water_) ||
      (ahead_count_.load() > 0 && max_in_flight - active >= ahead_wake_)) {
    signal_waiting();
  }
  wake_fetch_if_allowed();
}

void Consumer::queue_spent(natsMsg* msg) {
  if (!spent_.push(msg)) natsMsg_Destroy(msg);  // a full queue: at once
  // Fetch threads waiting long for capacity leave the group to whoever fills it.
  if (spent_.size() >= kSpentBatch) destroy_spent();
}

// The ack thread waits (idle) for the first ack of a burst, then for the window to pass (it wakes
// itself) or a full burst. The count goes up before the push, so the thread may find a counted ack
// not queued yet: it then waits for the next.
void Consumer::queue_ack(natsMsg* msg, uint64_t stream_seq) {
  const size_t before = acks_queued_.fetch_add(1);
  if (before == 0) acks_since_ns_.store(now_ns(), std::memory_order_relaxed);
  if (!acks_.push({msg, stream_seq})) {
    acks_queued_.fetch_sub(1);
    std::vector<PendingAck> one{{msg, stream_seq}};  // a full queue: sent at once
    send_acks(one);
    return;
  }
  if (acks_stopped_.load()) {
    // No ack thread (not started, or shut down): sent here.
    std::vector<PendingAck> burst;
    take_acks(burst);
    send_acks(burst);
    return;
  }
  if ((before == 0 && acker_idle_.load()) || before + 1 == kAckBurst) {
    { std::lock_guard<std::mutex> lock(ack_mu_); }
    ack_cv_.notify_one();
  }
}

void Consumer::take_acks(std::vector<PendingAck>& out) {
  size_t n = 0;
  for (PendingAck a{}; acks_.pop(a); ++n) out.push_back(a);
  if (n > 0) acks_queued_.fetch_sub(n);
}

// The ack thread. The ack of a job a plugin completed on its own thread is queued by release(), and
// the queue leaves in one go, so that nats-server reads many acks per socket read instead of a few
// (nats.c's flusher sends its buffer 1 ms after the first pending write, and jobs complete one by
// one): with the next pull request of a fetch thread (fetch_loop), which waited for the slots these
// jobs freed; or, on a quiet path, from this thread, once the oldest queued ack is kAckWindowMs old
// or kAckBurst are queued. So an ack leaves at most kAckWindowMs (+1 ms) after its job completed;
// the slot is free at once.
void Consumer::ack_loop() {
  crash::thread_init();
  std::vector<PendingAck> burst;
  burst.reserve(kAckBurst);
  while (true) {
    {
      std::unique_lock<std::mutex> lock(ack_mu_);
      // Idle is set before the count is read and read by queue_ack after its count (both
      // sequentially consistent): either this thread sees the ack or queue_ack sees it idle.
      acker_idle_.store(true);
      ack_cv_.wait(lock, [&] { return acks_queued_.load() > 0 || acks_stopped_.load(); });
      acker_idle_.store(false);
      // Until the oldest queued ack is kAckWindowMs old or a burst is full. A fetch thread may
      // send the queue meanwhile, with its pull request; the window then starts again with the
      // next ack (so on a busy path the acks leave with the pull requests, and this thread only
      // sends those of a quiet one).
      while (!acks_stopped_.load() && acks_queued_.load() > 0 && acks_queued_.load() < kAckBurst) {
        const int64_t left_ns =
            acks_since_ns_.load(std::memory_order_relaxed) + kAckWindowMs * 1'000'000 - now_ns();
        if (left_ns <= 0) break;
        ack_cv_.wait_for(lock, std::chrono::nanoseconds(left_ns));
      }
    }
    take_acks(burst);
    if (burst.empty()) {
      if (acks_stopped_.load() && acks_queued_.load() == 0) return;  // nothing left to send
      if (acks_queued_.load() > 0) std::this_thread::yield();        // counted, not queued yet
      continue;                                                      // or sent by a fetch thread
    }
    send_acks(burst);
  }
}

void Consumer::send_acks(std::vector<PendingAck>& burst) {
  for (const PendingAck& a : burst) {
    const natsStatus s = natsMsg_Ack(a.msg, nullptr);
    if (s != NATS_OK && g_settle_error_log.allow()) {
      log::warn("ack_failed",
                {log::kv("stream_seq", a.stream_seq), log::kv("error", natsStatus_GetText(s)),
                 log::kv("effect", "the job will be redelivered after ack_wait")});
    }
  }
  // Destroyed in groups, as release() does (nats.c wakes its garbage collector per group).
  for (const PendingAck& a : burst) queue_spent(a.msg);
  burst.clear();
}

void Consumer::destroy_spent() {
  thread_local std::vector<natsMsg*> group;
  for (natsMsg* m = nullptr; spent_.pop(m);) group.push_back(m);
  for (natsMsg* m : group) natsMsg_Destroy(m);
  group.clear();
}

std::vector<Consumer::DestinationView> Consumer::troubled_destinations() const {
  std::vector<DestinationView> out;
  for (size_t i = 0; i < kDestinationShards; ++i) {
    const DestinationShard& shard = shards_[i];
    MutexLock lock(shard.mu);
    shard.table.for_each([&](const Destination& d) NO_THREAD_SAFETY_ANALYSIS {
      const CircuitBreaker& b = d.breaker;
      if (!b.open() && b.consecutive_failures() == 0 && d.waiting.empty()) return;
      DestinationView v;
      v.key = d.key;
      v.open = b.open();
      v.open_since_ms = b.open_since_ms();
      v.failing_since_ms = b.failing_since_ms();
      v.consecutive_failures = b.consecutive_failures();
      v.last_error = b.last_error();
      v.in_flight = d.in_flight;
      v.waiting = d.waiting.size();
      v.deferrals = d.deferrals;
      out.push_back(std::move(v));
    });
  }
  return out;
}

}  // namespace rd
