// Plumbing for rd_bench: temp dirs, free ports, child processes, /proc readings, a tiny HTTP GET.
// Nothing here knows about route-delivery; rd_bench.cpp holds the measurement logic.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace bench {

int free_port();
std::string self_dir();  // folder of this executable
bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
                std::chrono::milliseconds interval = std::chrono::milliseconds(10));
void write_file(const std::string& path, const std::string& text);
std::string read_file(const std::string& path);
std::string tail(const std::string& text, size_t lines);

class TempDir {
 public:
  explicit TempDir(const std::string& prefix);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  void keep() { keep_ = true; }

 private:
  std::string path_;
  bool keep_ = false;
};

// A child in its own process group, stdout+stderr appended to `log_path`. The destructor SIGKILLs
// the group if it is still running.
class Process {
 public:
  Process() = default;
  Process(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
          const std::string& log_path);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  // SIGTERM, wait up to `timeout`, then SIGKILL. Returns the exit status (128+signal if killed).
  int stop(std::chrono::milliseconds timeout);

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
};

struct ProcStats {
  double cpu_seconds = 0;  // utime + stime
  double user_seconds = 0;
  double sys_seconds = 0;
  double peak_rss_mib = 0;  // VmHWM
  double rss_mib = 0;       // VmRSS
  int threads = 0;
  uint64_t voluntary_switches = 0;  // summed over the process's threads
  uint64_t involuntary_switches = 0;
};
// Reads /proc/<pid>/stat and /proc/<pid>/status; nullopt if the process is gone.
std::optional<ProcStats> proc_stats(pid_t pid);

// GET http://127.0.0.1:<port><path>; nullopt on connection failure. Returns (status, body).
std::optional<std::pair<int, std::string>> http_get(int port, const std::string& path);

int64_t wall_ns();  // CLOCK_REALTIME, for timestamps that cross processes
int64_t monotonic_ns();

// Percentile (0..100) of an unsorted sample; sorts `v` in place. 0 for an empty sample.
double percentile(std::vector<double>& v, double p);

}  // namespace bench
