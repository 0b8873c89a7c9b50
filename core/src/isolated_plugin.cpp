// The daemon's side of an isolated plugin: the proxy, its writer and its supervisor (see
// isolated_plugin.hpp). Lock: mu_ only; the host's services are never called with it held (the
// host's `started` and `complete` take the consumer's lock, and the consumer calls xDeliver).
#include "isolated_plugin.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "crash_report.hpp"
#include "logging.hpp"
#include "thread_name.hpp"

extern char** environ;

namespace rd {
namespace {

constexpr int64_t kProbeWindowNs = 3'000'000'000;     // a probe not completed by then is let be
constexpr int64_t kCreateTimeoutNs = 60'000'000'000;  // xCreate in the child
constexpr int64_t kStableNs = 30'000'000'000;         // a child up this long resets the back-off
constexpr int64_t kStopWaitMs = 5'000;
constexpr size_t kMaxCachedKeys = 10'000;
constexpr int64_t kDestWaitMs = 50;  // an uncached xDestination round trip waits this long
// After a round trip timed out, uncached lookups do not wait for the child for this long: its call
// thread is busy (in xDeliver, or hung), and the fetch thread that asks holds up every plugin.
constexpr int64_t kDestPauseNs = 1'000'000'000;

int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

int64_t wall_ms() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

// "SIGSEGV" (signal 11), or "exit 3".
std::string describe_status(int status) {
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = crash::signal_name(sig);
    return std::strcmp(name, "signal") == 0 ? "signal " + std::to_string(sig) : name;
  }
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  return "unknown status";
}

// Waits for `pid` up to `wait_ms`, then kills it; returns its wait status.
int reap(pid_t pid, int64_t wait_ms) {
  int status = 0;
  const int64_t until = now_ns() + wait_ms * 1'000'000;
  while (true) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR) return status;
    if (now_ns() >= until) {
      ::kill(pid, SIGKILL);
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      return status;
    }
    ::usleep(5'000);
  }
}

std::string child_exe() {
  if (const char* e = std::getenv("RD_PLUGIN_CHILD_EXE"); e != nullptr && *e) return e;
  std::error_code ec;
  return std::filesystem::read_symlink("/proc/self/exe", ec).string();
}

}  // namespace

bool wire::write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

IsolatedPlugin::IsolatedPlugin(const LoadedPlugin& plugin, const std::string& config_json,
                               const rd_host_services* services,
                               std::atomic<uint64_t>* restarts_metric)
    : plugin_(plugin),
      config_json_(config_json),
      services_(services),
      restarts_metric_(restarts_metric),
      exe_(child_exe()) {
  const rd_plugin_descriptor* d = plugin.descriptor;
  std::memcpy(&proxy_, d, std::min<size_t>(d->struct_size, sizeof proxy_));
  proxy_.struct_size = sizeof proxy_;
  proxy_.xDeliver = &IsolatedPlugin::x_deliver;
  proxy_.xDestroy = &IsolatedPlugin::x_destroy;
  proxy_.xHealth = &IsolatedPlugin::x_health;
  const bool has_destination =
      RD_HAS_FIELD(d, rd_plugin_descriptor, xDestination) && d->xDestination != nullptr;
  proxy_.xDestination = has_destination ? &IsolatedPlugin::x_destination : nullptr;
  if (!RD_HAS_FIELD(d, rd_plugin_descriptor, flags)) proxy_.flags = 0;
  // The host times a job from `started`. A plugin that reports starts says when it sends a job
  // (its kStarted frames are relayed); for one that does not, the proxy says it when it hands the
  // job to the child: a job waiting in the proxy (restart, probation, a child busy in xDeliver)
  // never reached the plugin, and its time there must not spend an attempt.
  proxy_starts_ = (proxy_.flags & RD_PLUGIN_REPORTS_STARTED) == 0;
  proxy_.flags |= RD_PLUGIN_REPORTS_STARTED;

  const std::string err = spawn_and_create();
  if (!err.empty()) {
    throw PluginError("plugin '" + plugin_.name + "' (" + plugin_.path +
                      ") failed to start in its isolated process: " + err + " (check plugins." +
                      plugin_.name + " in the config)");
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    mode_ = Mode::running;
  }
  log::info("plugin_isolated", {log::kv("plugin", plugin_.name), log::kv("pid", pid_)});
  writer_ = std::thread([this] {
    name_thread("rd-iso-writer");
    writer_loop();
  });
  supervisor_ = std::thread([this] {
    name_thread("rd-iso-watch");
    supervise();
  });
}

IsolatedPlugin::~IsolatedPlugin() {
  stop();
}

// ---- the proxy descriptor's functions --------------------------------------------------------

void IsolatedPlugin::x_deliver(void* instance, uint64_t id, const rd_job* job) {
  static_cast<IsolatedPlugin*>(instance)->deliver(id, *job);
}
size_t IsolatedPlugin::x_destination(void* instance, const rd_job* job, char* key, size_t key_len) {
  return static_cast<IsolatedPlugin*>(instance)->destination(*job, key, key_len);
}
int32_t IsolatedPlugin::x_health(void* instance, char* detail, size_t len) {
  return static_cast<IsolatedPlugin*>(instance)->health(detail, len);
}
void IsolatedPlugin::x_destroy(void* instance) {
  static_cast<IsolatedPlugin*>(instance)->stop();
}

void IsolatedPlugin::send_locked(uint64_t id, Entry& e) {
  to_send_.push_back(id);
  e.sent = true;
  out_cv_.notify_one();
}

void IsolatedPlugin::deliver(uint64_t id, const rd_job& job) {
  Entry e;
  e.frame.reserve(96 + job.payload_json_len + job.destination_config_json_len + job.topic_len);
  wire::put_job(e.frame, wire::kJob, id, job);
  e.message_id.assign(job.message_id, job.message_id_len);
  e.timeout_ms = job.timeout_ms;
  // Its timeout runs from `started` (until then the host's delivery.queue_timeout applies).
  e.waits_start = true;
  const int64_t now = now_ns();
  e.since_ns = now;
  std::lock_guard<std::mutex> lock(mu_);
  e.seq = next_seq_++;
  if ((e.seq & 4095) == 0) {
    // Jobs the plugin never completed and the host has timed out: their bytes are not needed
    // (they would not be sent again), and a plugin that drops jobs must not grow the daemon.
    for (auto it = in_flight_.begin(); it != in_flight_.end();) {
      it = it->second.sent && timed_out(it->second, now) ? in_flight_.erase(it) : std::next(it);
    }
  }
  Entry& at = in_flight_[id] = std::move(e);
  if (mode_ == Mode::running) {
    send_locked(id, at);
  } else {
    held_.push_back(id);  // sent after the restart, or when probation ends
  }
}

bool IsolatedPlugin::request(const std::string& frame, uint64_t req, int64_t wait_ms, Reply& out) {
  std::unique_lock<std::mutex> lock(mu_);
  if (fd_ < 0 || (mode_ != Mode::running && mode_ != Mode::probation)) return false;
  replies_[req] = Reply{};
  out_ += frame;
  out_cv_.notify_one();
  const bool done =
      cv_.wait_for(lock, std::chrono::milliseconds(wait_ms), [&] { return replies_[req].done; });
  out = std::move(replies_[req]);
  replies_.erase(req);
  return done;
}

size_t IsolatedPlugin::destination(const rd_job& job, char* key, size_t key_len) {
  thread_local std::string config;
  config.assign(job.destination_config_json, job.destination_config_json_len);
  uint64_t req = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = dest_cache_.find(config); it != dest_cache_.end()) {
      const size_t n = std::min(key_len, it->second.size());
      std::memcpy(key, it->second.data(), n);
      return n;
    }
    if (mode_ != Mode::running) return 0;  // the route stands in until the child is back
    // A recent ask went unanswered: the route stands in without waiting (not cached).
    if (now_ns() < dest_pause_until_ns_) return 0;
    req = next_req_++;
  }
  // One round trip per distinct destination_config, then cached: the child's xDestination runs
  // on its call thread, after the jobs ahead of it, so a busy child is not waited for long. The
  // caller is a fetch thread, which every plugin's jobs pass through: 50 ms for each new config
  // would add up (200 jobs behind a blocked xDeliver: 10 s for all), and a 50 ms call is under the
  // host's slow-call threshold (kSlowCallNs), so the host does not move the plugin to its lane.
  // So an unanswered ask pauses asking for kDestPauseNs: at most one 50 ms wait per fetch thread
  // per second while the child cannot answer. A late reply finds no waiter in replies_ (keyed by
  // a request number, never reused) and is dropped.
  std::string frame;
  wire::put_job(frame, wire::kDest, req, job);
  Reply reply;
  if (!request(frame, req, kDestWaitMs, reply)) {  // timed out (or the child went down at once)
    std::lock_guard<std::mutex> lock(mu_);
    dest_pause_until_ns_ = now_ns() + kDestPauseNs;
    return 0;  // not cached: asked again after the pause
  }
  if (reply.rc < 0) return 0;  // the child died: the next one is asked
  const std::string value = reply.rc > 0 ? reply.text : std::string();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (dest_cache_.size() >= kMaxCachedKeys) dest_cache_.clear();
    dest_cache_.emplace(config, value);
  }
  const size_t n = std::min(key_len, value.size());
  std::memcpy(key, value.data(), n);
  return n;
}

int32_t IsolatedPlugin::health(char* detail, size_t len) {
  auto put_detail = [&](const std::string& s) {
    if (len == 0) return;
    const size_t n = std::min(len - 1, s.size());
    std::memcpy(detail, s.data(), n);
    detail[n] = '\0';
  };
  Mode mode;
  uint64_t req = 0;
  std::string crash;
  uint64_t restarts = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    mode = mode_;
    crash = last_crash_;
    restarts = restarts_;
    if (mode == Mode::running || mode == Mode::probation) req = next_req_++;
  }
  if (req == 0) {
    put_detail("isolated process " + std::string(mode == Mode::stopping
                                                     ? "stopped"
                                                     : "restarting after " + crash + " (restarts " +
                                                           std::to_string(restarts) + ")"));
    return 0;
  }
  std::string frame;
  const size_t at = wire::begin(frame, wire::kHealth);
  wire::put<uint64_t>(frame, req);
  wire::end(frame, at);
  Reply reply;
  if (!request(frame, req, 200, reply)) {
    put_detail("isolated process busy: no health answer within 200 ms");
    return 1;
  }
  if (reply.rc < 0) {
    put_detail("isolated process died while answering; restarting");
    return 0;
  }
  put_detail(reply.text);
  return reply.rc != 0 ? 1 : 0;
}

IsolatedPlugin::Status IsolatedPlugin::status() const {
  std::lock_guard<std::mutex> lock(mu_);
  Status s;
  switch (mode_) {
    case Mode::starting:
      s.state = "starting";
      break;
    case Mode::running:
      s.state = "running";
      break;
    case Mode::probation:
      s.state = "probation";
      break;
    case Mode::down:
      s.state = "restarting";
      break;
    case Mode::stopping:
      s.state = "stopped";
      break;
  }
  s.pid = static_cast<int>(pid_);
  s.restarts = restarts_;
  s.last_crash = last_crash_;
  s.last_crash_ms = last_crash_ms_;
  s.in_flight = in_flight_.size();
  return s;
}

// ---- the child process ------------------------------------------------------------------------

std::string IsolatedPlugin::spawn_and_create() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return std::string("socketpair failed: ") + std::strerror(errno);
  int child_end = sv[1];
  if (child_end == 3) {  // dup2(3, 3) would keep FD_CLOEXEC
    child_end = ::fcntl(sv[1], F_DUPFD_CLOEXEC, 10);
    ::close(sv[1]);
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, child_end, 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);  // the daemon blocks SIGTERM/SIGINT in every thread
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int s : {SIGTERM, SIGINT, SIGHUP, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT})
    sigaddset(&defaults, s);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  // Its own process group: a Ctrl-C meant for the daemon does not kill the plugin under it.
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  // The config (it may hold secrets) goes over the socket, never on the command line.
  std::vector<std::string> args{exe_, "plugin-child", "--fd", "3", "--plugin", plugin_.path};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, exe_.c_str(), &fa, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ::close(child_end);
  if (rc != 0) {
    ::close(sv[0]);
    return "cannot start " + exe_ + ": " + std::strerror(rc);
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    pid_ = pid;
    fd_ = sv[0];
    ++generation_;
    untaken_ = 0;
    if (mode_ != Mode::stopping) mode_ = Mode::starting;
    child_started_ns_ = now_ns();
    metric_handles_.clear();
  }
  in_.clear();
  std::string frame;
  const size_t at = wire::begin(frame, wire::kCreate);
  wire::put_str(frame, plugin_.path);
  wire::put_str(frame, config_json_);
  wire::end(frame, at);
  auto fail = [&](const std::string& why) {
    const int status = reap(pid, 1'000);
    std::lock_guard<std::mutex> lock(mu_);
    ::close(fd_);
    fd_ = -1;
    pid_ = -1;
    return why.empty()
               ? "the isolated process ended during xCreate (" + describe_status(status) + ")"
               : why;
  };
  if (!wire::write_all(sv[0], frame.data(), frame.size())) return fail("");
  const int64_t until = now_ns() + kCreateTimeoutNs;
  bool created = false;
  int32_t create_rc = 1;
  std::string create_error;
  char buf[65536];
  while (!created) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (mode_ == Mode::stopping) {
        ::kill(pid, SIGKILL);
        return fail("stopping");
      }
    }
    if (now_ns() > until) {
      ::kill(pid, SIGKILL);
      return fail("xCreate did not return within 60 s");
    }
    pollfd p{sv[0], POLLIN, 0};
    const int pr = ::poll(&p, 1, 200);
    if (pr < 0 && errno != EINTR) return fail("");
    if (pr <= 0) continue;
    const ssize_t n = ::read(sv[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail("");
    in_.append(buf, static_cast<size_t>(n));
    const size_t used = wire::for_each_frame(in_, [&](uint8_t type, wire::Reader& r) {
      if (type == wire::kCreated) {
        create_rc = r.get<int32_t>();
        create_error = std::string(r.str());
        created = true;
      } else {
        handle_frame(type, r);
      }
    });
    if (used == SIZE_MAX) {
      ::kill(pid, SIGKILL);
      return fail("the isolated process sent a malformed frame");
    }
    in_.erase(0, used);
  }
  if (create_rc != 0) return fail(create_error.empty() ? "no reason given" : create_error);
  return "";
}

void IsolatedPlugin::ask_started(const std::vector<uint64_t>& ids, std::vector<int32_t>& answers) {
  answers.clear();
  const bool has = RD_HAS_FIELD(services_, rd_host_services, started) && services_->started;
  for (uint64_t id : ids) answers.push_back(has ? services_->started(services_->host, id) : 1);
}

void IsolatedPlugin::writer_loop() {
  std::string buf;
  std::vector<uint64_t> ids;        // jobs taken for this write, in order
  std::vector<uint64_t> ask;        // those the host is told `started` for now (a subsequence)
  std::vector<int32_t> answers;     // its replies, one per `ask`
  std::vector<uint64_t> withdrawn;  // the host took them back while they waited here
  while (true) {
    int fd = -1;
    uint64_t generation = 0;
    ids.clear();
    ask.clear();
    withdrawn.clear();
    {
      std::unique_lock<std::mutex> lock(mu_);
      out_cv_.wait(lock, [&] {
        const bool up = fd_ >= 0 && (mode_ == Mode::running || mode_ == Mode::probation ||
                                     mode_ == Mode::stopping);
        // A plugin that does not report starts gets more jobs only once its call thread has
        // taken the last ones; requests wait behind those jobs too (kStop after them).
        const bool open = to_send_.empty() || !proxy_starts_ || untaken_ == 0;
        return writer_stop_ || (up && open && (!out_.empty() || !to_send_.empty()));
      });
      if (writer_stop_) return;
      generation = generation_;
      ids.assign(to_send_.begin(), to_send_.end());
      to_send_.clear();
      if (proxy_starts_) {
        for (uint64_t id : ids) {
          auto it = in_flight_.find(id);
          if (it != in_flight_.end() && it->second.waits_start) ask.push_back(id);
        }
      }
    }
    int64_t started_ns = 0;
    if (!ask.empty()) {
      // Outside mu_: the host's `started` takes the consumer's lock.
      started_ns = now_ns();
      ask_started(ask, answers);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      // The child these jobs were taken for may have died meanwhile: on_crash made them
      // survivors (sent again one at a time), so they are not written here.
      const bool same_child = fd_ >= 0 && generation_ == generation;
      size_t written = 0;
      size_t ai = 0;
      for (uint64_t id : ids) {
        const bool asked = ai < ask.size() && ask[ai] == id;
        const int32_t answer = asked ? answers[ai++] : 1;
        auto it = in_flight_.find(id);
        if (it == in_flight_.end()) continue;
        Entry& e = it->second;
        if (asked) {
          if (answer == 0) {
            in_flight_.erase(it);
            withdrawn.push_back(id);
            continue;
          }
          e.waits_start = false;
          e.since_ns = started_ns;
        }
        if (!same_child || !e.sent) continue;
        buf += e.frame;
        ++written;
      }
      if (same_child) {
        buf += out_;
        out_.clear();
        if (proxy_starts_) untaken_ += written;
        fd = fd_;
        writing_ = !buf.empty();
      }
    }
    for (uint64_t id : withdrawn) {
      // The host withdrew it while it waited here (its destination's circuit opened, or it
      // waited longer than delivery.queue_timeout): not sent, deferred as the ABI asks.
      const std::string reason = "plugin '" + plugin_.name +
                                 "': withdrawn by the host before it reached the plugin's "
                                 "isolated process";
      rd_result r{sizeof(rd_result), RD_OUTCOME_DEFER, -1, reason.c_str(), reason.size()};
      services_->complete(services_->host, id, &r);
    }
    if (fd < 0 || buf.empty()) {
      buf.clear();
      continue;
    }
    // A failed write means the child is gone: the supervisor sees its EOF and sends again.
    wire::write_all(fd, buf.data(), buf.size());
    buf.clear();
    {
      std::lock_guard<std::mutex> lock(mu_);
      writing_ = false;
    }
    cv_.notify_all();
  }
}

void IsolatedPlugin::supervise() {
  while (true) {
    const bool stopping = read_until_eof();
    pid_t pid;
    {
      std::lock_guard<std::mutex> lock(mu_);
      pid = pid_;
    }
    const int status = reap(pid, stopping ? kStopWaitMs : 2'000);
    if (!stopping) on_crash(status);
    {
      std::lock_guard<std::mutex> lock(mu_);
      pid_ = -1;  // reaped: its number may be reused
    }
    if (stopping) break;
    // Restart with back-off: 100 ms doubling to 30 s while it keeps dying.
    bool up = false;
    while (!up) {
      int64_t delay_ms;
      {
        std::unique_lock<std::mutex> lock(mu_);
        delay_ms = std::min<int64_t>(100LL << std::min(consecutive_crashes_ - 1, 9), 30'000);
        cv_.wait_for(lock, std::chrono::milliseconds(delay_ms),
                     [&] { return mode_ == Mode::stopping; });
        if (mode_ == Mode::stopping) break;
      }
      const std::string err = spawn_and_create();
      if (err.empty()) {
        up = true;
        break;
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (mode_ == Mode::stopping) break;
        ++consecutive_crashes_;
      }
      log::error("plugin_restart_failed",
                 {log::kv("plugin", plugin_.name), log::kv("reason", err),
                  log::kv("retry_in_ms", std::min<int64_t>(delay_ms * 2, 30'000))});
    }
    if (!up) break;
    size_t probation = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (mode_ == Mode::stopping) {
        const size_t at = wire::begin(out_, wire::kStop);
        wire::end(out_, at);
        out_cv_.notify_one();
        continue;  // read_until_eof sees it exit
      }
      probation = survivors_.size();
      mode_ = Mode::probation;
      advance_probation(now_ns());
    }
    log::warn(
        "plugin_restarted",
        {log::kv("plugin", plugin_.name), log::kv("pid", pid_),
         log::kv("probation_jobs", probation),
         log::kv("effect", probation > 0 ? "the jobs it had in flight are sent again one at a time"
                                         : "delivering at full speed")});
  }
  std::lock_guard<std::mutex> lock(mu_);
  supervisor_done_ = true;
  cv_.notify_all();
}

bool IsolatedPlugin::read_until_eof() {
  int fd;
  {
    std::lock_guard<std::mutex> lock(mu_);
    fd = fd_;
  }
  char buf[65536];
  struct Done {
    uint64_t id;
    int32_t outcome;
    int64_t retry_after_ms;
    std::string reason;
  };
  std::vector<Done> done;
  bool eof = false;
  while (!eof) {
    bool probation;
    {
      std::lock_guard<std::mutex> lock(mu_);
      probation = mode_ == Mode::probation;
      if (probation) advance_probation(now_ns());
    }
    pollfd p{fd, POLLIN, 0};
    const int pr = ::poll(&p, 1, probation ? 100 : 1000);
    if (pr < 0 && errno != EINTR) break;
    if (pr <= 0) continue;
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      eof = true;  // frames already read are handled below, then the crash
    } else {
      in_.append(buf, static_cast<size_t>(n));
    }
    const size_t used = wire::for_each_frame(in_, [&](uint8_t type, wire::Reader& r) {
      if (type == wire::kDone) {
        Done d;
        d.id = r.get<uint64_t>();
        d.outcome = r.get<int32_t>();
        d.retry_after_ms = r.get<int64_t>();
        d.reason = std::string(r.str());
        if (r.ok()) done.push_back(std::move(d));
      } else {
        handle_frame(type, r);
      }
    });
    if (used == SIZE_MAX) {
      log::error("plugin_protocol_error",
                 {log::kv("plugin", plugin_.name),
                  log::kv("effect", "the isolated process is killed and restarted")});
      ::kill(pid_, SIGKILL);
      in_.clear();
    } else {
      in_.erase(0, used);
    }
    if (!done.empty()) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        for (const Done& d : done) {
          in_flight_.erase(d.id);
          if (d.id == probe_) probe_ = 0;
        }
        if (mode_ == Mode::probation) advance_probation(now_ns());
      }
      for (const Done& d : done) {
        rd_result r{sizeof(rd_result), d.outcome, d.retry_after_ms,
                    d.reason.empty() ? nullptr : d.reason.c_str(), d.reason.size()};
        services_->complete(services_->host, d.id, &r);
      }
      done.clear();
    }
  }
  std::unique_lock<std::mutex> lock(mu_);
  const bool stopping = mode_ == Mode::stopping;
  if (!stopping) mode_ = Mode::down;
  out_.clear();
  // No new write starts (fd_ is -1); one under way fails at once, and the descriptor is closed
  // only after it, so the writer never writes to a number the process reuses.
  const int old = fd_;
  fd_ = -1;
  ::shutdown(old, SHUT_RDWR);
  cv_.wait(lock, [&] { return !writing_; });
  ::close(old);
  return stopping;
}

void IsolatedPlugin::handle_frame(uint8_t type, wire::Reader& r) {
  rd_host* host = services_->host;
  switch (type) {
    case wire::kStarted: {
      const uint64_t id = r.get<uint64_t>();
      // The child answered `send it` already (a round trip per job would stall the plugin's
      // thread); a job the host withdrew meanwhile is sent anyway (docs/architecture.md). For a
      // plugin that does not declare starts the proxy told the host already (writer_loop).
      if (!r.ok() || proxy_starts_) break;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (auto it = in_flight_.find(id); it != in_flight_.end()) {
          it->second.waits_start = false;
          it->second.since_ns = now_ns();
        }
      }
      if (RD_HAS_FIELD(services_, rd_host_services, started)) services_->started(host, id);
      break;
    }
    case wire::kTaken: {
      const uint32_t n = r.get<uint32_t>();
      if (!r.ok()) break;
      {
        std::lock_guard<std::mutex> lock(mu_);
        untaken_ -= std::min<size_t>(n, untaken_);
      }
      out_cv_.notify_one();
      break;
    }
    case wire::kLog: {
      const int32_t level = r.get<int32_t>();
      const std::string message(r.str());
      if (r.ok()) services_->log(host, level, message.c_str());
      break;
    }
    case wire::kMetricRegister: {
      const uint8_t kind = r.get<uint8_t>();
      const int32_t handle = r.get<int32_t>();
      const std::string name(r.str()), labels(r.str()), help(r.str());
      if (!r.ok() || handle < 0 || handle > 100'000) break;
      const char* l = labels.empty() ? nullptr : labels.c_str();
      const int32_t h = kind == 0 ? services_->counter_register(host, name.c_str(), l, help.c_str())
                        : kind == 1
                            ? services_->gauge_register(host, name.c_str(), l, help.c_str())
                            : services_->histogram_register(host, name.c_str(), l, help.c_str());
      if (metric_handles_.size() <= static_cast<size_t>(handle))
        metric_handles_.resize(static_cast<size_t>(handle) + 1, -1);
      metric_handles_[static_cast<size_t>(handle)] = h;
      break;
    }
    case wire::kMetricUpdate: {
      const uint8_t kind = r.get<uint8_t>();
      const int32_t handle = r.get<int32_t>();
      const double value = r.get<double>();
      if (!r.ok() || handle < 0 || static_cast<size_t>(handle) >= metric_handles_.size()) break;
      const int32_t h = metric_handles_[static_cast<size_t>(handle)];
      if (h < 0) break;
      if (kind == 0) {
        services_->counter_add(host, h, value);
      } else if (kind == 1) {
        services_->gauge_set(host, h, value);
      } else {
        services_->histogram_observe(host, h, value);
      }
      break;
    }
    case wire::kReply: {
      const uint64_t req = r.get<uint64_t>();
      const int64_t rc = r.get<int64_t>();
      std::string text(r.str());
      if (!r.ok()) break;
      std::lock_guard<std::mutex> lock(mu_);
      if (auto it = replies_.find(req); it != replies_.end()) {
        it->second = Reply{true, rc, std::move(text)};
        cv_.notify_all();
      }
      break;
    }
    default:
      break;
  }
}

void IsolatedPlugin::advance_probation(int64_t now) {
  if (mode_ != Mode::probation) return;
  if (probe_ != 0) {
    if (in_flight_.count(probe_) != 0 && now - probe_sent_ns_ < kProbeWindowNs) return;
    probe_ = 0;  // completed, or let be: it did not crash the process within the window
  }
  while (!survivors_.empty()) {
    const uint64_t id = survivors_.front();
    survivors_.pop_front();
    auto it = in_flight_.find(id);
    if (it == in_flight_.end()) continue;
    if (timed_out(it->second, now)) {
      in_flight_.erase(it);
      continue;
    }
    send_locked(id, it->second);
    probe_ = id;
    probe_sent_ns_ = now;
    return;
  }
  // Every survivor went through alone: back to full speed with what arrived meanwhile.
  mode_ = Mode::running;
  for (uint64_t id : held_) {
    auto it = in_flight_.find(id);
    if (it == in_flight_.end()) continue;
    if (timed_out(it->second, now)) {
      in_flight_.erase(it);
    } else {
      send_locked(id, it->second);
    }
  }
  held_.clear();
}

void IsolatedPlugin::on_crash(int status) {
  const std::string how = describe_status(status);
  const int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  const int64_t now = now_ns();
  uint64_t poison = 0;
  std::string poison_id;
  std::string ids;
  size_t count = 0;
  size_t expired = 0;
  int pid;
  uint64_t restarts;
  {
    std::lock_guard<std::mutex> lock(mu_);
    pid = static_cast<int>(pid_);
    // The job that was alone under probation when the process died is the one that kills it.
    if (probe_ != 0) {
      if (auto it = in_flight_.find(probe_); it != in_flight_.end()) {
        poison = probe_;
        poison_id = it->second.message_id;
        ++count;
        ids = poison_id;
        in_flight_.erase(it);
      }
      probe_ = 0;
    }
    std::vector<std::pair<uint64_t, uint64_t>> again;   // (seq, id)
    std::vector<std::pair<uint64_t, std::string>> had;  // (seq, message id), for the log
    for (auto it = in_flight_.begin(); it != in_flight_.end();) {
      Entry& e = it->second;
      if (e.sent) {
        ++count;
        had.emplace_back(e.seq, e.message_id);
        e.sent = false;
        // The host has timed it out already and JetStream will hand it out again: not resent.
        if (timed_out(e, now)) {
          ++expired;
          it = in_flight_.erase(it);
          continue;
        }
        again.emplace_back(e.seq, it->first);
      }
      ++it;
    }
    for (uint64_t id : survivors_) {
      if (auto it = in_flight_.find(id); it != in_flight_.end())
        again.emplace_back(it->second.seq, id);
    }
    std::sort(again.begin(), again.end());
    std::sort(had.begin(), had.end());  // in the order the jobs came
    for (size_t i = 0; i < had.size() && i < 50; ++i)
      ids += (ids.empty() ? "" : ",") + had[i].second;
    survivors_.clear();
    for (const auto& [seq, id] : again) survivors_.push_back(id);
    out_.clear();
    to_send_.clear();  // queued for the dead child: survivors now
    untaken_ = 0;
    ++restarts_;
    restarts = restarts_;
    consecutive_crashes_ = now - child_started_ns_ > kStableNs ? 1 : consecutive_crashes_ + 1;
    last_crash_ = how;
    last_crash_ms_ = wall_ms();
    for (auto& [req, reply] : replies_) reply = Reply{true, -1, ""};  // waiters give up now
    cv_.notify_all();
  }
  if (restarts_metric_ != nullptr) restarts_metric_->fetch_add(1, std::memory_order_relaxed);
  log::error("plugin_crashed",
             {log::kv("plugin", plugin_.name), log::kv("isolation", "process"),
              log::kv("signal", sig != 0 ? how : std::string("none")),
              log::kv("signal_number", sig), log::kv("status", how), log::kv("pid", pid),
              log::kv("in_flight", ids.empty() ? std::string("none") : ids),
              log::kv("in_flight_count", count),
              log::kv("poison_message_id", poison_id.empty() ? std::string("none") : poison_id),
              log::kv("restarts", restarts), log::kv("timed_out_not_resent", expired),
              log::kv("effect",
                      poison != 0 ? "the job it crashed on alone is dead-lettered; the others are "
                                    "sent again one at a time to the restarted process"
                                  : "the daemon stays up; the process is restarted and the jobs "
                                    "it had are sent again one at a time, no attempt spent")});
  if (poison != 0) {
    const std::string reason = "plugin '" + plugin_.name + "' crashed (" + how +
                               (sig != 0 ? ", signal " + std::to_string(sig) : std::string()) +
                               ") in its isolated process on this job, which was delivered "
                               "alone after an earlier crash with it in flight";
    rd_result r{sizeof(rd_result), RD_OUTCOME_PERMANENT, -1, reason.c_str(), reason.size()};
    services_->complete(services_->host, poison, &r);
  }
}

void IsolatedPlugin::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return;
    stopped_ = true;
    const bool up = fd_ >= 0 && (mode_ == Mode::running || mode_ == Mode::probation);
    mode_ = Mode::stopping;
    if (up) {
      const size_t at = wire::begin(out_, wire::kStop);
      wire::end(out_, at);
    }
  }
  out_cv_.notify_all();
  cv_.notify_all();
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, std::chrono::milliseconds(kStopWaitMs),
                      [&] { return supervisor_done_; })) {
      if (pid_ > 0) ::kill(pid_, SIGKILL);  // it did not finish xDestroy in time
    }
  }
  if (supervisor_.joinable()) supervisor_.join();
  {
    std::lock_guard<std::mutex> lock(mu_);
    writer_stop_ = true;
  }
  out_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
}

}  // namespace rd
