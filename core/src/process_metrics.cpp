#include "process_metrics.hpp"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <vector>

namespace rd {

bool parse_proc_stat(const std::string& stat, double boot_time_seconds, long clock_ticks,
                     long page_size, ProcessStats& stats) {
  // "pid (comm) state ppid ...": comm may hold blanks and parentheses; fields after the last ')'
  // start with field 3 (state).
  const auto close = stat.rfind(')');
  if (close == std::string::npos || clock_ticks <= 0) return false;
  std::istringstream in(stat.substr(close + 1));
  std::vector<std::string> f{"", ""};  // fields 1 and 2 skipped; index = field number - 1
  for (std::string s; in >> s;) f.push_back(s);
  if (f.size() < 24) return false;
  auto num = [&](size_t field) { return std::strtod(f[field - 1].c_str(), nullptr); };
  const double ticks = static_cast<double>(clock_ticks);
  stats.cpu_seconds = (num(14) + num(15)) / ticks;                         // utime + stime
  stats.start_time_seconds = boot_time_seconds + num(22) / ticks;          // starttime since boot
  stats.virtual_memory_bytes = num(23);                                    // vsize, bytes
  stats.resident_memory_bytes = num(24) * static_cast<double>(page_size);  // rss, pages
  return true;
}

std::optional<ProcessStats> read_process_stats() {
  std::ifstream stat_file("/proc/self/stat");
  std::ifstream proc_stat("/proc/stat");
  if (!stat_file || !proc_stat) return std::nullopt;
  const std::string stat((std::istreambuf_iterator<char>(stat_file)),
                         std::istreambuf_iterator<char>());
  double boot = 0;
  for (std::string line; std::getline(proc_stat, line);) {
    if (line.rfind("btime ", 0) == 0) {
      boot = std::strtod(line.c_str() + 6, nullptr);
      break;
    }
  }
  ProcessStats stats;
  if (!parse_proc_stat(stat, boot, ::sysconf(_SC_CLK_TCK), ::sysconf(_SC_PAGESIZE), stats)) {
    return std::nullopt;
  }
  if (DIR* dir = ::opendir("/proc/self/fd")) {
    int n = 0;
    while (const dirent* e = ::readdir(dir)) {
      if (e->d_name[0] != '.') ++n;
    }
    ::closedir(dir);
    stats.open_fds = n - 1;  // not the descriptor opendir itself holds
  }
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY) {
    stats.max_fds = static_cast<double>(lim.rlim_cur);
  }
  return stats;
}

}  // namespace rd
