#include "crash_report.hpp"

#include <dlfcn.h>
#include <execinfo.h>
#include <link.h>
#include <signal.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <memory>

namespace rd::crash {
namespace {

constexpr size_t kMaxModules = 256;
constexpr size_t kMaxPlugins = 64;
constexpr size_t kNameBytes = 96;
constexpr int kMaxFrames = 48;
constexpr size_t kMaxIds = 32;  // message ids listed; the count says how many there were

struct Module {
  uintptr_t start = 0;  // lowest and highest address of its loaded segments
  uintptr_t end = 0;
  uintptr_t base = 0;  // load bias: an address minus base is the offset addr2line takes
  int plugin = -1;     // index into g_plugin_names, or -1
  char name[kNameBytes] = {};
};

Module g_modules[kMaxModules];
size_t g_module_count = 0;
char g_plugin_names[kMaxPlugins][kNameBytes];
size_t g_plugin_count = 0;
bool g_json = true;
bool g_installed = false;

std::atomic<InFlightSlot*> g_slots{nullptr};
std::atomic<size_t> g_slot_count{0};
char g_stream[kNameBytes] = "ROUTES";

thread_local int t_plugin = -1;
thread_local uint64_t t_seq = 0;

void copy_name(char (&dst)[kNameBytes], const char* src) {
  std::strncpy(dst, src, kNameBytes - 1);
  dst[kNameBytes - 1] = '\0';
}

const char* base_name(const char* path) {
  const char* slash = std::strrchr(path, '/');
  return slash != nullptr ? slash + 1 : path;
}

// ---- the module snapshot (taken at install, outside any signal) ----

struct PluginBase {
  uintptr_t l_addr;
  int index;
};

int collect_module(dl_phdr_info* info, size_t, void* data) {
  if (g_module_count >= kMaxModules) return 1;
  const auto* bases = static_cast<const std::vector<PluginBase>*>(data);
  Module m;
  bool any = false;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD) continue;
    const uintptr_t s = info->dlpi_addr + ph.p_vaddr;
    const uintptr_t e = s + ph.p_memsz;
    if (!any || s < m.start) m.start = s;
    if (!any || e > m.end) m.end = e;
    any = true;
  }
  if (!any) return 0;
  m.base = info->dlpi_addr;
  const char* name = info->dlpi_name != nullptr && info->dlpi_name[0] != '\0'
                         ? base_name(info->dlpi_name)
                         : "route-delivery";
  copy_name(m.name, name);
  for (const auto& b : *bases) {
    if (b.l_addr == info->dlpi_addr) m.plugin = b.index;
  }
  g_modules[g_module_count++] = m;
  return 0;
}

const Module* module_of(uintptr_t addr) {
  for (size_t i = 0; i < g_module_count; ++i) {
    if (addr >= g_modules[i].start && addr < g_modules[i].end) return &g_modules[i];
  }
  return nullptr;
}

// ---- formatting into a static buffer, without malloc, locks or stdio ----

class Line {
 public:
  void raw(const char* s) {
    while (*s != '\0' && len_ < sizeof buf_ - 2) buf_[len_++] = *s++;
  }
  void ch(char c) {
    if (len_ < sizeof buf_ - 2) buf_[len_++] = c;
  }
  void escaped(const char* s) {
    for (; *s != '\0'; ++s) {
      const auto c = static_cast<unsigned char>(*s);
      if (c == '"' || c == '\\') {
        ch('\\');
        ch(static_cast<char>(c));
      } else if (c < 0x20) {
        ch('?');
      } else {
        ch(static_cast<char>(c));
      }
    }
  }
  void dec(uint64_t v, int min_digits = 1) {
    char tmp[24];
    int n = 0;
    do {
      tmp[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    while (n < min_digits) tmp[n++] = '0';
    while (n > 0) ch(tmp[--n]);
  }
  void hex(uintptr_t v) {
    raw("0x");
    char tmp[20];
    int n = 0;
    do {
      tmp[n++] = "0123456789abcdef"[v & 0xf];
      v >>= 4;
    } while (v != 0);
    while (n > 0) ch(tmp[--n]);
  }
  // A field: `,"key":"value"` (JSON) or ` key=value` (text). open/close bracket a quoted value
  // written piecewise.
  void open(const char* key) {
    if (g_json) {
      raw(",\"");
      raw(key);
      raw("\":\"");
    } else {
      ch(' ');
      raw(key);
      raw("=\"");
    }
  }
  void close() { ch('"'); }
  void field(const char* key, const char* value) {
    open(key);
    escaped(value);
    close();
  }
  void number(const char* key, uint64_t v) {
    if (g_json) {
      raw(",\"");
      raw(key);
      raw("\":");
    } else {
      ch(' ');
      raw(key);
      ch('=');
    }
    dec(v);
  }
  void flush() {
    if (g_json) ch('}');
    buf_[len_++] = '\n';
    size_t off = 0;
    while (off < len_) {
      const ssize_t n = ::write(STDERR_FILENO, buf_ + off, len_ - off);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
  }

 private:
  char buf_[8192];
  size_t len_ = 0;
};

// "2026-12-02T17:05:03.123Z" from the real-time clock (civil date by Howard Hinnant's algorithm:
// gmtime_r is not async-signal-safe).
void timestamp(Line& out) {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  const int64_t secs = ts.tv_sec;
  int64_t days = secs / 86400;
  int64_t rem = secs % 86400;
  days += 719468;
  const int64_t era = days / 146097;
  const int64_t doe = days - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t y = yoe + era * 400;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  const int64_t d = doy - (153 * mp + 2) / 5 + 1;
  const int64_t m = mp < 10 ? mp + 3 : mp - 9;
  if (m <= 2) ++y;
  out.dec(static_cast<uint64_t>(y), 4);
  out.ch('-');
  out.dec(static_cast<uint64_t>(m), 2);
  out.ch('-');
  out.dec(static_cast<uint64_t>(d), 2);
  out.ch('T');
  out.dec(static_cast<uint64_t>(rem / 3600), 2);
  out.ch(':');
  out.dec(static_cast<uint64_t>(rem % 3600 / 60), 2);
  out.ch(':');
  out.dec(static_cast<uint64_t>(rem % 60), 2);
  out.ch('.');
  out.dec(static_cast<uint64_t>(ts.tv_nsec / 1'000'000), 3);
  out.ch('Z');
}

uintptr_t fault_pc(void* uctx) {
  if (uctx == nullptr) return 0;
  const auto* uc = static_cast<const ucontext_t*>(uctx);
#if defined(__x86_64__)
  return static_cast<uintptr_t>(uc->uc_mcontext.gregs[REG_RIP]);
#elif defined(__aarch64__)
  return static_cast<uintptr_t>(uc->uc_mcontext.pc);
#else
  (void)uc;
  return 0;
#endif
}

constexpr int kSignals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
std::atomic<bool> g_entered{false};

void handler(int sig, siginfo_t* info, void* uctx) {
  if (g_entered.exchange(true)) {
    // A second thread crashing meanwhile: give the first one's report two seconds, then die.
    timespec two{2, 0};
    nanosleep(&two, nullptr);
    signal(sig, SIG_DFL);
    raise(sig);
    return;
  }
  void* frames[kMaxFrames];
  const int n = backtrace(frames, kMaxFrames);
  const uintptr_t pc = fault_pc(uctx);

  int plugin = -1;
  const char* found_by = "";
  if (const Module* m = module_of(pc); m != nullptr && m->plugin >= 0) {
    plugin = m->plugin;
    found_by = "faulting instruction";
  }
  for (int i = 0; plugin < 0 && i < n; ++i) {
    const Module* m = module_of(reinterpret_cast<uintptr_t>(frames[i]));
    if (m != nullptr && m->plugin >= 0) {
      plugin = m->plugin;
      found_by = "backtrace";
    }
  }
  if (plugin < 0 && t_plugin >= 0) {
    plugin = t_plugin;
    found_by = "thread calling the plugin";
  }

  Line line;
  if (g_json) {
    line.raw("{\"ts\":\"");
    timestamp(line);
    line.raw("\",\"level\":\"error\",\"event\":\"");
    line.raw(plugin >= 0 ? "plugin_crashed" : "crashed");
    line.ch('"');
  } else {
    timestamp(line);
    line.raw(" error ");
    line.raw(plugin >= 0 ? "plugin_crashed" : "crashed");
  }
  line.field("plugin", plugin >= 0 ? g_plugin_names[plugin] : "none");
  line.field("signal", signal_name(sig));
  if (info != nullptr && sig != SIGABRT) {
    line.open("fault_address");
    line.hex(reinterpret_cast<uintptr_t>(info->si_addr));
    line.close();
  }
  if (plugin >= 0) line.field("found_by", found_by);
  if (t_seq != 0) {
    line.open("message_id");
    line.escaped(g_stream);
    line.ch(':');
    line.dec(t_seq);
    line.close();
  }
  if (plugin >= 0) {
    InFlightSlot* slots = g_slots.load(std::memory_order_acquire);
    const size_t count = g_slot_count.load(std::memory_order_acquire);
    size_t listed = 0;
    size_t total = 0;
    line.open("in_flight");
    for (size_t i = 0; slots != nullptr && i < count; ++i) {
      if (slots[i].plugin.load(std::memory_order_relaxed) != plugin) continue;
      const uint64_t seq = slots[i].seq.load(std::memory_order_relaxed);
      if (seq == 0) continue;
      ++total;
      if (listed < kMaxIds) {
        if (listed > 0) line.ch(',');
        line.escaped(g_stream);
        line.ch(':');
        line.dec(seq);
        ++listed;
      }
    }
    if (total > listed) line.raw(",...");
    line.close();
    line.number("in_flight_count", total);
  }
  line.open("backtrace");
  for (int i = 0; i < n; ++i) {
    const auto addr = reinterpret_cast<uintptr_t>(frames[i]);
    if (i > 0) line.ch(' ');
    if (const Module* m = module_of(addr); m != nullptr) {
      line.escaped(m->name);
      line.ch('+');
      line.hex(addr - m->base);
    } else {
      line.hex(addr);
    }
  }
  line.close();
  line.field("action", plugin >= 0
                           ? "the process exits with the signal; the jobs in flight are delivered "
                             "again after restart; run the plugin with isolation or fix it"
                           : "the process exits with the signal; the jobs in flight are delivered "
                             "again after restart");
  line.flush();
  // Symbol names, where the dynamic symbol table has them (one line per frame).
  backtrace_symbols_fd(frames, n, STDERR_FILENO);

  // Die of the same signal: the default action, delivered when this handler returns.
  signal(sig, SIG_DFL);
  raise(sig);
}

void free_alt_stack(void* p) {
  stack_t ss{};
  ss.ss_flags = SS_DISABLE;
  sigaltstack(&ss, nullptr);
  std::free(p);
}

}  // namespace

void install(const std::vector<PluginImage>& plugins, bool json) {
  g_json = json;
  std::vector<PluginBase> bases;
  g_plugin_count = 0;
  for (const auto& p : plugins) {
    if (g_plugin_count >= kMaxPlugins) break;
    copy_name(g_plugin_names[g_plugin_count], p.name.c_str());
    link_map* lm = nullptr;
    if (p.handle != nullptr && dlinfo(p.handle, RTLD_DI_LINKMAP, &lm) == 0 && lm != nullptr) {
      bases.push_back({static_cast<uintptr_t>(lm->l_addr), static_cast<int>(g_plugin_count)});
    }
    ++g_plugin_count;
  }
  g_module_count = 0;
  dl_iterate_phdr(collect_module, &bases);
  if (g_installed) return;
  g_installed = true;
  // backtrace() loads libgcc's unwinder on first use (malloc, locks): do it now.
  void* warm[2];
  backtrace(warm, 2);
  thread_init();
  struct sigaction sa {};
  sa.sa_sigaction = handler;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  for (int sig : kSignals) sigaction(sig, &sa, nullptr);
}

void register_in_flight(InFlightSlot* slots, size_t count, const std::string& stream) {
  std::strncpy(g_stream, stream.c_str(), kNameBytes - 1);
  g_slot_count.store(0, std::memory_order_release);
  g_slots.store(slots, std::memory_order_release);
  g_slot_count.store(count, std::memory_order_release);
}

void unregister_in_flight() {
  g_slot_count.store(0, std::memory_order_release);
  g_slots.store(nullptr, std::memory_order_release);
}

void thread_init() {
  constexpr size_t kAltStack = 64 * 1024;
  thread_local std::unique_ptr<void, void (*)(void*)> alt(nullptr, free_alt_stack);
  if (alt) return;
  void* mem = std::malloc(kAltStack);
  if (mem == nullptr) return;
  stack_t ss{};
  ss.ss_sp = mem;
  ss.ss_size = kAltStack;
  if (sigaltstack(&ss, nullptr) != 0) {
    std::free(mem);
    return;
  }
  alt.reset(mem);
}

PluginScope::PluginScope(int plugin, uint64_t seq) noexcept
    : prev_plugin_(t_plugin), prev_seq_(t_seq) {
  t_plugin = plugin;
  t_seq = seq;
}

PluginScope::~PluginScope() {
  t_plugin = prev_plugin_;
  t_seq = prev_seq_;
}

const char* signal_name(int sig) {
  switch (sig) {
    case SIGSEGV:
      return "SIGSEGV";
    case SIGBUS:
      return "SIGBUS";
    case SIGFPE:
      return "SIGFPE";
    case SIGILL:
      return "SIGILL";
    case SIGABRT:
      return "SIGABRT";
    case SIGKILL:
      return "SIGKILL";
    case SIGTERM:
      return "SIGTERM";
    case SIGINT:
      return "SIGINT";
    case SIGPIPE:
      return "SIGPIPE";
    default:
      return "signal";
  }
}

}  // namespace rd::crash
