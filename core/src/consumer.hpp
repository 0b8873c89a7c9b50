// The delivery pipeline: fetch -> parse -> dispatch -> (plugin delivers) -> settle.
//
// Threads:
//   fetch threads     pull batches from the durable consumer (bounded by free in-flight slots
//                     not yet promised to fetched jobs), then, one at a time (dispatch_mu_, so
//                     xDeliver calls are serialised as the SDK promises), parse each job and call
//                     the plugin's xDeliver. Two of them, each with its own pull subscription,
//                     when max_in_flight holds two batches: one thread's pull is on the wire while
//                     the other hands its batch out.
//   plugin threads    call complete(); OK and RETRY are settled right there (ack / nak-with-delay
//                     are non-blocking publishes); dead-letter work is queued.
//   dead-letter threads (delivery.workers) write dead-letter records (blocking) and then term.
//   watchdog thread   sends in-progress acks for long deliveries and times out plugins that
//                     never complete.
#pragma once

#include <nats/nats.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "config.hpp"
#include "dead_letter.hpp"
#include "job.hpp"
#include "metrics.hpp"
#include "nats_client.hpp"
#include "plugin_host.hpp"
#include "retry_policy.hpp"

namespace rd {

class Consumer final : public CompletionHandler {
 public:
  Consumer(const Config& config, NatsClient& nats, PluginSet& plugins, DeadLetterSink& sink,
           Metrics& metrics);
  ~Consumer() override;

  // Binds the pull subscription using the server's consumer settings and starts all threads.
  void start(const ConsumerSettings& settings);
  // Stops fetching, waits up to `grace_ms` for in-flight deliveries, naks the rest without delay.
  void shutdown(int64_t grace_ms);

  bool bound() const { return bound_.load(); }
  int64_t max_deliver() const { return max_deliver_.load(); }

  void on_complete(uint64_t delivery_id, const rd_result* result) noexcept override;
  void on_started(uint64_t delivery_id) noexcept override { (void)delivery_id; }

 private:
  enum class State : uint8_t { free, delivering, settling };

  struct Delivery {
    uint64_t id = 0;
    State state = State::free;
    natsMsg* msg = nullptr;
    uint32_t attempt = 0;
    uint64_t stream_seq = 0;
    std::string subject;
    std::string message_id;
    JobParse parse;
    ActivePlugin* plugin = nullptr;
    size_t dest_index = 0;
    rd_job job{};
    int64_t started_ns = 0;
    int64_t progress_ns = 0;  // last in-progress ack (or start)
    int64_t deadline_ns = 0;
    std::string reason;       // dead-letter reason
    int64_t retry_at_ns = 0;  // dead-letter write retry time when held
  };

  void fetch_loop(size_t index);
  void dispatch(natsMsg* msg);
  void reject(Delivery& d, std::string reason);
  void settle(Delivery& d, int32_t outcome, int64_t retry_after_ms, const char* reason,
              size_t reason_len, Outcome label);
  void release(Delivery& d);
  void destroy_spent();
  void dead_letter_loop();
  void dead_letter_one(Delivery& d);
  void watchdog_loop();
  bool subscribe(size_t index);
  DeadLetterRecord make_record(const Delivery& d) const;
  Delivery* slot_for(uint64_t id);

  const Config& config_;
  NatsClient& nats_;
  PluginSet& plugins_;
  DeadLetterSink& sink_;
  Metrics& metrics_;
  RetryPolicy retry_;
  ConsumerSettings settings_;            // as read at start()
  std::atomic<int64_t> max_deliver_{0};  // the server's, updated when the consumer is rebound

  std::vector<natsSubscription*> subs_;  // one pull subscription per fetch thread
  std::mutex rebind_mu_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> bound_{false};

  // In-flight table: fixed slots; a delivery id is (generation << 32 | slot) so stale or duplicate
  // completions are recognised and ignored.
  std::mutex mu_;
  std::condition_variable slot_freed_;
  std::vector<std::unique_ptr<Delivery>> slots_;
  std::vector<uint32_t> free_;
  uint32_t generation_ = 0;
  size_t fetch_low_water_ = 1;  // free slots that wake the fetch thread (see fetch_loop)
  size_t reserved_ = 0;         // free slots promised to fetched jobs not dispatched yet

  std::mutex dispatch_mu_;                        // held while a fetch thread hands out its batch
  std::atomic<size_t> returned_undispatched_{0};  // fetched, then nak'd at shutdown
  // Settled messages not destroyed yet (see release()); guarded by mu_.
  std::vector<natsMsg*> spent_;
  std::mutex spent_taken_mu_;
  std::vector<natsMsg*> spent_taken_;  // destroy_spent()'s buffer, guarded by spent_taken_mu_
  // Deliveries a plugin never completed (timed out): their job data must stay valid for the plugin
  // (the SDK promises it until complete), so the slot gets a fresh Delivery and the old one is kept
  // here until its late completion arrives.
  std::map<uint64_t, std::unique_ptr<Delivery>> abandoned_;

  std::mutex dl_mu_;
  std::condition_variable dl_cv_;
  std::deque<Delivery*> dl_queue_;
  bool dl_stop_ = false;

  std::mutex wd_mu_;
  std::condition_variable wd_cv_;

  std::vector<std::thread> fetch_threads_;
  std::thread watchdog_thread_;
  std::vector<std::thread> dl_threads_;
};

}  // namespace rd
