// Test support, shared by the tests, the chaos suite and bench/rd_bench (no GoogleTest here): real
// servers on free ports in temp dirs, child processes, JetStream helpers. Every server and process
// is stopped by its destructor, so a failing test still cleans up.
#pragma once

#include <nats/nats.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace rdtest {

using namespace std::chrono_literals;

// Paths of the build tree, baked in by CMake.
std::string build_dir();
std::string daemon_path();      // build/bin/route-delivery
std::string plugin_dir();       // build/lib/route-delivery/plugins (bundled plugins)
std::string test_plugin_dir();  // build/tests/plugins (scripted + broken test plugins)
std::string source_dir();
std::string self_dir();  // folder of the running executable

int free_port();
// Whether something accepts TCP connections on 127.0.0.1:`port` now (a server is up).
bool loopback_port_accepts(int port);

// Polls `pred` every `interval` until it is true or `timeout` passes.
bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
                std::chrono::milliseconds interval = 20ms);

std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& text);  // throws when it cannot
std::vector<std::string> read_lines(const std::string& path);
std::string tail(const std::string& text, size_t lines);  // the last `lines` lines

class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "rdtest");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  void keep() { keep_ = true; }  // left in place (so is every one with RDTEST_KEEP_TMP set)

 private:
  std::string path_;
  bool keep_ = false;
};

// A child process in its own process group, stdout+stderr to `log_path`.
class Process {
 public:
  Process() = default;
  Process(std::vector<std::string> argv, std::map<std::string, std::string> env,
          std::string log_path, bool clear_env = false);
  ~Process();
  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;

  pid_t pid() const { return pid_; }
  bool running();
  void signal(int sig);
  // Waits for exit; returns the exit status (or 128+signal), or nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  void kill_hard();  // SIGKILL the group and reap
  // SIGTERM, wait up to `timeout`, then SIGKILL the group. Returns the exit status (128+signal).
  int stop(std::chrono::milliseconds timeout);
  std::string log() const;

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
  std::string log_path_;
};

class NatsServer {
 public:
  // `extra_args` are appended to nats-server's command line (e.g. cluster flags).
  explicit NatsServer(std::vector<std::string> extra_args = {}, int port = 0);
  ~NatsServer();
  void start();
  void stop();       // SIGTERM, wait
  void kill_hard();  // SIGKILL
  std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  const std::string& store_dir() const { return store_; }
  std::string log() const { return proc_.log(); }

 private:
  TempDir dir_;
  std::string store_;
  int port_;
  std::vector<std::string> extra_;
  Process proc_;
};

// PostgreSQL in a temp dir, run as the `postgres` OS user (it refuses root). Superuser "postgres",
// database "postgres"; use url() or url_as(user, password, db).
class Postgres {
 public:
  Postgres();
  ~Postgres();
  void start();
  void stop();
  int port() const { return port_; }
  std::string url(const std::string& db = "postgres") const;
  std::string url_as(const std::string& user, const std::string& password,
                     const std::string& db = "postgres") const;
  // Runs SQL through psql as the superuser; returns stdout (tuples only, unaligned); throws on
  // error.
  std::string psql(const std::string& sql, const std::string& db = "postgres") const;

 private:
  std::string bin_;
  std::string base_;
  std::string data_;
  int port_;
  bool running_ = false;
};

// mosquitto on a free port. With `username` set, a password file requires those credentials.
class Mosquitto {
 public:
  explicit Mosquitto(std::string username = "", std::string password = "");
  ~Mosquitto();
  void start();
  void stop();
  int port() const { return port_; }
  std::string log() const { return proc_.log(); }

 private:
  TempDir dir_;
  int port_;
  std::string user_, pass_;
  Process proc_;
};

// Minimal synchronous NATS/JetStream client for assertions.
class JsClient {
 public:
  explicit JsClient(const std::string& url);
  ~JsClient();
  JsClient(const JsClient&) = delete;
  JsClient& operator=(const JsClient&) = delete;

  natsConnection* conn() { return nc_; }
  jsCtx* js() { return js_; }

  // Creates ROUTES (routes.>) as the daemon would, so tests can publish before it starts.
  void ensure_routes_stream(const std::string& stream = "ROUTES");
  void publish(const std::string& subject, const std::string& data);  // JetStream publish, acked
  uint64_t stream_msgs(const std::string& stream);                    // 0 if missing
  struct ConsumerState {
    uint64_t pending = 0, ack_pending = 0, redelivered = 0, delivered_stream_seq = 0, ack_floor = 0;
    int64_t max_deliver = 0;
  };
  std::optional<ConsumerState> consumer(const std::string& stream, const std::string& name);
  // Every message currently in `stream`, oldest first (data only).
  std::vector<std::string> stream_messages(const std::string& stream);

 private:
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
};

struct HttpResponse {
  int status = 0;  // 0 = connection failed
  std::string body;
};
HttpResponse http_get(int port, const std::string& path);

// The daemon under test. Writes `config_yaml` to a file and runs
// `route-delivery --config FILE` with `env`. `http_port` is picked free and put into the config
// via HEALTH_PORT unless the env already sets it.
class Daemon {
 public:
  Daemon(std::string config_yaml, std::map<std::string, std::string> env = {});
  ~Daemon();
  void start();
  bool wait_ready(std::chrono::milliseconds timeout = 15s);
  void stop(std::chrono::milliseconds timeout = 30s);  // SIGTERM; returns after exit
  void kill_hard();
  std::optional<int> exit_code() const { return exit_code_; }
  int http_port() const { return http_port_; }
  // The config file it runs with: rewrite it, then SIGHUP, to test a reload.
  const std::string& config_path() const { return config_path_; }
  HttpResponse get(const std::string& path) const { return http_get(http_port_, path); }
  std::string log() const { return proc_.log(); }
  Process& process() { return proc_; }

 private:
  TempDir dir_;
  std::string config_path_;
  std::map<std::string, std::string> env_;
  int http_port_;
  Process proc_;
  std::optional<int> exit_code_;
};

// Runs the daemon binary with `args` to completion (for CLI subcommands); returns status + output.
struct CommandResult {
  int status = -1;
  std::string output;
};
CommandResult run_command(const std::vector<std::string>& argv,
                          const std::map<std::string, std::string>& env = {},
                          std::chrono::milliseconds timeout = 60s,
                          const std::string& stdin_text = "");

// A route job as the ingest service publishes it.
std::string make_job(const std::string& tenant, int64_t route_id,
                     const std::string& destination_type,
                     const std::string& destination_config_json, const std::string& payload_json,
                     const std::string& topic = "t/dev-1/telemetry");

}  // namespace rdtest
