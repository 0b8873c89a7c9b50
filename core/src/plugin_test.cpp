#include "plugin_test.hpp"

#include <elf.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "metrics.hpp"
#include "plugin_host.hpp"
#include "plugin_loader.hpp"

namespace rd {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr int kBurst = 200;                   // jobs in the burst
constexpr int kHostThreads = 4;               // host threads that take turns calling xDeliver
constexpr int64_t kJobTimeoutMs = 5000;       // rd_job.timeout_ms of ordinary jobs
constexpr int64_t kBlockingNs = 100'000'000;  // an xDeliver call this long blocks (as the daemon)
constexpr auto kDestroyLimit = std::chrono::seconds(10);

// Defined global symbols with default (or protected) visibility in the .so's dynamic symbol
// table, but rd_plugin_entry and the linker's own. Empty with `error` set when unreadable.
std::vector<std::string> extra_exports(const std::string& path, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  const std::vector<char> f((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> out;
  if (f.size() < sizeof(Elf64_Ehdr) || std::memcmp(f.data(), ELFMAG, SELFMAG) != 0 ||
      f[EI_CLASS] != ELFCLASS64) {
    error = "not a 64-bit ELF file";
    return out;
  }
  Elf64_Ehdr eh;
  std::memcpy(&eh, f.data(), sizeof eh);
  auto section = [&](size_t i, Elf64_Shdr& sh) {
    const size_t at = eh.e_shoff + i * eh.e_shentsize;
    if (eh.e_shentsize < sizeof sh || at + sizeof sh > f.size()) return false;
    std::memcpy(&sh, f.data() + at, sizeof sh);
    return sh.sh_offset + sh.sh_size <= f.size();
  };
  for (size_t i = 0; i < eh.e_shnum; ++i) {
    Elf64_Shdr sym{}, str{};
    if (!section(i, sym) || sym.sh_type != SHT_DYNSYM || !section(sym.sh_link, str)) continue;
    for (size_t k = 1; k < sym.sh_size / sizeof(Elf64_Sym); ++k) {
      Elf64_Sym s;
      std::memcpy(&s, f.data() + sym.sh_offset + k * sizeof s, sizeof s);
      const unsigned bind = ELF64_ST_BIND(s.st_info);
      const unsigned vis = ELF64_ST_VISIBILITY(s.st_other);
      if (s.st_shndx == SHN_UNDEF || s.st_shndx == SHN_ABS || s.st_name >= str.sh_size) continue;
      if (bind != STB_GLOBAL && bind != STB_WEAK && bind != STB_GNU_UNIQUE) continue;
      if (vis != STV_DEFAULT && vis != STV_PROTECTED) continue;
      const std::string name(
          f.data() + str.sh_offset + s.st_name,
          strnlen(f.data() + str.sh_offset + s.st_name, str.sh_size - s.st_name));
      if (name == RD_PLUGIN_ENTRY_SYMBOL || name == "_init" || name == "_fini") continue;
      out.push_back(name);
    }
    return out;
  }
  error = "no dynamic symbol table";
  return out;
}

// The host's side of the test: records every completion.
class Recorder final : public CompletionHandler {
 public:
  void on_complete(uint64_t id, const rd_result* r, const rd_host*) noexcept override {
    try {
      std::lock_guard<std::mutex> lock(mu_);
      Seen& s = seen_[id];
      ++s.count;
      if (closed_) ++after_destroy_;
      if (issued_.count(id) == 0) ++unknown_;
      if (s.count == 1) {
        s.outcome = r->outcome;
        if (RD_HAS_FIELD(r, rd_result, reason_len) && r->reason != nullptr)
          s.reason.assign(r->reason, r->reason_len);
        s.other_thread = std::this_thread::get_id() != deliver_thread_;
      }
      cv_.notify_all();
    } catch (...) {
    }
  }
  bool on_started(uint64_t) noexcept override { return true; }

  struct Seen {
    int count = 0;
    int32_t outcome = -1;
    std::string reason;
    bool other_thread = false;
  };

  void issue(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    issued_.insert(id);
    deliver_thread_ = std::this_thread::get_id();
  }
  // Waits until every id has completed at least once, or `timeout`.
  bool wait_all(const std::vector<uint64_t>& ids, Clock::duration timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] {
      for (uint64_t id : ids) {
        auto it = seen_.find(id);
        if (it == seen_.end() || it->second.count == 0) return false;
      }
      return true;
    });
  }
  Seen seen(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = seen_.find(id);
    return it == seen_.end() ? Seen{} : it->second;
  }
  void close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
  }
  int after_destroy() {
    std::lock_guard<std::mutex> lock(mu_);
    return after_destroy_;
  }
  int unknown() {
    std::lock_guard<std::mutex> lock(mu_);
    return unknown_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint64_t, Seen> seen_;
  std::set<uint64_t> issued_;
  std::thread::id deliver_thread_;
  bool closed_ = false;
  int after_destroy_ = 0;
  int unknown_ = 0;
};

// Job data the plugin borrows: kept until the whole test ends (a timed-out job stays valid for a
// late completion, as in the daemon).
struct OwnedJob {
  std::string tenant = "tenant-a", topic = "tenant-a/dev-1/telemetry",
              payload = R"({"device_id":"dev-1","temp":21.5})", route_config = "{}", message_id;
  rd_job job{};
};

class Session {
 public:
  Session(const LoadedPlugin& info, const Config& config, const Environment& env)
      : info_(info), config_(config), env_(env) {}

  // Creates an instance (the daemon's config validation, xValidate, xCreate); "" or the error.
  std::string create() {
    set_ = std::make_unique<PluginSet>();
    PluginScan scan;
    scan.loaded.push_back(info_);
    try {
      set_->init(std::move(scan), config_, env_, metrics_, config_.nats.ack_wait_ms, true);
    } catch (const std::exception& e) {
      return e.what();
    }
    set_->set_completion_handler(&recorder_);
    return "";
  }

  uint64_t deliver(int64_t timeout_ms, int64_t& took_ns) {
    ActivePlugin& p = *set_->all().front();
    jobs_.emplace_back();
    OwnedJob& o = jobs_.back();
    const uint64_t id = ++next_id_;
    o.message_id = "ROUTES:" + std::to_string(id);
    rd_job& j = o.job;
    j.struct_size = sizeof j;
    j.attempt = 1;
    j.max_attempts = 3;
    j.route_id = 1;
    j.timeout_ms = timeout_ms;
    j.tenant_id = o.tenant.c_str();
    j.tenant_id_len = o.tenant.size();
    j.topic = o.topic.c_str();
    j.topic_len = o.topic.size();
    j.payload_json = o.payload.c_str();
    j.payload_json_len = o.payload.size();
    j.destination_config_json = o.route_config.c_str();
    j.destination_config_json_len = o.route_config.size();
    j.message_id = o.message_id.c_str();
    j.message_id_len = o.message_id.size();
    recorder_.issue(id);
    const auto start = Clock::now();
    p.info.descriptor->xDeliver(p.instance.load(), id, &j);
    took_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count();
    return id;
  }

  // xDestroy, bounded: false when it did not return within kDestroyLimit (the process must then
  // exit without waiting for it).
  bool destroy() {
    auto done = std::make_shared<std::atomic<bool>>(false);
    PluginSet* set = set_.get();
    std::thread t([set, done] {
      set->destroy_all();
      done->store(true);
    });
    const auto until = Clock::now() + kDestroyLimit;
    while (!done->load() && Clock::now() < until) std::this_thread::sleep_for(milliseconds(10));
    if (!done->load()) {
      t.detach();
      return false;
    }
    t.join();
    recorder_.close();
    return true;
  }

  Recorder& recorder() { return recorder_; }

 private:
  LoadedPlugin info_;
  const Config& config_;
  const Environment& env_;
  Metrics metrics_;
  Recorder recorder_;
  std::unique_ptr<PluginSet> set_;
  std::deque<OwnedJob> jobs_;
  uint64_t next_id_ = 0;
};

class Report {
 public:
  void pass(const std::string& rule) { std::cout << "PASS " << rule << "\n"; }
  void fail(const std::string& rule, const std::string& what) {
    std::cout << "FAIL " << rule << ": " << what << "\n";
    ++failed_;
  }
  void check(bool ok, const std::string& rule, const std::string& what) {
    ok ? pass(rule) : fail(rule, what);
  }
  int failed() const { return failed_; }

 private:
  int failed_ = 0;
};

const char* kCreate = "create and destroy an instance";
const char* kOnce = "complete every job exactly once";
const char* kNoBlock = "xDeliver returns without blocking";
const char* kResults = "a known outcome, with a reason unless OK";
const char* kThrow = "no exception escapes deliver()";
const char* kIds = "complete only delivery ids the host issued";
const char* kLate = "a job past its timeout_ms is completed at most once";
const char* kOutstanding = "xDestroy with work outstanding returns, and nothing completes after";

}  // namespace

int cli_plugin_test(const std::string& so_path, const Config& config, const Environment& env) {
  Report report;
  LoadedPlugin info;
  if (const std::string why = load_plugin_file(so_path, info); !why.empty()) {
    report.fail("load through the host's ABI checks", so_path + " " + why);
    return 2;
  }
  report.pass("load through the host's ABI checks (" + info.name + " " + info.version + ", ABI 1." +
              std::to_string(info.abi_minor) + ")");
  std::string error;
  const auto extra = extra_exports(so_path, error);
  std::string names;
  for (size_t i = 0; i < extra.size() && i < 5; ++i) names += (i ? ", " : "") + extra[i];
  if (extra.size() > 5) names += ", ...";
  report.check(error.empty() && extra.empty(), "export nothing but rd_plugin_entry",
               !error.empty() ? error
                              : std::to_string(extra.size()) + " more symbols exported (" + names +
                                    "); build with route_delivery_add_plugin() or hidden "
                                    "visibility and a version script");

  // Only this plugin's section: the others name plugins this test does not load.
  Config own = config;
  for (auto it = own.plugins.sections.begin(); it != own.plugins.sections.end();) {
    it = it->first == info.name ? std::next(it) : own.plugins.sections.erase(it);
  }

  {  // An instance created and destroyed with nothing delivered.
    Session s(info, own, env);
    if (const std::string why = s.create(); !why.empty()) {
      report.fail(kCreate, why);
      return 2;
    }
    if (!s.destroy()) {
      report.fail(kCreate, "xDestroy did not return within 10 s with nothing delivered");
      std::cout.flush();
      std::_Exit(1);
    }
    report.pass(kCreate);
  }

  Session s(info, own, env);
  if (const std::string why = s.create(); !why.empty()) {
    report.fail(kCreate, "second instance: " + why);
    return 2;
  }
  // A burst, delivered by several host threads in turn (never two calls at once, as the daemon).
  std::vector<uint64_t> ids;
  std::mutex call_mu;
  int64_t slowest_ns = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < kHostThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kBurst / kHostThreads; ++i) {
        std::lock_guard<std::mutex> lock(call_mu);
        int64_t took = 0;
        ids.push_back(s.deliver(kJobTimeoutMs, took));
        slowest_ns = std::max(slowest_ns, took);
      }
    });
  }
  for (auto& t : threads) t.join();
  // A job whose timeout has passed by the time xDeliver returns.
  int64_t took = 0;
  const uint64_t late = s.deliver(1, took);
  slowest_ns = std::max(slowest_ns, took);
  const bool all = s.recorder().wait_all(ids, milliseconds(kJobTimeoutMs + 2000));
  std::this_thread::sleep_for(milliseconds(300));  // time for second completions to show

  int never = 0, twice = 0, bad_outcome = 0, no_reason = 0, threw = 0, from_plugin_threads = 0;
  std::string example_never, example_twice, example_outcome, example_reason, example_throw;
  for (uint64_t id : ids) {
    const auto seen = s.recorder().seen(id);
    const std::string mid = "ROUTES:" + std::to_string(id);
    if (seen.count == 0) {
      ++never;
      if (example_never.empty()) example_never = mid;
      continue;
    }
    if (seen.count > 1) {
      ++twice;
      if (example_twice.empty())
        example_twice = mid + " completed " + std::to_string(seen.count) + " times";
    }
    if (seen.other_thread) ++from_plugin_threads;
    if (seen.outcome < RD_OUTCOME_OK || seen.outcome > RD_OUTCOME_DEFER) {
      ++bad_outcome;
      if (example_outcome.empty()) example_outcome = "outcome " + std::to_string(seen.outcome);
    } else if (seen.outcome != RD_OUTCOME_OK && seen.reason.empty()) {
      ++no_reason;
      if (example_reason.empty()) example_reason = mid;
    }
    if (seen.reason.rfind("plugin exception", 0) == 0) {
      ++threw;
      if (example_throw.empty()) example_throw = seen.reason;
    }
  }
  report.check(all && never == 0 && twice == 0, kOnce,
               std::to_string(never) + " of " + std::to_string(ids.size()) +
                   " never completed within " + std::to_string(kJobTimeoutMs + 2000) + " ms" +
                   (example_never.empty() ? "" : " (e.g. " + example_never + ")") + ", " +
                   std::to_string(twice) + " completed more than once" +
                   (example_twice.empty() ? "" : " (e.g. " + example_twice + ")"));
  report.check(slowest_ns <= kBlockingNs, kNoBlock,
               "a call took " + std::to_string(slowest_ns / 1'000'000) +
                   " ms; queue the work and return (the daemon logs plugin_deliver_slow)");
  report.check(bad_outcome == 0 && no_reason == 0, kResults,
               std::to_string(bad_outcome) + " unknown outcomes" +
                   (example_outcome.empty() ? "" : " (" + example_outcome + ")") + ", " +
                   std::to_string(no_reason) + " non-OK results without a reason" +
                   (example_reason.empty() ? "" : " (e.g. " + example_reason + ")"));
  report.check(threw == 0, kThrow,
               std::to_string(threw) + " jobs failed by an exception: " + example_throw);
  const auto late_seen = s.recorder().seen(late);
  report.check(late_seen.count <= 1, kLate,
               "completed " + std::to_string(late_seen.count) + " times");
  std::cout << "INFO " << from_plugin_threads << " of " << ids.size()
            << " jobs were completed from the plugin's own threads, the others inside xDeliver\n";
  if (!s.destroy()) {
    report.fail(kCreate, "xDestroy did not return within 10 s after the burst");
    std::cout.flush();
    std::_Exit(1);
  }
  report.check(s.recorder().unknown() == 0, kIds,
               std::to_string(s.recorder().unknown()) + " completions of unknown delivery ids");

  {  // Work outstanding when xDestroy comes.
    Session o(info, own, env);
    if (const std::string why = o.create(); !why.empty()) {
      report.fail(kOutstanding, "third instance: " + why);
    } else {
      for (int i = 0; i < 50; ++i) o.deliver(kJobTimeoutMs, took);
      if (!o.destroy()) {
        report.fail(kOutstanding,
                    "xDestroy did not return within 10 s with 50 jobs outstanding (join your "
                    "threads; drop or complete queued work)");
        std::cout.flush();
        std::_Exit(1);
      }
      std::this_thread::sleep_for(milliseconds(300));
      report.check(o.recorder().after_destroy() == 0, kOutstanding,
                   std::to_string(o.recorder().after_destroy()) +
                       " completions arrived after xDestroy returned (a plugin thread still "
                       "running)");
    }
  }
  std::cout << (report.failed() == 0
                    ? "plugin-test: all rules held\n"
                    : "plugin-test: " + std::to_string(report.failed()) + " rule(s) broken\n");
  return report.failed() == 0 ? 0 : 1;
}

}  // namespace rd
