// The delivery pipeline: fetch -> place -> deliver -> (plugin) -> settle -> dead-letter.
// Each step has its own file: consumer.cpp (start, fetch, shutdown), dispatch.cpp (parse,
// destination, admission, deliver), settle.cpp (completions, ack/nak/term), dead_letter_queue.cpp,
// watchdog.cpp (in-progress acks and timeouts).
//
// Threads:
//   fetch threads      pull batches from the durable consumer, bounded by free in-flight capacity
//                      and room in the waiting area, and place each job. Two of them, each with
//                      its own pull subscription, when max_in_flight holds two batches.
//   waiting dispatcher hands jobs held in the waiting area to their plugin once their
//                      destination is below its share again.
//   plugin lanes       one thread per plugin. Calls into a plugin (xDestination, xDeliver) are
//                      serialised per plugin, as the SDK promises, by its lane's call_mu: a fetch
//                      thread or the waiting dispatcher calls in directly when no other thread is
//                      inside that plugin and its lane is empty; otherwise, and for 10 s after a
//                      call took longer than kSlowCallNs, the job goes to the plugin's lane and
//                      the lane's thread hands it over. So one slow plugin holds up only its own
//                      jobs (and, once, the thread that met its first slow call).
//   plugin threads     call complete(); OK, RETRY and DEFER are settled right there (ack, nak
//                      with delay and the attempt count's publish are non-blocking); dead-letter
//                      work is queued.
//   dead-letter threads (dead_letter.workers) write dead-letter records (blocking), then term.
//   watchdog thread    sends in-progress acks for jobs held long, times out plugins that never
//                      complete, prunes idle destinations.
//   ack thread         sends the queued acks of jobs completed on plugins' threads in bursts
//                      when no fetch thread took them along with its pull request (ack_loop), so
//                      nats-server reads many acks per socket read however spread the completions.
//
// Locks. No lock is common to every job: per job the hot path takes its slot's lock (a few times),
// its destination's shard lock (admission, completion) and its lane's call_mu; the counts are
// atomics, and free slots, acks and fetched-ahead jobs move between threads through a lock-free
// stack and queues (mpmc_queue.hpp). docs/architecture.md, "Locks", has the whole picture.
//   Gate::mu (one per slot)   the slot: which Delivery object it holds (slots_[i]), that
//                             Delivery's id, state, active/ahead flags, instance and the fields a
//                             plugin's `started` writes. Every write of a slot's state is made
//                             under it; a thread reading another thread's slot takes it.
//   DestinationShard::mu      its Destinations (a destination key's hash picks the shard).
//   mu_ (the table lock)      the cold paths: parked (abandoned_) and replaced (retired_)
//                             deliveries, the fetch threads' scan timing and their wait for
//                             capacity. Taken per fetched batch and per wake-up of a sleeping
//                             fetch thread, never per job; route_delivery_table_lock_* count it.
// Lock order (a thread holding one may take those to its right, never the reverse):
//   Lane::call_mu  ->  mu_  ->  DestinationShard::mu  ->  Gate::mu  ->  Delivery::msg_mu
//   At most one shard lock and one Gate::mu at a time. Lane::q_mu, dl_mu_, dispatch_mu_,
//   ack_mu_, retry_mu_, wd_mu_ and rebind_mu_ are leaves: held with no other lock taken inside.
//   ActivePlugin::health_mu (plugin_host.hpp) is held across xHealth and the xDestroy of a
//   replaced instance only, with no other host lock held.
// A reload that re-creates a plugin holds its lane's call_mu (hold_calls), then takes mu_.
// Every ack, nak, term and in-progress of a message happens under its Delivery::msg_mu: nats.c's
// per-message ack flag is not synchronised, and the watchdog's in-progress may meet a plugin
// thread's ack.
#pragma once

#include <nats/nats.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "attempt_store.hpp"
#include "config.hpp"
#include "crash_report.hpp"
#include "dead_letter.hpp"
#include "destination.hpp"
#include "job.hpp"
#include "metrics.hpp"
#include "mpmc_queue.hpp"
#include "nats_client.hpp"
#include "plugin_host.hpp"
#include "retry_policy.hpp"
#include "thread_annotations.hpp"

namespace rd {

class Consumer final : public CompletionHandler {
 public:
  // `attempts` may be null or unavailable: attempts are then counted by JetStream.
  Consumer(const Config& config, NatsClient& nats, PluginSet& plugins, DeadLetterSink& sink,
           Metrics& metrics, AttemptStore* attempts = nullptr);
  ~Consumer() override;

  // Binds the pull subscriptions using the server's consumer settings and starts all threads.
  void start(const ConsumerSettings& settings);
  // Stops fetching, waits up to `grace_ms` for in-flight deliveries, naks the rest without delay.
  void shutdown(int64_t grace_ms);

  bool bound() const { return bound_.load(); }
  // The consumer's JetStream max_deliver (a safety net above nats.max_deliver), -1 = none.
  int64_t jetstream_max_deliver() const { return js_max_deliver_.load(); }

  // Reload: gives a plugin that is about to be published (PluginSet::add) its lane, so the
  // lane exists before any thread can find the plugin. Call after start(), from one thread.
  void add_lane(ActivePlugin& plugin);

  // Reload: keeps every further call into `plugin` (xDestination, xDeliver) waiting, once a call
  // under way has returned (its lane's call_mu). Waits up to `wait_ms` for that call; false when
  // it did not return (a plugin stuck in a call: the reload must not wait for it, nor hold up a
  // SIGTERM behind it). After true, call release_calls() for the plugin.
  bool hold_calls(ActivePlugin& plugin, int64_t wait_ms);
  void release_calls(ActivePlugin& plugin);
  // Reload of a running plugin's section, between hold_calls() and release_calls():
  // `instance` (created by PluginSet::create_instance) takes the plugin's new jobs from here; the
  // old instance keeps completing the jobs it holds (their delivery ids are the host's) and the
  // watchdog destroys it once none is left (reap_retired). Call after start(), from one thread.
  void replace_instance(ActivePlugin& plugin, void* instance);
  // Reload: applies the delivery limits of `next` that can change at run time (reload.cpp names
  // them); the keys that size the in-flight table (delivery.max_in_flight, delivery.max_waiting)
  // keep the values of start-up.
  void apply_limits(const Config& next);
  int64_t shutdown_grace_ms() const {
    return limits_.shutdown_grace_ms.load(std::memory_order_relaxed);
  }
  // Instances replaced by a reload and still completing jobs (for tests and /health).
  size_t draining_instances() const;

  void on_complete(uint64_t delivery_id, const rd_result* result,
                   const rd_host* from) noexcept override;
  bool on_started(uint64_t delivery_id) noexcept override;

  // For /health: destinations whose circuit is open or that are failing, and the waiting area.
  struct DestinationView {
    std::string key;
    bool open = false;
    int64_t open_since_ms = 0;
    int64_t failing_since_ms = 0;
    int consecutive_failures = 0;
    std::string last_error;
    int in_flight = 0;
    size_t waiting = 0;
    uint64_t deferrals = 0;
  };
  std::vector<DestinationView> troubled_destinations() const;

 private:
  enum class State : uint8_t { free, waiting, delivering, settling };
  // Why a job goes back without an attempt spent.
  enum class Deferral { unavailable, circuit_open, saturated, plugin_busy };

  struct DestinationShard;
  // A slot's job. The fields marked "(slot lock)" are written under its slot's Gate::mu, and read
  // under it by any thread but the one settling the job; the rest belong to the thread that
  // placed or is settling it. While parked in abandoned_, its state is guarded by mu_.
  struct Delivery {
    uint64_t id = 0;            // (slot lock)
    uint32_t slot = 0;          // its index in slots_
    bool activated = false;     // has its id and counts in active_ (see activate())
    State state = State::free;  // (slot lock)
    bool active = false;        // counted in active_ (else in waiting_count_ while waiting)
    bool ahead = false;         // fetched ahead, waiting for in-flight capacity (in ahead_count_)
    natsMsg* msg = nullptr;
    std::mutex msg_mu;           // every ack/nak/term/in-progress of msg
    uint32_t deliveries = 1;     // JetStream's delivery count
    uint32_t failed_before = 0;  // attempts that failed before this one (the host's count)
    bool failed_known = false;   // failed_before read (or known to be 0)
    uint64_t stream_seq = 0;
    uint64_t settled_seq = 0;  // the last job settled in this slot (slot lock)
    int64_t published_ms = 0;
    std::string subject;
    std::string message_id;
    JobParse parse;
    ActivePlugin* plugin = nullptr;
    void* instance = nullptr;  // the plugin instance it was handed to (slot lock)
    size_t dest_index = 0;
    Destination* dest = nullptr;
    DestinationShard* shard = nullptr;  // dest's shard
    bool probe = false;                 // this job tests an open circuit
    // While the job is delivering, `started` (on_started) writes these four under its slot's
    // Gate::mu, without mu_: read them under the gate, or after close_gate().
    bool waits_for_start = false;  // the plugin reports started; until then no timeout runs
    bool withdrawn = false;        // refused at `started` (circuit opened): its DEFER is ours
    bool taken_back = false;       // timed out while queued (queue_timeout): parked, then refused
    rd_job job{};
    int64_t started_ns = 0;
    int64_t sent_ns = 0;      // when the plugin reported it started (on the wire); 0 = not told
    int64_t progress_ns = 0;  // last in-progress ack (or start)
    int64_t deadline_ns = 0;
    std::string reason;       // dead-letter reason
    uint32_t attempts = 0;    // attempts in the dead-letter record
    int64_t retry_at_ns = 0;  // dead-letter write retry time when held
  };

  // Per slot: its lock (see the top of this file), the generation that makes its delivery ids
  // unique, and the delivery a plugin's `started` may act on: set while the slot's job is
  // delivering (in mark_delivering), cleared when it stops (completed, timed out, handed back at
  // shutdown). Never replaced, unlike a slot's Delivery (see abandoned_).
  struct Gate {
    std::mutex mu;
    uint32_t generation = 0;
    uint64_t id = 0;
    Delivery* d = nullptr;  // null: no delivery of this slot may be started
  };
  Gate& gate_of(uint64_t id) const { return gates_[static_cast<uint32_t>(id & 0xffffffffu)]; }
  static void close_gate(Gate& g, uint64_t id) {  // g.mu held
    if (g.id == id) g.d = nullptr;
  }

  // Destinations in shards by key hash, each with its own lock: a job's admission and completion
  // lock only its destination's shard.
  static constexpr size_t kDestinationShards = 16;
  struct DestinationShard {
    mutable Mutex mu;
    DestinationTable table GUARDED_BY(mu);
  };
  DestinationShard& shard_for(std::string_view key);

  // A plugin's lane (see the thread list at the top).
  struct Lane {
    struct Item {
      Delivery* d;
      bool admitted;  // from the waiting area: admitted already, only xDeliver is left
    };
    ActivePlugin* plugin = nullptr;
    std::mutex call_mu;  // held across every call into the plugin
    std::mutex q_mu;
    std::condition_variable q_cv;
    std::deque<Item> queue;  // guarded by q_mu
    bool stop = false;       // guarded by q_mu
    std::atomic<size_t> queued{0};
    std::atomic<int64_t> slow_until_ns{0};
    std::atomic<int64_t> call_started_ns{0};  // of the call in progress; 0 = none
    std::atomic<uint64_t> call_seq{0};        // its job's stream sequence
    std::atomic<bool> call_reported{false};   // the watchdog logged it as slow
    std::atomic<int64_t> last_slow_log_ns{INT64_MIN / 2};
    std::atomic<uint64_t> slow_calls{0};
    std::thread thread;
  };
  static constexpr int64_t kSlowCallNs = 100'000'000;     // a call this long is slow
  static constexpr int64_t kSlowLaneNs = 10'000'000'000;  // then its jobs use its lane this long

  // consumer.cpp
  void fetch_loop(size_t index);
  // Shutdown: every slot in `state` becomes the caller's to hand back (settling, gate closed).
  void take_all_in(State state, std::vector<Delivery*>& out);
  bool subscribe(size_t index);
  bool fetch_allowed(int64_t now_ns, int& batch) const;
  int fetch_capacity() const;  // the free capacity fetch_allowed() counts
  // Wakes the fetch threads if one sleeps (the check costs one atomic load).
  void wake_fetch_if_allowed();
  void wake_fetch();
  // dispatch.cpp
  // `slot`: a free slot the fetch thread took for this job (reserved, not yet in use).
  void place(natsMsg* msg, uint32_t slot, bool& delivered, bool& overflowed);
  Delivery* owned_slot(uint32_t index) NO_THREAD_SAFETY_ANALYSIS;
  // Puts a placed job's slot in use: its id, state and count in active_ (was reserved). Counted
  // in active_ before it leaves reserved_ (the counts over-estimate, never under-estimate, what
  // is held). `unreserve` false: the caller counts it where it comes to rest (admit) and then
  // calls reserved_.fetch_sub itself, so a fetch thread never sees room the job is about to take.
  void activate(Delivery& d, bool unreserve = true);
  // An in-flight slot, if fewer than max_in_flight are taken (the waiting dispatcher's).
  bool take_in_flight();
  // To the plugin directly when it is free, else through its lane.
  // `now`: the caller's clock reading, reused (one clock read per job on the direct path).
  void hand_to_plugin(Delivery& d, bool admitted, int64_t now, bool& delivered, bool& overflowed);
  // With lane.call_mu held: admit (unless admitted) and deliver, timing the call from `start`.
  void call_plugin(Lane& lane, Delivery& d, bool admitted, int64_t start, bool& delivered,
                   bool& overflowed);
  void admit(Delivery& d, int64_t now, bool& delivered, bool& overflowed);
  // Whether a destination is at its share. A fast one (its jobs complete within kBorrowLatencyMs,
  // so its window is all that limits it) may borrow idle slots beyond it, as long as a share of
  // the in-flight slots stays free for the others; a slow one may not (what it borrowed would be
  // held for long). `extra` counts a job not yet in active_.
  static constexpr double kBorrowLatencyMs = 100;
  static bool fast(const Destination& dest) {
    return dest.latency_ms >= 0 && dest.latency_ms <= kBorrowLatencyMs;
  }
  // The caller holds dest's shard lock; active_ is read as it is (the idle slots a fast
  // destination may borrow are approximate).
  bool over_share(const Destination& dest, int extra) const {
    const int share = share_.load(std::memory_order_relaxed);
    if (dest.in_flight < share) return false;
    return !fast(dest) || config_.delivery.max_in_flight - active_.load() - extra < share;
  }
  // The job is the plugin's from here: its attempt, state and deadlines (under its slot lock).
  void mark_delivering(Delivery& d, int64_t now);
  void deliver(Delivery& d, int64_t now);  // mark_delivering, then call_deliver
  void call_deliver(Delivery& d);          // xDeliver
  void lane_loop(Lane& lane);
  bool enter_briefly(Lane& lane);
  void report_slow_call(Lane& lane, int64_t took_ns, uint64_t seq, bool still_running);
  void waiting_loop();
  // The job `id` names, taken out of the waiting area (ahead: out of the fetched-ahead queue) and
  // counted active; null when its slot moved on since the id was queued.
  Delivery* take_waiting(uint64_t id, bool ahead);
  // Wakes the waiting dispatcher, unless it was signalled already and has not run since.
  void signal_waiting();
  void reject(Delivery& d, std::string reason);
  std::string_view destination_key(const ActivePlugin& plugin, const Delivery& d,
                                   bool& named) const;
  // settle.cpp
  // Returns whether the waiting dispatcher should be signalled (signal_waiting).
  bool finish_at_destination(Delivery& d, int32_t outcome, const std::string& reason,
                             bool timed_out = false);
  void settle(Delivery& d, int32_t outcome, int64_t retry_after_ms, const char* reason,
              size_t reason_len, Outcome label);
  void defer(Delivery& d, Deferral why, int64_t suggested_ms, std::string reason);
  void to_dead_letter(Delivery& d, std::string reason, uint32_t attempts);
  // Frees d's slot. ack: the job was delivered and its ack is queued (sent in a burst).
  void release(Delivery& d, bool ack = false);
  void queue_ack(natsMsg* msg, uint64_t stream_seq);
  void queue_spent(natsMsg* msg);
  // A settled job's outcome and duration in its destination type's metrics.
  void count_settled(size_t dest_index, int64_t started_ns, Outcome label);
  void destroy_spent();
  // Acks leave in bursts: release(d, true) queues the message; a fetch thread sends the queue
  // ahead of its next pull request, the ack thread once the oldest is kAckWindowMs old or
  // kAckBurst are queued (see ack_loop).
  struct PendingAck {
    natsMsg* msg;
    uint64_t stream_seq;  // for the log, should the ack fail
  };
  void ack_loop();
  void send_acks(std::vector<PendingAck>& burst);  // acks, then destroys (grouped), and clears
  void take_acks(std::vector<PendingAck>& out);    // appends every queued ack
  bool given_up(const Delivery& d) const;
  bool last_jetstream_delivery(const Delivery& d) const;
  void log_transition(const std::string& key, CircuitBreaker::Transition t,
                      const CircuitBreaker& breaker);
  // dead_letter_queue.cpp
  void dead_letter_loop();
  void dead_letter_one(Delivery& d);
  DeadLetterRecord make_record(const Delivery& d) const;
  // watchdog.cpp
  void watchdog_loop();
  // Destroys replaced instances that hold no job any more (all: every one, at shutdown).
  void reap_retired(bool all);
  // Jobs handed to `instance` and neither completed nor timed out (a scan of the slots).
  int jobs_of(const void* instance) const;
  // share_ and what follows from it, for delivery.max_in_flight_per_destination.
  void set_share(int per_destination);

  const Config& config_;
  NatsClient& nats_;
  PluginSet& plugins_;
  DeadLetterSink& sink_;
  Metrics& metrics_;
  AttemptStore* attempts_;
  mutable std::mutex retry_mu_;
  RetryPolicy retry_;  // nats.backoff, nats.max_backoff (a reload replaces it; under retry_mu_)
  ConsumerSettings settings_;               // as read at start()
  std::atomic<int64_t> js_max_deliver_{0};  // the server's, updated when the consumer is rebound
  const int64_t max_attempts_;              // nats.max_deliver; -1 = unlimited

  // Delivery limits a reload may change (apply_limits). Each is read on its own with a relaxed
  // load (a plain load on the hot path, no lock): a job sees the old value or the new one.
  struct Limits {
    std::atomic<int64_t> timeout_ms{0};
    std::atomic<int64_t> queue_timeout_ms{0};
    std::atomic<int64_t> give_up_after_ms{0};
    std::atomic<int64_t> defer_delay_ms{0};
    std::atomic<int64_t> max_defer_delay_ms{0};
    std::atomic<int64_t> max_backoff_ms{0};
    std::atomic<int64_t> max_job_bytes{0};
    std::atomic<int64_t> shutdown_grace_ms{0};
    std::atomic<int64_t> circuit_probe_interval_ms{0};
  } limits_;
  void store_limits(const Config& config);

  std::vector<natsSubscription*> subs_;  // one pull subscription per fetch thread
  std::mutex rebind_mu_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> bound_{false};

  // By ActivePlugin::index. Fixed capacity: a reload appends a lane (add_lane) while the other
  // threads use the others; entries below lane_count_ never change until the destructor. A
  // thread that found a plugin (PluginSet::find, acquire) sees its lane, made before it was
  // published.
  std::array<std::unique_ptr<Lane>, PluginSet::kMaxPlugins> lanes_;
  std::atomic<size_t> lane_count_{0};

  // In-flight table: fixed slots (max_in_flight + max_waiting + fetch_ahead_); a delivery id is
  // (the slot's generation << 32 | slot) so stale or duplicate completions are recognised and
  // ignored. A slot is the Delivery in slots_ and its Gate; the counts below are atomics, changed
  // by the thread that moves a job between them (no lock keeps them consistent with each other:
  // each is exact on its own, and the decisions read from several are heuristics with a bound
  // kept elsewhere, e.g. in-flight tokens are taken with one atomic step each).
  mutable Mutex mu_;
  std::condition_variable_any slot_freed_;        // the fetch threads wait here (with mu_)
  std::vector<std::unique_ptr<Delivery>> slots_;  // slots_[i] under gates_[i].mu
  uint32_t slot_count_ = 0;                       // slots_.size(), fixed at construction
  std::unique_ptr<Gate[]> gates_;                 // one per slot
  IndexStack free_;                               // free slots, the last freed on top
  std::atomic<int> active_{0};                    // handed to a plugin, or being settled
  std::atomic<int> waiting_count_{0};             // held in the waiting area
  std::atomic<int> reserved_{0};                  // fetched, not placed yet
  // Fetched ahead: jobs placed while every in-flight slot was taken, waiting (oldest first) for the
  // waiting dispatcher to hand them on as slots free up (see fetch_allowed()). Ids; an id whose
  // slot moved on since is skipped. Room for two per slot (a shutdown leaves stale ones).
  MpmcQueue<uint64_t> ahead_queue_;
  std::atomic<int> ahead_count_{0};
  // The waiting dispatcher's wake-up: set (once) by whoever wants it to run, cleared when it runs.
  std::atomic<bool> waiting_ready_{false};
  std::mutex dispatch_mu_;  // the dispatcher's wait only
  std::condition_variable waiting_cv_;
  // Fetch threads asleep in slot_freed_, and whether one was woken since (wake_fetch).
  std::atomic<int> fetch_sleepers_{0};
  std::atomic<bool> fetch_woken_{false};
  std::atomic<int64_t> next_scan_ns_{0};
  int64_t scan_backoff_ns_ GUARDED_BY(mu_) = 0;
  std::unique_ptr<DestinationShard[]> shards_;
  int fetch_low_water_ = 1;    // free in-flight capacity that wakes the fetch threads
  int fetch_ahead_ = 1;        // jobs that may be fetched beyond the in-flight slots
  int ahead_wake_ = 1;         // free in-flight slots that wake the dispatcher for them
  int waiting_low_water_ = 1;  // room in the waiting area that wakes them
  // delivery.max_in_flight_per_destination and what follows from it (set_share).
  std::atomic<int> share_{1};
  // Fetched jobs a plugin's lane holds: all slots but one share (read under the lane's q_mu).
  std::atomic<int> lane_limit_{1};
  // A destination's in-flight count that wakes the waiting dispatcher.
  std::atomic<int> share_low_water_{1};
  // Jobs one destination may hold in the waiting area: all of it but a reserve for the others, so
  // a burst of another destination still finds room while a slow one's backlog fills the rest.
  std::atomic<int> waiting_per_destination_{1};

  // Instances a reload replaced; the watchdog destroys each once no slot holds a job of it.
  struct Retired {
    ActivePlugin* plugin;
    void* instance;
  };
  std::vector<Retired> retired_ GUARDED_BY(mu_);

  std::atomic<size_t> returned_undispatched_{0};  // fetched, then nak'd at shutdown
  // Settled messages not destroyed yet (see release()); when full, a message is destroyed at once.
  MpmcQueue<natsMsg*> spent_;
  // Delivered jobs whose ack has not been sent yet (see ack_loop). Until start() and once shutdown
  // has stopped the ack thread, acks_stopped_ is set and release() sends them itself. When the
  // queue is full, an ack is sent at once.
  MpmcQueue<PendingAck> acks_;
  std::atomic<size_t> acks_queued_{0};  // counted before the push, uncounted after the pop
  std::atomic<bool> acks_stopped_{true};
  std::atomic<bool> acker_idle_{false};    // the ack thread waits for a first ack
  std::atomic<int64_t> acks_since_ns_{0};  // when the oldest queued ack was queued
  std::mutex ack_mu_;                      // the ack thread's wait only
  std::condition_variable ack_cv_;
  // Deliveries a plugin never completed (timed out): their job data must stay valid for the plugin
  // (the SDK promises it until complete), so the slot gets a fresh Delivery and the old one is kept
  // here until its late completion arrives.
  std::map<uint64_t, std::unique_ptr<Delivery>> abandoned_ GUARDED_BY(mu_);
  // Per slot, the plugin holding its job, for crash reports (written with relaxed atomics: the
  // signal handler reads it without locks).
  std::unique_ptr<crash::InFlightSlot[]> crash_slots_;

  std::mutex dl_mu_;
  std::condition_variable dl_cv_;
  std::deque<Delivery*> dl_queue_;
  bool dl_stop_ = false;

  std::mutex wd_mu_;
  std::condition_variable wd_cv_;

  std::vector<std::thread> fetch_threads_;
  std::thread waiting_thread_;
  std::thread watchdog_thread_;
  std::thread ack_thread_;
  std::vector<std::thread> dl_threads_;
};

}  // namespace rd
