// `route-delivery plugin-child --fd 3 --plugin PATH`: the process an isolated plugin runs in
// (plugins.<name>.isolation: process). It dlopens the same .so the daemon loaded, creates it with
// the config the daemon sends, and relays over the socket on fd 3 (isolation_protocol.hpp): jobs
// in, completions, started notices, log lines and metric updates out, in batches.
//
// Threads: the call thread (main) reads the daemon's batches and makes every call into the
// plugin (xCreate, xDeliver, xDestination, xHealth, xDestroy), one at a time as the SDK promises;
// what the plugin reports on it (an inline completion) is gathered in a fixed buffer and written
// once per batch, followed by a kTaken notice (how many jobs the batch handed to xDeliver). What
// the plugin reports from its own threads goes to the writer thread. If the process dies of a
// signal, its handler first writes the call thread's gathered completions, so jobs completed
// inline just before the crash are not delivered twice.
#include <dlfcn.h>
#include <signal.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include "isolated_plugin.hpp"
#include "isolation_protocol.hpp"
#include "plugin_loader.hpp"

namespace rd {
namespace {

constexpr size_t kInlineCap = 1u << 20;

struct ChildJob {
  std::string bytes;  // the job frame's body: the rd_job's strings point into it
  rd_job job{};
};

class Child {
 public:
  int fd = 3;
  const rd_plugin_descriptor* d = nullptr;
  void* instance = nullptr;
  rd_host_services services{};

  // The call thread's frames; written once per batch (and by the crash handler).
  std::unique_ptr<char[]> inline_buf = std::make_unique<char[]>(kInlineCap);
  std::atomic<size_t> inline_len{0};
  // One writer at a time on the socket. A flag, not a mutex: the crash handler takes it too.
  std::atomic<bool> write_lock{false};

  std::mutex async_mu;
  std::condition_variable async_cv;
  std::string async_buf;  // guarded by async_mu
  bool async_stop = false;
  std::thread writer;

  std::mutex jobs_mu;
  std::unordered_map<uint64_t, std::unique_ptr<ChildJob>> jobs;  // until complete

  std::mutex metrics_mu;
  std::map<std::string, int32_t> metric_ids;  // kind|name|labels -> handle

  void lock_write() {
    for (int i = 0; write_lock.exchange(true, std::memory_order_acquire); ++i) {
      if (i < 64) {
        std::this_thread::yield();
      } else {
        ::usleep(50);
      }
    }
  }
  void unlock_write() { write_lock.store(false, std::memory_order_release); }

  void flush_inline() {
    const size_t n = inline_len.load(std::memory_order_acquire);
    if (n == 0) return;
    lock_write();
    if (!wire::write_all(fd, inline_buf.get(), n)) ::_exit(0);  // the daemon is gone
    inline_len.store(0, std::memory_order_release);
    unlock_write();
  }

  void emit(const std::string& frame);
  void writer_loop();
};

Child* g_child = nullptr;
thread_local bool t_call_thread = false;

void Child::emit(const std::string& frame) {
  if (t_call_thread) {
    size_t n = inline_len.load(std::memory_order_relaxed);
    if (n + frame.size() > kInlineCap) {
      flush_inline();
      n = 0;
    }
    if (frame.size() > kInlineCap) {
      lock_write();
      wire::write_all(fd, frame.data(), frame.size());
      unlock_write();
      return;
    }
    std::memcpy(inline_buf.get() + n, frame.data(), frame.size());
    inline_len.store(n + frame.size(), std::memory_order_release);  // the handler sees whole frames
    return;
  }
  {
    std::lock_guard<std::mutex> lock(async_mu);
    async_buf += frame;
  }
  async_cv.notify_one();
}

void Child::writer_loop() {
  std::string buf;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(async_mu);
      async_cv.wait(lock, [&] { return async_stop || !async_buf.empty(); });
      if (async_buf.empty() && async_stop) return;
      buf.swap(async_buf);
    }
    lock_write();
    const bool ok = wire::write_all(fd, buf.data(), buf.size());
    unlock_write();
    if (!ok) ::_exit(0);
    buf.clear();
  }
}

// A fatal signal: the completions gathered on the call thread go out first (best effort: only
// when no other thread is writing for 100 ms), then the process dies of the signal as before.
void on_fatal_signal(int sig) {
  Child* c = g_child;
  if (c != nullptr) {
    bool locked = false;
    for (int i = 0; i < 100; ++i) {
      if (!c->write_lock.exchange(true, std::memory_order_acquire)) {
        locked = true;
        break;
      }
      const timespec ms{0, 1'000'000};
      ::nanosleep(&ms, nullptr);
    }
    if (locked) {
      wire::write_all(c->fd, c->inline_buf.get(), c->inline_len.load(std::memory_order_acquire));
    }
  }
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

void install_fatal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = &on_fatal_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND | SA_NODEFER;
  for (int s : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) ::sigaction(s, &sa, nullptr);
}

// ---- the services the plugin gets: relayed to the daemon --------------------------------------

// The calling thread's frame under construction: no allocation per completion once warm. Not
// re-entrant (no service calls another).
std::string& frame_buf() {
  thread_local std::string f;
  f.clear();
  return f;
}

void s_complete(rd_host*, uint64_t id, const rd_result* result) {
  Child* c = g_child;
  if (result == nullptr) return;
  const bool has_reason = RD_HAS_FIELD(result, rd_result, reason_len) && result->reason != nullptr;
  std::string_view reason =
      has_reason ? std::string_view(result->reason, std::min<size_t>(result->reason_len, 4096))
                 : std::string_view();
  std::string& f = frame_buf();
  const size_t at = wire::begin(f, wire::kDone);
  wire::put<uint64_t>(f, id);
  wire::put<int32_t>(f, result->outcome);
  wire::put<int64_t>(f,
                     RD_HAS_FIELD(result, rd_result, retry_after_ms) ? result->retry_after_ms : -1);
  wire::put_str(f, reason);
  wire::end(f, at);
  std::unique_ptr<ChildJob> gone;  // freed outside the lock
  {
    std::lock_guard<std::mutex> lock(c->jobs_mu);
    if (auto it = c->jobs.find(id); it != c->jobs.end()) {
      gone = std::move(it->second);
      c->jobs.erase(it);
    }
  }
  c->emit(f);
}

int32_t s_started(rd_host*, uint64_t id) {
  std::string& f = frame_buf();
  const size_t at = wire::begin(f, wire::kStarted);
  wire::put<uint64_t>(f, id);
  wire::end(f, at);
  g_child->emit(f);
  return 1;
}

void s_log(rd_host*, int32_t level, const char* message) {
  std::string& f = frame_buf();
  const size_t at = wire::begin(f, wire::kLog);
  wire::put<int32_t>(f, level);
  const std::string_view m = message != nullptr ? message : "";
  wire::put_str(f, m.substr(0, 8192));
  wire::end(f, at);
  g_child->emit(f);
}

uint64_t s_monotonic_ns(rd_host*) {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

int64_t s_wall_ms(rd_host*) {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

int32_t register_metric(uint8_t kind, const char* name, const char* labels, const char* help) {
  if (name == nullptr) return -1;
  Child* c = g_child;
  const std::string key = std::to_string(kind) + "|" + name + "|" + (labels ? labels : "");
  int32_t handle;
  {
    std::lock_guard<std::mutex> lock(c->metrics_mu);
    if (auto it = c->metric_ids.find(key); it != c->metric_ids.end()) return it->second;
    handle = static_cast<int32_t>(c->metric_ids.size());
    c->metric_ids.emplace(key, handle);
  }
  std::string& f = frame_buf();
  const size_t at = wire::begin(f, wire::kMetricRegister);
  wire::put<uint8_t>(f, kind);
  wire::put<int32_t>(f, handle);
  wire::put_str(f, name);
  wire::put_str(f, labels != nullptr ? labels : "");
  wire::put_str(f, help != nullptr ? help : "");
  wire::end(f, at);
  c->emit(f);
  return handle;
}

void update_metric(uint8_t kind, int32_t handle, double value) {
  if (handle < 0) return;
  std::string& f = frame_buf();
  const size_t at = wire::begin(f, wire::kMetricUpdate);
  wire::put<uint8_t>(f, kind);
  wire::put<int32_t>(f, handle);
  wire::put<double>(f, value);
  wire::end(f, at);
  g_child->emit(f);
}

int32_t s_counter_register(rd_host*, const char* n, const char* l, const char* h) {
  return register_metric(0, n, l, h);
}
int32_t s_gauge_register(rd_host*, const char* n, const char* l, const char* h) {
  return register_metric(1, n, l, h);
}
int32_t s_histogram_register(rd_host*, const char* n, const char* l, const char* h) {
  return register_metric(2, n, l, h);
}
void s_counter_add(rd_host*, int32_t h, double v) {
  update_metric(0, h, v);
}
void s_gauge_set(rd_host*, int32_t h, double v) {
  update_metric(1, h, v);
}
void s_histogram_observe(rd_host*, int32_t h, double v) {
  update_metric(2, h, v);
}

// ---- the call thread -------------------------------------------------------------------------

// Reads a job's fields (after the id) into `out`, pointing its strings into `bytes`.
bool read_job(wire::Reader& r, ChildJob& out) {
  rd_job& j = out.job;
  j.struct_size = sizeof(rd_job);
  j.attempt = r.get<uint32_t>();
  j.max_attempts = r.get<uint32_t>();
  j.route_id = r.get<int64_t>();
  j.timeout_ms = r.get<int64_t>();
  std::string_view parts[5];
  for (auto& p : parts) p = r.str();
  if (!r.ok()) return false;
  size_t total = 0;
  for (const auto& p : parts) total += p.size() + 1;
  out.bytes.reserve(total);
  size_t offsets[5];
  for (int i = 0; i < 5; ++i) {
    offsets[i] = out.bytes.size();
    out.bytes.append(parts[i].data(), parts[i].size());
    out.bytes.push_back('\0');  // version 1 NUL-terminates them
  }
  const char* b = out.bytes.data();
  j.tenant_id = b + offsets[0];
  j.tenant_id_len = parts[0].size();
  j.topic = b + offsets[1];
  j.topic_len = parts[1].size();
  j.payload_json = b + offsets[2];
  j.payload_json_len = parts[2].size();
  j.destination_config_json = b + offsets[3];
  j.destination_config_json_len = parts[3].size();
  j.message_id = b + offsets[4];
  j.message_id_len = parts[4].size();
  return true;
}

void reply(uint64_t req, int64_t rc, std::string_view text) {
  std::string& f = frame_buf();
  const size_t at = wire::begin(f, wire::kReply);
  wire::put<uint64_t>(f, req);
  wire::put<int64_t>(f, rc);
  wire::put_str(f, text);
  wire::end(f, at);
  g_child->emit(f);
}

void finish(Child& c, int code) {
  c.flush_inline();
  {
    std::lock_guard<std::mutex> lock(c.async_mu);
    c.async_stop = true;
  }
  c.async_cv.notify_all();
  if (c.writer.joinable()) c.writer.join();
  ::_exit(code);
}

// Returns false at kStop.
bool handle(Child& c, uint8_t type, wire::Reader& r) {
  switch (type) {
    case wire::kJob: {
      const uint64_t id = r.get<uint64_t>();
      auto job = std::make_unique<ChildJob>();
      if (!read_job(r, *job)) return true;
      const rd_job* j = &job->job;
      {
        std::lock_guard<std::mutex> lock(c.jobs_mu);
        c.jobs[id] = std::move(job);
      }
      try {
        c.d->xDeliver(c.instance, id, j);
      } catch (...) {
        static const char kReason[] = "plugin threw an exception from xDeliver";
        rd_result res{sizeof(rd_result), RD_OUTCOME_PERMANENT, -1, kReason, sizeof kReason - 1};
        s_complete(nullptr, id, &res);
      }
      return true;
    }
    case wire::kDest: {
      const uint64_t req = r.get<uint64_t>();
      ChildJob job;
      if (!read_job(r, job)) return true;
      char key[256];
      size_t n = 0;
      try {
        n = c.d->xDestination(c.instance, &job.job, key, sizeof key);
      } catch (...) {
        n = 0;
      }
      n = std::min(n, sizeof key);
      reply(req, static_cast<int64_t>(n), std::string_view(key, n));
      return true;
    }
    case wire::kHealth: {
      const uint64_t req = r.get<uint64_t>();
      char detail[512] = {0};
      int32_t ok = 1;
      if (RD_HAS_FIELD(c.d, rd_plugin_descriptor, xHealth) && c.d->xHealth != nullptr) {
        try {
          ok = c.d->xHealth(c.instance, detail, sizeof detail);
        } catch (...) {
          ok = 0;
        }
      }
      detail[sizeof detail - 1] = '\0';
      reply(req, ok, detail);
      return true;
    }
    case wire::kStop:
      return false;
    default:
      return true;
  }
}

}  // namespace

int run_plugin_child(int argc, char** argv) {
  int fd = 3;
  std::string path;
  for (int i = 2; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--fd") == 0) fd = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--plugin") == 0) path = argv[i + 1];
  }
  // Dies with the daemon (a daemon killed with -9 leaves no plugin process behind).
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() == 1) return 1;
  static Child c;  // lives until _exit: plugin threads may still call services
  c.fd = fd;
  g_child = &c;
  t_call_thread = true;
  install_fatal_handlers();

  rd_host_services& s = c.services;
  s.struct_size = sizeof(rd_host_services);
  s.abi_minor = RD_ABI_VERSION_MINOR;
  s.host = reinterpret_cast<rd_host*>(&c);  // opaque to the plugin; the services ignore it
  s.host_version = RD_VERSION;
  s.complete = &s_complete;
  s.log = &s_log;
  s.monotonic_ns = &s_monotonic_ns;
  s.wall_ms = &s_wall_ms;
  s.counter_register = &s_counter_register;
  s.counter_add = &s_counter_add;
  s.gauge_register = &s_gauge_register;
  s.gauge_set = &s_gauge_set;
  s.histogram_register = &s_histogram_register;
  s.histogram_observe = &s_histogram_observe;
  s.started = &s_started;

  std::string in;
  char buf[65536];
  bool created = false;
  auto send_created = [&](int32_t rc, const std::string& error) {
    std::string f;
    const size_t at = wire::begin(f, wire::kCreated);
    wire::put<int32_t>(f, rc);
    wire::put_str(f, error);
    wire::end(f, at);
    c.emit(f);
    c.flush_inline();
  };
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) ::_exit(0);  // the daemon is gone (or stopped us): nothing is left to report to
    in.append(buf, static_cast<size_t>(n));
    bool stop = false;
    uint32_t taken = 0;  // kJob frames of this batch handed to xDeliver
    const size_t used = wire::for_each_frame(in, [&](uint8_t type, wire::Reader& r) {
      if (stop) return;
      if (!created) {
        if (type != wire::kCreate) return;
        const std::string plugin_path(r.str());
        const std::string config(r.str());
        LoadedPlugin loaded;
        const std::string why = load_plugin_file(plugin_path.empty() ? path : plugin_path, loaded);
        if (!why.empty()) {
          send_created(1, "the plugin " + why);
          ::_exit(1);
        }
        c.d = loaded.descriptor;
        char err[1024] = {0};
        int32_t rc = 1;
        try {
          rc = c.d->xCreate(&c.services, config.c_str(), &c.instance, err, sizeof err);
        } catch (...) {
          std::snprintf(err, sizeof err, "xCreate threw an exception");
        }
        err[sizeof err - 1] = '\0';
        send_created(rc, rc != 0 ? std::string(err[0] ? err : "no reason given") : std::string());
        if (rc != 0) ::_exit(1);
        created = true;
        c.writer = std::thread([] { g_child->writer_loop(); });
        return;
      }
      if (type == wire::kJob) ++taken;
      if (!handle(c, type, r)) stop = true;
    });
    if (used == SIZE_MAX) {
      std::fprintf(stderr, "route-delivery plugin-child: malformed frame from the daemon\n");
      ::_exit(2);
    }
    in.erase(0, used);
    if (taken > 0) {
      // After the batch's xDeliver calls returned. The daemon hands a plugin that does not report
      // starts no more jobs until then: they wait there, unstarted, not here behind a blocking
      // xDeliver with their timeout running.
      std::string& f = frame_buf();
      const size_t at = wire::begin(f, wire::kTaken);
      wire::put<uint32_t>(f, taken);
      wire::end(f, at);
      c.emit(f);
    }
    c.flush_inline();
    if (stop) {
      try {
        c.d->xDestroy(c.instance);
      } catch (...) {
      }
      finish(c, 0);
    }
  }
}

}  // namespace rd
