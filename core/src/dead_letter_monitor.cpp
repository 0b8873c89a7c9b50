#include "dead_letter_monitor.hpp"

#include <algorithm>

#include "dead_letter.hpp"
#include "dead_letter_postgres.hpp"
#include "logging.hpp"
#include "thread_name.hpp"

namespace rd {

DeadLetterMonitor::DeadLetterMonitor(PostgresDeadLetterSink& sink, bool migrate, Timing timing)
    : sink_(sink), timing_(timing), migrated_(!migrate) {}

DeadLetterMonitor::~DeadLetterMonitor() {
  stop();
}

void DeadLetterMonitor::start() {
  thread_ = std::thread([this] {
    name_thread("rd-dlmonitor");
    run();
  });
}

void DeadLetterMonitor::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool DeadLetterMonitor::sleep(std::chrono::milliseconds d) {
  std::unique_lock<std::mutex> lock(mu_);
  return !cv_.wait_for(lock, d, [&] { return stopping_.load(); });
}

void DeadLetterMonitor::run() {
  auto retry = timing_.first_retry;
  std::string last_problem;  // logged once per distinct reason, not once per retry
  bool proven = false;
  while (!stopping_.load()) {
    try {
      if (!migrated_.load()) {
        sink_.migrate();
        migrated_ = true;
        log::info("dead_letter_migrated", {log::kv("sink", sink_.name())});
      }
      sink_.check();
      if (!proven || !last_problem.empty()) {
        log::info("dead_letter_sink_ready",
                  {log::kv("sink", sink_.name()),
                   log::kv("check", "a write transaction (SET LOCAL ROLE, insert) rolled back")});
      }
      proven = true;
      last_problem.clear();
      retry = timing_.first_retry;
    } catch (const std::exception& e) {
      const std::string problem = e.what();  // secrets already masked by the sink
      if (problem != last_problem) {
        log::error("dead_letter_sink_unhealthy",
                   {log::kv("error", problem),
                    log::kv("effect",
                            "dead letters are not written (their jobs are nak'd, not lost); "
                            "/ready is 503"),
                    log::kv("action", "retrying with back-off up to " +
                                          std::to_string(timing_.max_retry.count() / 1000) + "s")});
        last_problem = problem;
      }
      if (!sleep(retry)) return;
      retry = std::min(retry * 2, timing_.max_retry);
      continue;
    }
    // Healthy: re-check after `recheck`, or soon after a write found the sink unhealthy.
    const auto until = std::chrono::steady_clock::now() + timing_.recheck;
    std::string detail;
    while (std::chrono::steady_clock::now() < until && sink_.healthy(detail)) {
      if (!sleep(timing_.poll)) return;
    }
  }
}

}  // namespace rd
