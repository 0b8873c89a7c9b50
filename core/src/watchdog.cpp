// The watchdog: keeps jobs the host holds alive with in-progress acks (waiting for their
// destination, queued in a plugin, being dead-lettered), times out plugins that never complete,
// and prunes idle destinations (see consumer.hpp).
#include <algorithm>
#include <chrono>

#include "consumer.hpp"
#include "consumer_internal.hpp"
#include "duration.hpp"
#include "logging.hpp"

namespace rd {

void Consumer::watchdog_loop() {
  crash::thread_init();
  const int64_t ack_wait_ns = settings_.ack_wait_ms * 1'000'000;
  const int64_t progress_every_ns = std::max<int64_t>(ack_wait_ns / 3, 200'000'000);
  struct TimedOut {
    uint64_t id;
    bool queued;  // never started by a plugin that reports starts
  };
  std::vector<TimedOut> timed_out;
  int64_t last_prune = now_ns();
  while (true) {
    {
      std::unique_lock<std::mutex> lock(wd_mu_);
      wd_cv_.wait_for(lock, std::chrono::milliseconds(200), [&] { return stopping_.load(); });
    }
    const bool stopping = stopping_.load();
    const int64_t now = now_ns();
    timed_out.clear();
    const size_t lanes = lane_count_.load(std::memory_order_acquire);
    for (size_t i = 0; i < lanes; ++i) {
      Lane* lane = lanes_[i].get();
      // A call into a plugin that is taking long: the plugin's jobs go through its lane while it
      // lasts (and kSlowLaneNs after), so the threads that meet them are not held up.
      const int64_t started = lane->call_started_ns.load(std::memory_order_acquire);
      if (started == 0 || now - started <= kSlowCallNs) continue;
      lane->slow_until_ns.store(now + kSlowLaneNs, std::memory_order_relaxed);
      if (!lane->call_reported.exchange(true)) {
        report_slow_call(*lane, now - started, lane->call_seq.load(std::memory_order_relaxed),
                         true);
      }
    }
    for (uint32_t i = 0; i < slot_count_; ++i) {
      std::lock_guard<std::mutex> gate(gates_[i].mu);
      Delivery& d = *slots_[i];
      if (d.state == State::free || d.msg == nullptr) continue;
      if (d.state == State::delivering && now > d.deadline_ns) {
        timed_out.push_back({d.id, d.waits_for_start});
        continue;
      }
      if (now - d.progress_ns > progress_every_ns) {
        // Keeps JetStream from redelivering a job still in hand. Under msg_mu: a plugin thread
        // may be acking this very message.
        std::lock_guard<std::mutex> msg_lock(d.msg_mu);
        natsMsg_InProgress(d.msg, nullptr);
        d.progress_ns = now;
      }
    }
    if (now - last_prune > 10'000'000'000) {
      for (size_t i = 0; i < kDestinationShards; ++i) {
        MutexLock lock(shards_[i].mu);
        shards_[i].table.prune(now);
      }
      last_prune = now;
    }
    for (const TimedOut& t : timed_out) {
      Delivery* d;
      std::string plugin;
      bool wake_waiting = false;
      const std::string reason =
          t.queued ? "plugin held the job queued without sending it for delivery.queue_timeout (" +
                         format_duration_ms(limits_.queue_timeout_ms.load()) + ")"
                   : "plugin did not complete within delivery.timeout (" +
                         format_duration_ms(limits_.timeout_ms.load()) + ")";
      {
        MutexLock lock(mu_);  // abandoned_
        {
          Gate& g = gate_of(t.id);
          std::lock_guard<std::mutex> gate(g.mu);
          auto& slot = slots_[static_cast<uint32_t>(t.id & 0xffffffffu)];
          d = slot.get();
          if (d->id != t.id || d->state != State::delivering) continue;  // completed meanwhile
          // The plugin may have reported it started since the scan: then it is on the wire, with
          // a new deadline, and taking it back as queued would defer a job being sent (JetStream
          // would hand it out again: a duplicate). Checked and closed in one hold of the slot
          // lock, so no `started` comes in between.
          if (d->waits_for_start != t.queued || now_ns() <= d->deadline_ns) continue;
          close_gate(g, t.id);
          d->state = State::settling;
          d->instance = nullptr;  // a replaced instance holds one job fewer (reap_retired)
          // Taken back while queued: `started` tells the plugin not to send it (see on_started).
          d->taken_back = t.queued;
          // The plugin may still read this job's data: park it and give the slot a fresh object.
          abandoned_[t.id] = std::move(slot);
          slot = std::make_unique<Delivery>();
          slot->id = t.id;
          slot->state = State::settling;  // not free until the parked delivery is released
        }
        plugin = d->plugin != nullptr ? d->plugin->info.name : "?";
        wake_waiting = finish_at_destination(*d, t.queued ? RD_OUTCOME_DEFER : RD_OUTCOME_RETRY,
                                             "plugin '" + plugin + "': " + reason,
                                             /*timed_out=*/true);
        constexpr size_t kMaxAbandoned = 100'000;
        if (abandoned_.size() > kMaxAbandoned) {
          // A plugin that never completes anything; bound memory (its data for the oldest goes).
          for (auto it = abandoned_.begin();
               it != abandoned_.end() && abandoned_.size() > kMaxAbandoned;) {
            it = it->second->state == State::free ? abandoned_.erase(it) : std::next(it);
          }
        }
      }
      if (wake_waiting) signal_waiting();
      const std::string text = "plugin '" + plugin + "': " + reason;
      log::error("plugin_timeout", {log::kv("plugin", plugin), log::kv("message_id", d->message_id),
                                    log::kv("queued", t.queued)});
      settle(*d, t.queued ? RD_OUTCOME_DEFER : RD_OUTCOME_RETRY, -1, text.data(), text.size(),
             Outcome::timeout);
    }
    // Instances a reload replaced that hold no job any more.
    if (!stopping) reap_retired(/*all=*/false);
    if (stopping) break;
  }
}

}  // namespace rd
