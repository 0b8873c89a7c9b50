// Measurements for tests and benchmarks: a process's CPU, memory and context switches from /proc,
// wall-clock timestamps that cross processes, percentiles of a sample.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace rdtest {

struct ProcStats {
  double cpu_seconds = 0;  // utime + stime
  double user_seconds = 0;
  double sys_seconds = 0;
  double peak_rss_mib = 0;  // VmHWM
  double rss_mib = 0;       // VmRSS
  int threads = 0;
  uint64_t voluntary_switches = 0;  // summed over the process's threads
  uint64_t involuntary_switches = 0;
  // utime + stime of its live child processes (an isolated plugin's process), not in cpu_seconds.
  double children_cpu_seconds = 0;
  // utime + stime per thread name (/proc/<pid>/task/*/comm; threads of one name summed), so a
  // benchmark can say which threads did the work.
  std::map<std::string, double> thread_cpu_seconds;
};
// Reads /proc/<pid>/stat and /proc/<pid>/status; nullopt if the process is gone.
std::optional<ProcStats> proc_stats(pid_t pid);

int64_t wall_ns();  // CLOCK_REALTIME, for timestamps that cross processes

// Percentile (0..100) of an unsorted sample, interpolated between the two nearest ranks; sorts
// `v` in place. 0 for an empty sample.
double percentile(std::vector<double>& v, double p);

}  // namespace rdtest
