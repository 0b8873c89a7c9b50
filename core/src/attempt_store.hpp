// The host's own count of real attempts per job, kept in a JetStream key-value bucket so that it
// survives restarts and is shared by every instance on the durable consumer.
//
// JetStream's delivery count also counts deferrals (a nak that only waits for the destination),
// redeliveries after a crash and shutdown hand-backs, so it cannot say how many times a job's
// destination was really tried. The bucket holds, per stream sequence, the number of attempts that
// failed. It costs nothing on the path of a job that succeeds at its first delivery:
//   - read (one direct get) only for a redelivered job about to be tried again;
//   - written only when an attempt fails and the job goes back for a retry;
//   - removed when a job that has an entry settles (delivered or dead-lettered).
// Writes and removals are plain publishes on the bucket's subject (no round trip); the bucket's
// TTL (give_up_after plus a margin) bounds what a lost removal leaves behind, and its byte limit
// bounds memory. When the bucket cannot be used the host falls back to JetStream's delivery count
// (an upper bound: a job may then be dead-lettered early, never lost) and says so.
#pragma once

#include <nats/nats.h>

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>

#include "config.hpp"

namespace rd {

class AttemptStore {
 public:
  AttemptStore(const Config& config, natsConnection* nc, jsCtx* js);
  ~AttemptStore();
  AttemptStore(const AttemptStore&) = delete;
  AttemptStore& operator=(const AttemptStore&) = delete;

  // Binds to the bucket, creating it when missing. Logs and returns false when impossible.
  bool open();
  bool available() const { return kv_ != nullptr; }
  const std::string& bucket() const { return bucket_; }

  struct Entry {
    uint32_t failed = 0;       // attempts that failed
    bool dead_letter = false;  // settled as a dead letter whose record could not be written yet
    std::string reason;        // the dead-letter reason, when dead_letter
  };
  // What is recorded for the job at `stream_seq` (an empty Entry when nothing); nullopt when the
  // bucket cannot be read (the caller falls back to JetStream's count).
  std::optional<Entry> read(uint64_t stream_seq);
  // Records that `failed` attempts of the job have failed (asynchronous publish).
  void record(uint64_t stream_seq, uint32_t failed);
  // Records that the job is a dead letter whose record is still to be written: its redelivery
  // goes straight to the dead-letter queue instead of its plugin.
  void record_dead_letter(uint64_t stream_seq, uint32_t failed, const std::string& reason);
  // Removes the job's entry (asynchronous publish).
  void forget(uint64_t stream_seq);

  uint64_t read_errors() const { return read_errors_.load(std::memory_order_relaxed); }

 private:
  std::string subject(uint64_t stream_seq) const;

  const Config& config_;
  natsConnection* nc_;
  jsCtx* js_;
  std::string bucket_;
  std::string prefix_;      // "$KV.<bucket>."
  jsCtx* kv_js_ = nullptr;  // own context: a short timeout, so an unreachable bucket never stalls
  kvStore* kv_ = nullptr;
  // After a failed read the bucket is not asked again for a few seconds (reads fall back at once).
  std::atomic<int64_t> skip_until_ns_{0};
  std::atomic<uint64_t> read_errors_{0};
};

}  // namespace rd
