// "scripted": a test-only plugin (destination_type "test") whose outcome each job dictates.
//
// The route's destination_config carries the script:
//   {"script": ["retry", "retry", "ok"], "record": "/tmp/attempts.txt"}
// Attempt N runs entry [N-1]; the last entry repeats for later attempts. No script = ["ok"].
//
//   "ok"          complete OK inside xDeliver
//   "retry"       complete RETRY ("scripted retry at attempt N"), no suggested delay
//   "retry:<ms>"  complete RETRY with retry_after_ms = <ms>
//   "defer"       complete DEFER ("scripted unavailable at attempt N"): no attempt spent (ABI 1.1)
//   "defer:<ms>"  complete DEFER with retry_after_ms = <ms>
//   "permanent"   complete PERMANENT ("scripted permanent failure at attempt N")
//   "noreason"    complete PERMANENT with an empty reason (reason_len 0)
//   "never"       never complete (the host must time the delivery out); forgotten on destroy
//   "twice"       complete OK inside xDeliver, then OK again from a plugin thread
//   "throw"       throw std::runtime_error("scripted exception") out of deliver(); the SDK's
//                 PluginAdapter turns it into PERMANENT "plugin exception: scripted exception"
//   "slow:<ms>"   complete OK from a plugin thread after <ms> milliseconds
//   "async"       complete OK from a plugin thread as soon as possible
//   "block:<ms>"  sleep <ms> milliseconds inside xDeliver, then complete OK (a blocking plugin)
//   "segv"        write to address 16 inside xDeliver (the process dies of SIGSEGV)
//   "throw_thread" throw an exception on a plugin thread, where nothing catches it
//                 (std::terminate, the process dies of SIGABRT)
//   "started"     call the host's `started` for its own delivery id, for the same slot's id of
//                 another generation and for a slot that does not exist, then complete OK and
//                 call `started` for its own id again; logs
//                 "scripted: started answers own=A other_generation=B no_slot=C after_complete=D"
// A destination_config that is not JSON, a script that is not a non-empty array of strings, or an
// unknown entry completes PERMANENT with a reason starting "scripted: ".
//
// With "record", every attempt first appends `<message_id> <attempt> <wall_ms> <entry>` to that
// file (flushed, under a mutex) before anything completes, so a test that sees an outcome can
// already read the line.
//
// Plugin config (plugins.scripted): worker_threads (INT, default 2) threads run the delayed and
// asynchronous completions; healthy (BOOL, default true) is what xHealth reports; override
// (STRING, default "") when set is the entry every job runs, whatever its script says (a test
// runs one daemon with `override: never` and the next with the jobs' own scripts);
// destination_key (BOOL, default false) when true makes xDestination name the job's destination:
// the destination_config's string "key" when it has one, else no key (the host keys the job by
// its route). xDestination is always exported (the SDK adapter's descriptor is static), but with
// destination_key false it returns 0 for every job, which the host treats as it treats a plugin
// without xDestination: the job is keyed by its route. (Run isolated, the daemon's proxy asks the
// plugin's process once per distinct destination_config, and caches the answer.)
#include <route_delivery/plugin.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <route_delivery/plugin.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

// Where "segv" writes: an unmapped page, not null (UBSan would stop a null store first); volatile,
// so the compiler cannot see it.
volatile uintptr_t g_nowhere = 16;

using Clock = std::chrono::steady_clock;

// A completion the worker threads report when it falls due.
struct Pending {
  uint64_t delivery_id;
  int32_t outcome;
};

// Parses the non-negative integer after "prefix:" in `entry`; -1 when malformed.
int64_t suffix_ms(const std::string& entry, size_t prefix_len) {
  const std::string digits = entry.substr(prefix_len);
  if (digits.empty() || digits.size() > 9 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return -1;
  }
  return std::strtoll(digits.c_str(), nullptr, 10);
}

bool starts_with(const std::string& s, const char* prefix) {
  return s.rfind(prefix, 0) == 0;
}

class ScriptedPlugin {
 public:
  static std::unique_ptr<ScriptedPlugin> create(const rd_host_services* services,
                                                const char* config_json) {
    const auto config = nlohmann::json::parse(config_json, nullptr, false);
    if (config.is_discarded() || !config.is_object()) {
      throw std::runtime_error("scripted: plugin config is not a JSON object");
    }
    int64_t threads = 2;
    if (auto it = config.find("worker_threads"); it != config.end()) {
      if (!it->is_number_integer()) {
        throw std::runtime_error("scripted: plugins.scripted.worker_threads must be an integer");
      }
      threads = it->get<int64_t>();
    }
    if (threads < 1 || threads > 64) {
      throw std::runtime_error("scripted: plugins.scripted.worker_threads must be 1..64, got " +
                               std::to_string(threads));
    }
    bool healthy = true;
    if (auto it = config.find("healthy"); it != config.end()) {
      if (!it->is_boolean()) {
        throw std::runtime_error("scripted: plugins.scripted.healthy must be true or false");
      }
      healthy = it->get<bool>();
    }
    std::string override_entry;
    if (auto it = config.find("override"); it != config.end() && it->is_string())
      override_entry = it->get<std::string>();
    bool destination_key = false;
    if (auto it = config.find("destination_key"); it != config.end()) {
      if (!it->is_boolean()) {
        throw std::runtime_error(
            "scripted: plugins.scripted.destination_key must be true or false");
      }
      destination_key = it->get<bool>();
    }
    return std::make_unique<ScriptedPlugin>(services, static_cast<int>(threads), healthy,
                                            override_entry, destination_key);
  }

  ScriptedPlugin(const rd_host_services* services, int threads, bool healthy,
                 std::string override_entry, bool destination_key)
      : done_(services),
        healthy_(healthy),
        override_(std::move(override_entry)),
        destination_key_(destination_key) {
    attempts_ = services->counter_register(services->host, "scripted_attempts_total", nullptr,
                                           "Job attempts the scripted test plugin received.");
    try {
      for (int i = 0; i < threads; ++i) workers_.emplace_back([this] { run(); });
    } catch (...) {
      stop();
      throw;
    }
  }

  // Joins the workers. Completions not yet due (slow jobs) are dropped like "never" jobs: by the
  // time xDestroy runs the host has already timed them out.
  ~ScriptedPlugin() { stop(); }

  void deliver(uint64_t delivery_id, const rd_job& job) {
    const uint32_t attempt = std::max<uint32_t>(job.attempt, 1);
    const auto config = nlohmann::json::parse(
        rd::view(job.destination_config_json, job.destination_config_json_len), nullptr, false);
    if (config.is_discarded() || !config.is_object()) {
      done_.permanent(delivery_id, "scripted: destination_config is not a JSON object");
      return;
    }
    std::string entry = "ok";
    if (auto it = config.find("script"); it != config.end()) {
      if (!it->is_array() || it->empty()) {
        done_.permanent(delivery_id, "scripted: script must be a non-empty array of strings");
        return;
      }
      const auto& chosen = (*it)[std::min<size_t>(attempt - 1, it->size() - 1)];
      if (!chosen.is_string()) {
        done_.permanent(delivery_id, "scripted: script must be a non-empty array of strings");
        return;
      }
      entry = chosen.get<std::string>();
    }
    if (!override_.empty()) entry = override_;
    if (auto it = config.find("record"); it != config.end()) {
      if (!it->is_string() || !record(it->get<std::string>(), job, attempt, entry)) {
        done_.permanent(delivery_id, "scripted: cannot append to the record file");
        return;
      }
    }
    if (attempts_ >= 0) done_.services()->counter_add(done_.services()->host, attempts_, 1.0);
    done_.log(RD_LOG_DEBUG, "scripted: attempt " + std::to_string(attempt) + " runs " + entry);
    run_entry(delivery_id, attempt, entry);
  }

  // With destination_key: the destination_config's "key" (a string), else 0 (keyed by route).
  size_t destination(const rd_job& job, char* key, size_t key_len) {
    if (!destination_key_) return 0;
    const auto config = nlohmann::json::parse(
        rd::view(job.destination_config_json, job.destination_config_json_len), nullptr, false);
    if (!config.is_object()) return 0;
    const auto it = config.find("key");
    if (it == config.end() || !it->is_string()) return 0;
    const std::string& k = it->get_ref<const std::string&>();
    const size_t n = std::min(key_len, k.size());
    std::copy_n(k.data(), n, key);
    return n;
  }

  bool health(std::string& detail) {
    detail = healthy_ ? "scripted: healthy" : "scripted: configured unhealthy";
    return healthy_;
  }

 private:
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }

  void run_entry(uint64_t delivery_id, uint32_t attempt, const std::string& entry) {
    const std::string at = " at attempt " + std::to_string(attempt);
    if (entry == "ok") {
      done_.ok(delivery_id);
    } else if (entry == "retry") {
      done_.retry(delivery_id, "scripted retry" + at);
    } else if (starts_with(entry, "retry:") && suffix_ms(entry, 6) >= 0) {
      done_.retry(delivery_id, "scripted retry" + at, suffix_ms(entry, 6));
    } else if (entry == "defer") {
      done_.defer(delivery_id, "scripted unavailable" + at);
    } else if (starts_with(entry, "defer:") && suffix_ms(entry, 6) >= 0) {
      done_.defer(delivery_id, "scripted unavailable" + at, suffix_ms(entry, 6));
    } else if (entry == "permanent") {
      done_.permanent(delivery_id, "scripted permanent failure" + at);
    } else if (entry == "noreason") {
      done_.permanent(delivery_id, std::string_view());
    } else if (entry == "never") {
      // Deliberately nothing.
    } else if (entry == "twice") {
      done_.ok(delivery_id);
      schedule(Clock::now(), delivery_id);
    } else if (entry == "throw") {
      throw std::runtime_error("scripted exception");
    } else if (starts_with(entry, "slow:") && suffix_ms(entry, 5) >= 0) {
      schedule(Clock::now() + std::chrono::milliseconds(suffix_ms(entry, 5)), delivery_id);
    } else if (entry == "async") {
      schedule(Clock::now(), delivery_id);
    } else if (starts_with(entry, "block:") && suffix_ms(entry, 6) >= 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(suffix_ms(entry, 6)));
      done_.ok(delivery_id);
    } else if (entry == "segv") {
      *reinterpret_cast<volatile int*>(g_nowhere) = 1;
    } else if (entry == "started") {
      const auto answer = [&](uint64_t id) {
        const rd_host_services* s = done_.services();
        return RD_HAS_FIELD(s, rd_host_services, started) && s->started != nullptr
                   ? std::to_string(s->started(s->host, id))
                   : std::string("none");
      };
      const std::string own = answer(delivery_id);
      const std::string other = answer(delivery_id ^ (uint64_t{1} << 40));
      const std::string no_slot = answer((delivery_id & ~uint64_t{0xffffffff}) | 0xfffffffeu);
      done_.ok(delivery_id);
      const std::string after = answer(delivery_id);
      done_.log(RD_LOG_INFO, "scripted: started answers own=" + own + " other_generation=" + other +
                                 " no_slot=" + no_slot + " after_complete=" + after);
    } else if (entry == "throw_thread") {
      schedule(Clock::now(), delivery_id, kThrowOnThread);
    } else {
      done_.permanent(delivery_id, "scripted: unknown script entry '" + entry + "'");
    }
  }

  // Appends `<message_id> <attempt> <wall_ms> <entry>`; false when the file cannot be written.
  bool record(const std::string& path, const rd_job& job, uint32_t attempt,
              const std::string& entry) {
    const int64_t wall = done_.services()->wall_ms(done_.services()->host);
    const std::string line = std::string(job.message_id, job.message_id_len) + " " +
                             std::to_string(attempt) + " " + std::to_string(wall) + " " + entry +
                             "\n";
    std::lock_guard<std::mutex> lock(record_mu_);
    std::FILE* f = std::fopen(path.c_str(), "a");
    if (f == nullptr) return false;
    const bool written = std::fwrite(line.data(), 1, line.size(), f) == line.size();
    return std::fclose(f) == 0 && written;
  }

  static constexpr int32_t kThrowOnThread = -1;

  void schedule(Clock::time_point due, uint64_t delivery_id, int32_t outcome = RD_OUTCOME_OK) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.emplace(due, Pending{delivery_id, outcome});
    }
    cv_.notify_one();
  }

  void run() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stopping_) {
      if (queue_.empty()) {
        cv_.wait(lock);
        continue;
      }
      const auto due = queue_.begin()->first;
      if (Clock::now() < due) {
        cv_.wait_until(lock, due);
        continue;
      }
      const Pending job = queue_.begin()->second;
      queue_.erase(queue_.begin());
      lock.unlock();
      if (job.outcome == kThrowOnThread)
        throw std::runtime_error("scripted exception on a plugin thread");
      done_.finish(job.delivery_id, job.outcome, {}, -1);
      lock.lock();
    }
  }

  rd::Completer done_;
  const bool healthy_;
  const std::string override_;
  const bool destination_key_;
  int32_t attempts_ = -1;

  std::mutex record_mu_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::multimap<Clock::time_point, Pending> queue_;
  std::vector<std::thread> workers_;  // last member: started after everything else exists
};

const rd_config_key kConfigKeys[] = {
    rd::config_key(RD_CONFIG_INT, "worker_threads", "2", nullptr,
                   "threads that report delayed and asynchronous completions"),
    rd::config_key(RD_CONFIG_BOOL, "healthy", "true", nullptr, "what the plugin's health reports"),
    rd::config_key(RD_CONFIG_STRING, "override", "", nullptr,
                   "entry every job runs instead of its script (tests)"),
    rd::config_key(RD_CONFIG_BOOL, "destination_key", "false", nullptr,
                   "xDestination answers the destination_config's \"key\" (tests)"),
};

}  // namespace

RD_DEFINE_CPP_PLUGIN(ScriptedPlugin, "scripted", "1.0.0", "test",
                     "Test plugin: each job's destination_config scripts its outcome", kConfigKeys,
                     sizeof kConfigKeys / sizeof kConfigKeys[0])
