// Start-up, the fetch loop and shutdown of the delivery pipeline (see consumer.hpp).
#include "consumer.hpp"

#include <algorithm>
#include <chrono>

#include "consumer_internal.hpp"
#include "duration.hpp"
#include "logging.hpp"
#include "thread_name.hpp"

namespace rd {
namespace {
Throttle g_fetch_error_log(5000);
constexpr int64_t kMinScanNs = 100'000'000;    // first re-scan of a full waiting area
constexpr int64_t kMaxScanNs = 1'000'000'000;  // re-scans that found nothing slow down to this

int fetch_low_water_for(const Config& config) {
  return std::max(1, std::min(config.nats.fetch_batch, config.delivery.max_in_flight / 4));
}
// max_in_flight + max_waiting + the fetch-ahead count (fetch_low_water_).
uint32_t slots_for(const Config& config) {
  return static_cast<uint32_t>(config.delivery.max_in_flight + config.delivery.max_waiting +
                               fetch_low_water_for(config));
}
}  // namespace

Consumer::Consumer(const Config& config, NatsClient& nats, PluginSet& plugins, DeadLetterSink& sink,
                   Metrics& metrics, AttemptStore* attempts)
    : config_(config),
      nats_(nats),
      plugins_(plugins),
      sink_(sink),
      metrics_(metrics),
      attempts_(attempts != nullptr && attempts->available() ? attempts : nullptr),
      retry_(config.nats.backoff_ms, config.nats.max_backoff_ms),
      max_attempts_(config.nats.max_deliver),
      free_(slots_for(config)),
      ahead_queue_(2 * static_cast<size_t>(slots_for(config))),
      spent_(4 * kSpentBatch),
      acks_(std::max<size_t>(4 * static_cast<size_t>(slots_for(config)), 4 * kAckBurst)) {
  mu_.count_in(&metrics_.table_lock_waits, &metrics_.table_lock_acquisitions);
  const int waiting = config.delivery.max_waiting;
  fetch_low_water_ = fetch_low_water_for(config);
  fetch_ahead_ = fetch_low_water_;
  ahead_wake_ = std::max(1, fetch_low_water_ / 8);
  const uint32_t n = slots_for(config);
  waiting_low_water_ = std::max(1, std::min(fetch_low_water_, waiting / 4));
  set_share(config.delivery.max_in_flight_per_destination);
  store_limits(config);
  {
    MutexLock lock(mu_);
    scan_backoff_ns_ = kMinScanNs;
  }
  shards_ = std::make_unique<DestinationShard[]>(kDestinationShards);
  for (size_t i = 0; i < kDestinationShards; ++i) {
    MutexLock lock(shards_[i].mu);
    shards_[i].table.set_circuit(config.delivery.circuit_failures,
                                 config.delivery.circuit_probe_interval_ms);
  }
  slots_.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    slots_.push_back(std::make_unique<Delivery>());
    free_.push(n - 1 - i);  // slot 0 on top
  }
  slot_count_ = n;
  gates_ = std::make_unique<Gate[]>(n);
  crash_slots_ = std::make_unique<crash::InFlightSlot[]>(n);
  crash::register_in_flight(crash_slots_.get(), n, config.nats.stream);
}

void Consumer::set_share(int per_destination) {
  const int in_flight = config_.delivery.max_in_flight;
  const int waiting = config_.delivery.max_waiting;
  const int share = std::max(1, std::min(per_destination, in_flight));
  share_.store(share);
  share_low_water_.store(share - std::max(1, share / 4));
  lane_limit_.store(std::max(share, in_flight - share), std::memory_order_relaxed);
  waiting_per_destination_.store(std::max(1, waiting - std::min(share, waiting / 2)));
}

Consumer::DestinationShard& Consumer::shard_for(std::string_view key) {
  return shards_[std::hash<std::string_view>{}(key) % kDestinationShards];
}

void Consumer::store_limits(const Config& config) {
  const auto& d = config.delivery;
  constexpr auto r = std::memory_order_relaxed;
  limits_.timeout_ms.store(d.timeout_ms, r);
  limits_.queue_timeout_ms.store(d.queue_timeout_ms, r);
  limits_.give_up_after_ms.store(d.give_up_after_ms, r);
  limits_.defer_delay_ms.store(d.defer_delay_ms, r);
  limits_.max_defer_delay_ms.store(d.max_defer_delay_ms, r);
  limits_.max_backoff_ms.store(config.nats.max_backoff_ms, r);
  limits_.max_job_bytes.store(d.max_job_bytes, r);
  limits_.shutdown_grace_ms.store(d.shutdown_grace_ms, r);
  limits_.circuit_probe_interval_ms.store(d.circuit_probe_interval_ms, r);
}

void Consumer::apply_limits(const Config& next) {
  store_limits(next);
  {
    std::lock_guard<std::mutex> lock(retry_mu_);
    retry_ = RetryPolicy(next.nats.backoff_ms, next.nats.max_backoff_ms);
  }
  set_share(next.delivery.max_in_flight_per_destination);
  for (size_t i = 0; i < kDestinationShards; ++i) {
    MutexLock lock(shards_[i].mu);
    shards_[i].table.set_circuit(next.delivery.circuit_failures,
                                 next.delivery.circuit_probe_interval_ms);
  }
  // The waits re-check their conditions against the new limits (a larger share may let waiting
  // jobs move now).
  { MutexLock lock(mu_); }
  slot_freed_.notify_all();
  {
    std::lock_guard<std::mutex> lock(dispatch_mu_);
    waiting_ready_.store(true);
  }
  waiting_cv_.notify_all();
}

Consumer::~Consumer() {
  shutdown(0);
  crash::unregister_in_flight();
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
  js_max_deliver_.store(settings.max_deliver);
  const int share = share_.load();
  const bool two_fetchers =
      config_.delivery.max_in_flight >= 2 * fetch_low_water_ && fetch_low_water_ >= 16;
  subs_.assign(two_fetchers ? 2 : 1, nullptr);
  for (size_t i = 0; i < subs_.size(); ++i) {
    if (!subscribe(i))
      throw NatsError("cannot bind to durable consumer '" + config_.nats.consumer + "'");
  }
  bound_ = true;
  log::info("consumer_bound",
            {log::kv("stream", config_.nats.stream), log::kv("consumer", config_.nats.consumer),
             log::kv("max_attempts", max_attempts_),
             log::kv("jetstream_max_deliver", settings_.max_deliver),
             log::kv("ack_wait", format_duration_ms(settings_.ack_wait_ms)),
             log::kv("max_in_flight", config_.delivery.max_in_flight),
             log::kv("max_in_flight_per_destination", share),
             log::kv("give_up_after", format_duration_ms(limits_.give_up_after_ms.load())),
             log::kv("attempt_store",
                     attempts_ != nullptr ? attempts_->bucket() : std::string("jetstream count"))});
  for (int i = 0; i < config_.dead_letter.workers; ++i)
    dl_threads_.emplace_back([this] {
      name_thread("rd-deadletter");
      dead_letter_loop();
    });
  for (ActivePlugin* p : plugins_.all()) add_lane(*p);
  watchdog_thread_ = std::thread([this] {
    name_thread("rd-watchdog");
    watchdog_loop();
  });
  acks_stopped_.store(false);
  ack_thread_ = std::thread([this] {
    name_thread("rd-ack");
    ack_loop();
  });
  waiting_thread_ = std::thread([this] {
    name_thread("rd-waiting");
    waiting_loop();
  });
  for (size_t i = 0; i < subs_.size(); ++i)
    fetch_threads_.emplace_back([this, i] {
      name_thread("rd-fetch-" + std::to_string(i));
      fetch_loop(i);
    });
}

void Consumer::add_lane(ActivePlugin& plugin) {
  const auto index = static_cast<size_t>(plugin.index);
  auto lane = std::make_unique<Lane>();
  lane->plugin = &plugin;
  Lane* l = lane.get();
  lanes_[index] = std::move(lane);
  l->thread = std::thread([this, l] {
    name_thread("rd-lane");
    lane_loop(*l);
  });
  lane_count_.store(std::max(lane_count_.load(std::memory_order_relaxed), index + 1),
                    std::memory_order_release);
}

// try_lock, retried every millisecond (not std::timed_mutex: see enter_briefly()).
bool Consumer::hold_calls(ActivePlugin& plugin, int64_t wait_ms) {
  Lane& lane = *lanes_[static_cast<size_t>(plugin.index)];
  const int64_t until = now_ns() + wait_ms * 1'000'000;
  while (!lane.call_mu.try_lock()) {
    if (now_ns() >= until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

void Consumer::release_calls(ActivePlugin& plugin) {
  lanes_[static_cast<size_t>(plugin.index)]->call_mu.unlock();
}

void Consumer::replace_instance(ActivePlugin& plugin, void* instance) {
  // Every call into the plugin (xDestination, xDeliver) holds its lane's call_mu, which the
  // caller holds (hold_calls), and reads the instance once inside it: from here on none can reach
  // the old one. Its jobs are those handed to it (their xDeliver returned: call_mu is ours) and
  // neither completed nor timed out; the watchdog destroys it once none is left (reap_retired).
  void* old = plugin.instance.exchange(instance, std::memory_order_acq_rel);
  {
    MutexLock lock(mu_);
    retired_.push_back({&plugin, old});
  }
  const int jobs = jobs_of(old);
  log::info("plugin_instance_replaced",
            {log::kv("plugin", plugin.info.name), log::kv("old_instance_jobs", jobs),
             log::kv("effect",
                     "new jobs go to the new instance; the old one completes the jobs it holds "
                     "and is destroyed once it holds none")});
}

size_t Consumer::draining_instances() const {
  MutexLock lock(mu_);
  return retired_.size();
}

int Consumer::jobs_of(const void* instance) const {
  int jobs = 0;
  for (uint32_t i = 0; i < slot_count_; ++i) {
    std::lock_guard<std::mutex> lock(gates_[i].mu);
    const Delivery& d = *slots_[i];
    if (d.state == State::delivering && d.instance == instance) ++jobs;
  }
  return jobs;
}

void Consumer::reap_retired(bool all) {
  std::vector<std::pair<Retired, int>> drained;
  {
    MutexLock lock(mu_);
    if (retired_.empty()) return;
    for (auto it = retired_.begin(); it != retired_.end();) {
      // No new job reaches it (replace_instance): once it holds none, it holds none for good.
      const int jobs = jobs_of(it->instance);
      if (all || jobs == 0) {
        drained.emplace_back(*it, jobs);
        it = retired_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (const auto& [r, jobs] : drained) {
    // No call can reach it (replace_instance) and it holds no job: what xDestroy requires.
    plugins_.destroy_instance(*r.plugin, r.instance);
    log::info("plugin_instance_destroyed",
              {log::kv("plugin", r.plugin->info.name), log::kv("jobs_left", jobs),
               log::kv("reason", all ? "shutdown" : "drained after a reload")});
  }
}

// ---- fetch ----

// Whether a fetch thread may pull now, and how many jobs. A pull needs free in-flight capacity;
// since a fetched job may have to wait (its destination is at its share), it also needs room in
// the waiting area. When that is full, a pull still goes out now and then ("scan") so jobs of
// other destinations behind a slow one's backlog are found; what cannot wait is deferred.
//
// Capacity counts fetch_ahead_ jobs beyond the in-flight slots: a pull goes out while the slots
// are still taken, so that when they free up the next jobs are here already. Waiting for a
// batch's worth of free slots and then for the pull would leave on average half a batch of slots
// idle for a path bound by its destinations' latency (12 % of max_in_flight), or cost a pull
// round trip per few jobs with a smaller batch.
int Consumer::fetch_capacity() const {
  return config_.delivery.max_in_flight + fetch_ahead_ - active_.load() - ahead_count_.load() -
         reserved_.load();
}

bool Consumer::fetch_allowed(int64_t now_ns, int& batch) const {
  const int capacity = fetch_capacity();
  if (capacity < fetch_low_water_) return false;
  // Room as the busiest destination sees it: the reserve is for the others' bursts, and filling
  // it with pulls that overflow would only turn into naks.
  const int room = waiting_per_destination_.load() - waiting_count_.load() - reserved_.load();
  if (room >= waiting_low_water_) {
    batch = std::min({config_.nats.fetch_batch, capacity, room});
    return true;
  }
  if (now_ns < next_scan_ns_.load()) return false;
  batch = std::min(config_.nats.fetch_batch, capacity);
  return true;
}

// A fetch thread counts itself in fetch_sleepers_ (with mu_ held) before it checks fetch_allowed()
// a last time and waits; a thread that frees capacity changes the counts before it reads
// fetch_sleepers_ (all sequentially consistent). So either the sleeper sees the new counts or the
// waker sees the sleeper, and then it takes mu_ (held by the sleeper until it waits) to notify.
void Consumer::wake_fetch_if_allowed() {
  if (fetch_sleepers_.load() == 0) return;
  int batch = 0;
  if (fetch_allowed(now_ns(), batch)) wake_fetch();
}

void Consumer::wake_fetch() {
  if (fetch_woken_.exchange(true)) return;  // woken already, not running yet
  { MutexLock lock(mu_); }
  slot_freed_.notify_all();
}

void Consumer::fetch_loop(size_t index) {
  crash::thread_init();
  t_host_thread = true;
  int consecutive_errors = 0;
  std::vector<uint32_t> mine;  // free slots this thread took for its batch, not placed yet
  mine.reserve(static_cast<size_t>(config_.nats.fetch_batch));
  std::vector<PendingAck> acks;  // acks queued so far, to leave with this thread's pull request
  acks.reserve(kAckBurst);
  enum class Scan { keep, reset, slow_down } scan = Scan::keep;  // after the last batch
  while (!stopping_.load(std::memory_order_relaxed)) {
    destroy_spent();  // what settled since the last batch
    int batch = 0;
    bool ok = false;
    {
      MutexLock lock(mu_);
      if (scan != Scan::keep) {
        // The last batch's verdict on re-scans of a full waiting area, in this acquisition (one
        // per batch): it found only jobs that overflowed (slow down), or something else.
        scan_backoff_ns_ =
            scan == Scan::slow_down ? std::min(scan_backoff_ns_ * 2, kMaxScanNs) : kMinScanNs;
        next_scan_ns_.store(now_ns() + scan_backoff_ns_);
        scan = Scan::keep;
      }
      // Wait for a worthwhile batch of capacity (or 200 ms): fetching each slot as it frees up
      // costs a pull round trip, and a wake-up of this thread, per job. (See wake_fetch.)
      const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
      while (true) {
        fetch_sleepers_.fetch_add(1);
        fetch_woken_.store(false);
        ok = stopping_.load() || fetch_allowed(now_ns(), batch);
        if (ok || slot_freed_.wait_until(mu_, until) == std::cv_status::timeout) {
          fetch_sleepers_.fetch_sub(1);
          break;
        }
        fetch_sleepers_.fetch_sub(1);
      }
      if (ok && batch > 0 && !stopping_.load() && !nats_.connected()) batch = 0;
      if (ok && batch > 0 && !stopping_.load()) {
        // The slots are taken off the free list now, in the acquisition that found room for
        // them: the other fetch thread's check counts them (reserved_) from here on, so the two
        // never both pull into the same room. Placing a job then needs no lock of its own; the
        // slots become visible to the others when activated.
        reserved_.fetch_add(batch);
        uint32_t slot = 0;
        int got = 0;
        while (got < batch && free_.pop(slot)) {
          mine.push_back(slot);
          ++got;
        }
        if (got < batch) reserved_.fetch_sub(batch - got);
        batch = got;
      }
    }
    if (stopping_ || !ok) continue;
    if (batch > 0) {
      // The slots waited for were mostly freed by delivered jobs whose acks are queued (see
      // ack_loop): they go out now, ahead of the pull request, so nats.c sends both in one
      // write and nats-server reads them in one go.
      take_acks(acks);
    }
    if (!acks.empty()) send_acks(acks);
    if (batch == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    natsMsgList list{};
    jsErrCode err = static_cast<jsErrCode>(0);
    natsStatus s = natsSubscription_Fetch(&list, subs_[index], batch, 500, &err);
    const int got = s == NATS_OK ? list.Count : 0;
    if (got < batch) {
      for (int i = got; i < batch; ++i) {
        free_.push(mine.back());
        mine.pop_back();
      }
      reserved_.fetch_sub(batch - got);
      wake_fetch_if_allowed();  // the other fetch thread may wait for these
    }
    if (s == NATS_OK) {
      consecutive_errors = 0;
      bool delivered = false;
      bool overflowed = false;
      {
        // One fetch thread places its batch while the other's pull is on the wire; calls into a
        // plugin are serialised by its lane (hand_to_plugin).
        for (int i = 0; i < list.Count; ++i) {
          natsMsg* m = list.Msgs[i];
          list.Msgs[i] = nullptr;  // ownership moves to the in-flight table
          const uint32_t slot = mine.back();
          mine.pop_back();
          if (!stopping_.load(std::memory_order_relaxed)) {
            place(m, slot, delivered, overflowed);
            continue;
          }
          // Shutting down: a job fetched but not handed to a plugin goes straight back.
          natsMsg_Nak(m, nullptr);
          natsMsg_Destroy(m);
          returned_undispatched_.fetch_add(1);
          free_.push(slot);
          reserved_.fetch_sub(1);
        }
      }
      natsMsgList_Destroy(&list);
      scan = overflowed && !delivered ? Scan::slow_down : Scan::reset;
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
        // Other threads read js_max_deliver_ meanwhile; settings_ keeps the values of start().
        js_max_deliver_.store(nats_.ensure_consumer(config_).max_deliver);
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

// ---- shutdown ----

void Consumer::take_all_in(State state, std::vector<Delivery*>& out) {
  for (uint32_t i = 0; i < slot_count_; ++i) {
    Gate& g = gates_[i];
    std::lock_guard<std::mutex> lock(g.mu);
    Delivery* d = slots_[i].get();
    if (d->state != state) continue;
    d->state = State::settling;
    close_gate(g, d->id);  // a late `started` must not send it: it goes back to JetStream
    out.push_back(d);
  }
}

void Consumer::shutdown(int64_t grace_ms) {
  if (stopping_.exchange(true)) {
    return;
  }
  bound_ = false;
  { MutexLock lock(mu_); }
  slot_freed_.notify_all();
  { std::lock_guard<std::mutex> lock(dispatch_mu_); }
  waiting_cv_.notify_all();
  for (auto& t : fetch_threads_) {
    if (t.joinable()) t.join();
  }
  if (waiting_thread_.joinable()) waiting_thread_.join();
  // Jobs in a plugin's lane and jobs still waiting for their destination go back at once: they
  // were never handed out. (A lane's thread inside a call into its plugin finishes that call.)
  std::vector<Delivery*> rest;
  const size_t lanes = lane_count_.load(std::memory_order_acquire);
  for (size_t i = 0; i < lanes; ++i) {
    Lane* lane = lanes_[i].get();
    {
      std::lock_guard<std::mutex> lock(lane->q_mu);
      lane->stop = true;
    }
    lane->q_cv.notify_all();
  }
  for (size_t i = 0; i < lanes; ++i) {
    Lane* lane = lanes_[i].get();
    if (lane->thread.joinable()) lane->thread.join();
    for (const Lane::Item& item : lane->queue) rest.push_back(item.d);
    lane->queue.clear();
  }
  take_all_in(State::waiting, rest);
  for (uint64_t id = 0; ahead_queue_.pop(id);) {
    // Dropped: the jobs these ids name were waiting, and are in `rest` now.
  }
  for (Delivery* d : rest) {
    {
      std::lock_guard<std::mutex> lock(d->msg_mu);
      natsMsg_Nak(d->msg, nullptr);
    }
    release(*d);
  }
  const size_t handed_back_waiting = rest.size();
  rest.clear();
  // Let deliveries in flight finish within the grace period.
  const int64_t grace_until = now_ns() + grace_ms * 1'000'000;
  while (active_.load() > 0 && now_ns() < grace_until)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
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
  take_all_in(State::delivering, rest);
  {
    std::lock_guard<std::mutex> lock(dl_mu_);
    rest.insert(rest.end(), dl_queue_.begin(), dl_queue_.end());
    dl_queue_.clear();
  }
  for (Delivery* d : rest) {
    {
      std::lock_guard<std::mutex> lock(d->msg_mu);
      natsMsg_Nak(d->msg, nullptr);
    }
    release(*d);
  }
  // The acks still queued leave now (acks of settlements still under way on other threads are
  // sent by release() itself from here on).
  {
    std::lock_guard<std::mutex> lock(ack_mu_);
    acks_stopped_.store(true);
  }
  ack_cv_.notify_all();
  if (ack_thread_.joinable()) ack_thread_.join();
  destroy_spent();
  reap_retired(
      /*all=*/true);  // replaced instances still draining: as destroy_all does for the rest
  const size_t handed_back = rest.size() + handed_back_waiting + returned_undispatched_;
  if (handed_back > 0) {
    // in_plugin: handed to a plugin (it may have started them); the others it never saw.
    log::info("shutdown_nakked", {log::kv("jobs", handed_back), log::kv("in_plugin", rest.size()),
                                  log::kv("waiting", handed_back_waiting),
                                  log::kv("fetched", returned_undispatched_.load())});
  }
}

}  // namespace rd
