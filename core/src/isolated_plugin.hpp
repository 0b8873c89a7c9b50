// A plugin run in a child process (plugins.<name>.isolation: process): a proxy inside the host
// that looks like any plugin to the consumer (an rd_plugin_descriptor and an instance), and a
// child process — the same route-delivery binary, `route-delivery plugin-child` — that dlopens
// the same .so and calls it through the same ABI (plugin_child.cpp). They speak over a Unix
// socketpair in batches (isolation_protocol.hpp).
//
// Threads (daemon side), per isolated plugin:
//   callers    xDeliver / xDestination / xHealth from the consumer's threads: a job is encoded
//              into the outgoing batch and kept (its bytes) until its completion; never blocks
//              (xDestination waits up to 50 ms for an uncached key, then not at all for 1 s
//              if that timed out; xHealth 200 ms).
//   writer     writes the outgoing batch to the socket (blocking: a stalled child stalls only it).
//              For a plugin that does not report starts itself, it is where a job's host
//              deadline starts: it calls the host's `started` for each job it hands to the
//              child, and hands over no more jobs until the child's call thread has taken the
//              last ones (kTaken), so a job held here (restart, probation, a child blocked in
//              xDeliver) spends no attempt.
//   supervisor reads the child's batches (completions, started notices, logs, metrics, replies)
//              and calls the real host services with the original delivery ids; when the child
//              dies it logs `plugin_crashed`, restarts it with back-off and sends the jobs it had
//              in flight again — one at a time (probation) — so that the job that crashes it is
//              found: a crash while one job is under probation dead-letters that job only.
// mu_ guards everything below it in the class; the host's services are called without it.
#pragma once

#include <route_delivery/plugin.h>
#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "isolation_protocol.hpp"
#include "plugin_loader.hpp"

namespace rd {

class IsolatedPlugin {
 public:
  // What /health shows.
  struct Status {
    std::string state;  // starting | running | probation | restarting | stopped
    int pid = 0;
    uint64_t restarts = 0;
    std::string last_crash;  // "SIGSEGV" or "exit 3"; "" = never crashed
    int64_t last_crash_ms = 0;
    size_t in_flight = 0;
  };

  // Spawns the child and creates the plugin in it (xCreate with `config_json`). Throws
  // PluginError with the plugin's own message when it fails. `services` are the host's for this
  // plugin; `restarts_metric` counts restarts (route_delivery_plugin_restarts_total).
  IsolatedPlugin(const LoadedPlugin& plugin, const std::string& config_json,
                 const rd_host_services* services, std::atomic<uint64_t>* restarts_metric);
  ~IsolatedPlugin();
  IsolatedPlugin(const IsolatedPlugin&) = delete;
  IsolatedPlugin& operator=(const IsolatedPlugin&) = delete;

  // The descriptor the consumer calls: the plugin's own, with xDeliver, xDestination, xHealth and
  // xDestroy pointing at this proxy (whose instance is `this`), and RD_PLUGIN_REPORTS_STARTED
  // always set: the proxy reports a job started when the plugin does, or, for a plugin that does
  // not, when it hands the job to the child.
  const rd_plugin_descriptor* descriptor() const { return &proxy_; }
  Status status() const;

  // Stops the child (xDestroy in it, then exit; killed after 5 s) and the threads. Idempotent.
  void stop();

 private:
  enum class Mode { starting, running, probation, down, stopping };
  struct Entry {
    std::string frame;  // the kJob frame, sent again after a crash
    std::string message_id;
    uint64_t seq = 0;      // order of arrival
    int64_t since_ns = 0;  // the host's timeout for it runs from here (`started`)
    int64_t timeout_ms = 0;
    bool sent = false;        // queued for (or written to) the current child
    bool waits_start = true;  // the host has not been told `started` yet: no timeout runs
  };
  struct Reply {
    bool done = false;
    int64_t rc = 0;  // -1: the child died before answering
    std::string text;
  };

  static void x_deliver(void* instance, uint64_t id, const rd_job* job);
  static size_t x_destination(void* instance, const rd_job* job, char* key, size_t key_len);
  static int32_t x_health(void* instance, char* detail, size_t len);
  static void x_destroy(void* instance);

  void deliver(uint64_t id, const rd_job& job);
  size_t destination(const rd_job& job, char* key, size_t key_len);
  int32_t health(char* detail, size_t len);
  // Sends a request frame (kDest, kHealth) and waits up to `wait_ms` for its reply.
  bool request(const std::string& frame, uint64_t req, int64_t wait_ms, Reply& out);

  // Starts a child and creates the plugin in it; "" or why it failed.
  std::string spawn_and_create();
  void supervise();
  void writer_loop();
  // Reads the child's frames until EOF; true when stop() ended it.
  bool read_until_eof();
  void handle_frame(uint8_t type, wire::Reader& r);
  void on_crash(int status);
  // Whether the host has given up on the job already (its delivery.timeout has passed): it is
  // then not sent again, as JetStream hands it out again.
  static bool timed_out(const Entry& e, int64_t now) {
    return !e.waits_start && e.timeout_ms > 0 && now - e.since_ns > e.timeout_ms * 1'000'000;
  }
  // With mu_ held: sends the next probation job, or ends probation (returns to full speed).
  void advance_probation(int64_t now);
  // With mu_ held: queues the job for the writer, which hands it to the current child.
  void send_locked(uint64_t id, Entry& e);
  // Writer: asks the host whether each of `ids` (jobs to hand over) may be sent now; without mu_.
  // Fills `answers` with the host's `started` replies (1 = send it; 0 = withdrawn).
  void ask_started(const std::vector<uint64_t>& ids, std::vector<int32_t>& answers);

  const LoadedPlugin plugin_;
  const std::string config_json_;
  const rd_host_services* services_;
  std::atomic<uint64_t>* restarts_metric_;
  rd_plugin_descriptor proxy_{};
  // The plugin does not report starts (no RD_PLUGIN_REPORTS_STARTED): the proxy calls `started`
  // for it when it hands a job to the child.
  bool proxy_starts_ = false;
  std::string exe_;

  mutable std::mutex mu_;
  std::condition_variable out_cv_;  // the writer waits here for outgoing data
  std::condition_variable cv_;      // replies, the writer going idle, stop
  Mode mode_ = Mode::starting;
  pid_t pid_ = -1;
  int fd_ = -1;
  bool writing_ = false;          // the writer is inside a write on fd_
  std::string out_;               // request frames (kDest, kHealth, kStop) for the current child
  std::deque<uint64_t> to_send_;  // jobs for the current child, in order, not yet written
  // With proxy_starts_: jobs written to the current child that its call thread has not yet handed
  // to xDeliver (the kTaken notices say how many it has); no more are written until it is 0.
  size_t untaken_ = 0;
  uint64_t generation_ = 0;  // counts children started: a batch meant for a dead one is not sent
  std::unordered_map<uint64_t, Entry> in_flight_;
  uint64_t next_seq_ = 0;
  std::deque<uint64_t> held_;       // arrived while down or during probation, in order
  std::deque<uint64_t> survivors_;  // in flight at a crash, to be sent one at a time
  uint64_t probe_ = 0;              // the job under probation (0 = none)
  int64_t probe_sent_ns_ = 0;
  uint64_t next_req_ = 1;
  std::map<uint64_t, Reply> replies_;
  std::unordered_map<std::string, std::string> dest_cache_;  // destination_config -> key
  // Until then an uncached xDestination is not asked (a round trip timed out): 0, the route.
  int64_t dest_pause_until_ns_ = 0;
  uint64_t restarts_ = 0;
  int consecutive_crashes_ = 0;
  int64_t child_started_ns_ = 0;
  std::string last_crash_;
  int64_t last_crash_ms_ = 0;
  std::vector<int32_t> metric_handles_;  // child handle -> host handle (-1 unknown)
  std::string create_error_;

  std::string in_;  // bytes read from the child, not yet a whole frame (supervisor only)
  bool stopped_ = false;
  bool writer_stop_ = false;
  bool supervisor_done_ = false;

  std::thread supervisor_;
  std::thread writer_;
};

// The hidden subcommand `route-delivery plugin-child --fd N --plugin PATH` (plugin_child.cpp).
int run_plugin_child(int argc, char** argv);

}  // namespace rd
