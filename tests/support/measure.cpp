#include "measure.hpp"

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <string>

#include "test_support.hpp"

namespace rdtest {
namespace fs = std::filesystem;

namespace {
// utime + stime of every live process whose parent is `pid`.
double children_cpu(pid_t pid) {
  const double hz = static_cast<double>(::sysconf(_SC_CLK_TCK));
  double total = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string stat = read_file(entry.path().string() + "/stat");
    const auto close = stat.rfind(')');
    if (stat.empty() || close == std::string::npos) continue;
    std::istringstream in(stat.substr(close + 2));
    std::vector<std::string> f;
    for (std::string s; in >> s;) f.push_back(s);
    if (f.size() < 13 || f[1] != std::to_string(pid)) continue;  // field 4: the parent
    total += (std::stod(f[11]) + std::stod(f[12])) / hz;
  }
  return total;
}
}  // namespace

std::optional<ProcStats> proc_stats(pid_t pid) {
  const std::string base = "/proc/" + std::to_string(pid);
  const std::string stat = read_file(base + "/stat");
  const auto close = stat.rfind(')');
  if (stat.empty() || close == std::string::npos) return std::nullopt;
  // Fields after "(comm)": state is field 3; utime and stime are fields 14 and 15.
  std::istringstream in(stat.substr(close + 2));
  std::vector<std::string> f;
  for (std::string s; in >> s;) f.push_back(s);
  if (f.size() < 13) return std::nullopt;
  const double hz = static_cast<double>(::sysconf(_SC_CLK_TCK));
  ProcStats p;
  p.user_seconds = std::stod(f[11]) / hz;
  p.sys_seconds = std::stod(f[12]) / hz;
  p.cpu_seconds = p.user_seconds + p.sys_seconds;
  std::istringstream status(read_file(base + "/status"));
  for (std::string line; std::getline(status, line);) {
    auto kib = [&](const char* key) {
      return std::stod(line.substr(std::strlen(key))) / 1024.0;  // "VmHWM:\t  1234 kB"
    };
    if (line.rfind("VmHWM:", 0) == 0) p.peak_rss_mib = kib("VmHWM:");
    if (line.rfind("VmRSS:", 0) == 0) p.rss_mib = kib("VmRSS:");
    if (line.rfind("Threads:", 0) == 0) p.threads = std::stoi(line.substr(8));
  }
  // /proc/<pid>/status counts the main thread's switches only: sum over the threads.
  std::error_code ec;
  for (const auto& task : fs::directory_iterator(base + "/task", ec)) {
    const std::string tstat = read_file(task.path().string() + "/stat");
    const auto tclose = tstat.rfind(')');
    const auto topen = tstat.find('(');
    if (tclose != std::string::npos && topen != std::string::npos && topen < tclose) {
      std::istringstream tf(tstat.substr(tclose + 2));
      std::vector<std::string> v;
      for (std::string x; tf >> x && v.size() < 13;) v.push_back(x);
      if (v.size() >= 13) {
        p.thread_cpu_seconds[tstat.substr(topen + 1, tclose - topen - 1)] +=
            (std::stod(v[11]) + std::stod(v[12])) / hz;
      }
    }
    std::istringstream ts(read_file(task.path().string() + "/status"));
    for (std::string line; std::getline(ts, line);) {
      if (line.rfind("voluntary_ctxt_switches:", 0) == 0)
        p.voluntary_switches += std::stoull(line.substr(24));
      if (line.rfind("nonvoluntary_ctxt_switches:", 0) == 0)
        p.involuntary_switches += std::stoull(line.substr(27));
    }
  }
  p.children_cpu_seconds = children_cpu(pid);
  return p;
}

int64_t wall_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double rank = p / 100.0 * double(v.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(rank));
  const auto hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (rank - double(lo));
}

}  // namespace rdtest
