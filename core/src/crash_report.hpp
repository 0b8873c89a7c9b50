// Crash reports: when the process dies of SIGSEGV, SIGBUS, SIGFPE, SIGILL or SIGABRT, one
// `plugin_crashed` log line on stderr names the plugin whose code faulted, the signal, the jobs
// that plugin had in flight and a backtrace; then the process dies of the signal as before (exit
// status 128 + signal, a core dump where the system keeps them).
//
// The plugin is found, in this order: the shared object holding the faulting instruction; the
// innermost backtrace frame inside a plugin's shared object (an abort() from std::terminate on a
// plugin's own thread has the plugin's frames below libstdc++'s); the plugin the crashing thread
// was calling into (a host thread inside xDeliver, xDestination, ...). When none applies the line
// says `"plugin":"none"` and the event is `crashed`.
//
// Everything the handler reads is prepared beforehand (module address ranges, names, the stream
// name, a lock-free in-flight table), and it formats with its own code into a static buffer, so it
// is async-signal-safe apart from backtrace(), which is called once at install so that its lazy
// loading of libgcc happens then.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace rd::crash {

// One slot per in-flight slot of the consumer: which plugin holds which stream sequence.
struct InFlightSlot {
  std::atomic<uint64_t> seq{0};
  std::atomic<int32_t> plugin{-1};
};

struct PluginImage {
  std::string name;  // the plugin's name, as in its descriptor
  void* handle;      // its dlopen handle
};

// Installs the handlers (idempotent; later calls refresh the plugin list). Call after the plugins
// are loaded. `json` selects the log line's format (the daemon's log.format).
void install(const std::vector<PluginImage>& plugins, bool json);

// The consumer's in-flight table (it owns the memory until unregister) and the stream name that
// prefixes message ids ("ROUTES:<seq>").
void register_in_flight(InFlightSlot* slots, size_t count, const std::string& stream);
void unregister_in_flight();

// An alternate signal stack for the calling thread, so a stack overflow is reported too. Threads
// the host starts call this once; it is freed when the thread exits.
void thread_init();

// While alive, the calling thread runs `plugin`'s code (index in install()'s list) for the job
// with stream sequence `seq` (0: none).
class PluginScope {
 public:
  PluginScope(int plugin, uint64_t seq) noexcept;
  ~PluginScope();
  PluginScope(const PluginScope&) = delete;
  PluginScope& operator=(const PluginScope&) = delete;

 private:
  int prev_plugin_;
  uint64_t prev_seq_;
};

// "SIGSEGV", "SIGKILL", ... ("signal" for others). Async-signal-safe: the crash handler and the
// isolated plugins' supervisor both name signals with it.
const char* signal_name(int sig);

}  // namespace rd::crash
