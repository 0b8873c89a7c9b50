// The conventional process_* metrics of Prometheus client libraries, read from /proc on each
// scrape: resident memory, CPU seconds, open file descriptors and their limit, start time.
#pragma once

#include <optional>
#include <string>

namespace rd {

struct ProcessStats {
  double cpu_seconds = 0;  // user + system
  double resident_memory_bytes = 0;
  double virtual_memory_bytes = 0;
  double start_time_seconds = 0;  // since the Unix epoch
  double open_fds = 0;
  double max_fds = 0;  // RLIMIT_NOFILE soft limit
};

// nullopt when /proc cannot be read (not Linux, or /proc not mounted).
std::optional<ProcessStats> read_process_stats();

// Parses the text of /proc/self/stat and the `btime` line's value of /proc/stat into `stats`
// (cpu, memory, start time; not the fds). Returns false when the text does not parse. For tests.
bool parse_proc_stat(const std::string& stat, double boot_time_seconds, long clock_ticks,
                     long page_size, ProcessStats& stats);

}  // namespace rd
