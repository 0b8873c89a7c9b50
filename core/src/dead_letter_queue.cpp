// The dead-letter queue: records are written (blocking) on dead_letter.workers threads, and only
// then is the job termed. A failed write never loses the job (see consumer.hpp).
#include <chrono>

#include "consumer.hpp"
#include "consumer_internal.hpp"
#include "logging.hpp"

namespace rd {
namespace {
Throttle g_term_error_log(5000);
}

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
  r.attempts = d.attempts;
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
    const bool last = last_jetstream_delivery(d);
    const int64_t delay = retry_.delay_ms(d.deliveries, 1000);
    log::error("dead_letter_failed",
               {log::kv("sink", sink_.name()), log::kv("message_id", d.message_id),
                log::kv("error", e.what()),
                log::kv("action", last ? "holding the job and retrying the dead-letter write"
                                       : "nak'd with delay; the job is not lost")});
    if (!last) {
      // JetStream redelivers it later; the store sends it straight back here, not to its plugin.
      if (attempts_ != nullptr) attempts_->record_dead_letter(d.stream_seq, d.attempts, d.reason);
      {
        std::lock_guard<std::mutex> lock(d.msg_mu);
        natsMsg_NakWithDelay(d.msg, delay, nullptr);
      }
      release(d);
      return;
    }
    // JetStream will not redeliver past its max_deliver, so keep the job (kept alive with
    // in-progress acks by the watchdog) and retry the write ourselves.
    d.retry_at_ns = now_ns() + delay * 1'000'000;
    return;
  }
  natsStatus s;
  {
    std::lock_guard<std::mutex> lock(d.msg_mu);
    s = natsMsg_Term(d.msg, nullptr);
  }
  if (s != NATS_OK && g_term_error_log.allow()) {
    log::warn("term_failed",
              {log::kv("message_id", d.message_id), log::kv("error", natsStatus_GetText(s)),
               log::kv("effect", "redelivered later; the dead-letter record is de-duplicated")});
  }
  if (attempts_ != nullptr && d.deliveries > 1) attempts_->forget(d.stream_seq);
  metrics_.dead_lettered.fetch_add(1, std::memory_order_relaxed);
  metrics_.destination(d.dest_index).dead_lettered.fetch_add(1, std::memory_order_relaxed);
  log::warn("dead_lettered",
            {log::kv("message_id", d.message_id), log::kv("tenant_id", d.parse.job.tenant_id),
             log::kv("destination_type", d.parse.job.destination_type),
             log::kv("attempts", d.attempts), log::kv("reason", d.reason)});
  release(d);
}

void Consumer::dead_letter_loop() {
  crash::thread_init();
  std::vector<Delivery*> held;  // writes that failed on the last delivery, retried in time
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
      Delivery* h = held[i];
      if (h->retry_at_ns > now || stopping_) {
        ++i;
        continue;
      }
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
    {
      std::lock_guard<std::mutex> lock(h->msg_mu);
      natsMsg_Nak(h->msg, nullptr);
    }
    release(*h);
  }
}

}  // namespace rd
