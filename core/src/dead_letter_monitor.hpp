// Keeps the PostgreSQL dead-letter sink proven: applies the schema (when
// dead_letter.postgres.migrate is on) and runs the sink's write check on a thread of its own,
// retried with back-off until both succeed, so a database that is down at start-up, or a missing
// grant fixed later, needs no restart and no manual `route-delivery migrate`. Afterwards it
// re-checks periodically, and soon after a write found the sink unhealthy (a lost connection, a
// revoked grant), so /health and /ready follow the database without waiting for the next dead
// letter.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace rd {

class PostgresDeadLetterSink;

class DeadLetterMonitor {
 public:
  struct Timing {
    std::chrono::milliseconds first_retry{1000};  // after the first failure; doubles
    std::chrono::milliseconds max_retry{30'000};  // cap of the back-off
    std::chrono::milliseconds recheck{30'000};    // while healthy: a check this often
    std::chrono::milliseconds poll{500};          // while healthy: how soon a failed write is seen
  };

  // `sink` must outlive the monitor. Nothing runs before start().
  DeadLetterMonitor(PostgresDeadLetterSink& sink, bool migrate, Timing timing);
  DeadLetterMonitor(PostgresDeadLetterSink& sink, bool migrate)
      : DeadLetterMonitor(sink, migrate, Timing{}) {}
  ~DeadLetterMonitor();
  DeadLetterMonitor(const DeadLetterMonitor&) = delete;
  DeadLetterMonitor& operator=(const DeadLetterMonitor&) = delete;

  void start();
  void stop();

  // The schema has been applied (or migration is off).
  bool migrated() const { return migrated_.load(); }

 private:
  void run();
  bool sleep(std::chrono::milliseconds d);  // false when stopping

  PostgresDeadLetterSink& sink_;
  const Timing timing_;
  std::atomic<bool> migrated_;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::thread thread_;
};

}  // namespace rd
