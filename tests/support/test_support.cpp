#include "test_support.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <glob.h>
#include <httplib.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace rdtest {
namespace fs = std::filesystem;

std::string build_dir() {
  return RD_TEST_BUILD_DIR;
}
std::string source_dir() {
  return RD_TEST_SOURCE_DIR;
}
std::string daemon_path() {
  return build_dir() + "/bin/route-delivery";
}
std::string plugin_dir() {
  return build_dir() + "/lib/route-delivery/plugins";
}
std::string test_plugin_dir() {
  return build_dir() + "/tests/plugins";
}
std::string self_dir() {
  std::error_code ec;
  const auto exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : exe.parent_path().string();
}

int free_port() {
  // Ports handed out in this process are remembered so two servers never get the same one.
  static std::mutex mu;
  static std::set<int> given;
  std::lock_guard<std::mutex> lock(mu);
  for (int tries = 0; tries < 100; ++tries) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd);
      continue;
    }
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    ::close(fd);
    int port = ntohs(addr.sin_port);
    // Avoid the range just above, which nats cluster tests use as port+1/+2.
    if (given.insert(port).second) return port;
  }
  throw std::runtime_error("no free port");
}

bool loopback_port_accepts(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
                std::chrono::milliseconds interval) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(interval);
  }
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::vector<std::string> read_lines(const std::string& path) {
  std::vector<std::string> lines;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

std::string tail(const std::string& text, size_t lines) {
  size_t pos = text.size();
  if (pos > 0 && text[pos - 1] == '\n') --pos;
  for (size_t i = 0; i < lines; ++i) {
    const size_t nl = pos == 0 ? std::string::npos : text.rfind('\n', pos - 1);
    if (nl == std::string::npos) return text;
    pos = nl;
  }
  return text.substr(pos + 1);
}

// ---- TempDir ----

TempDir::TempDir(const std::string& prefix) {
  std::string tmpl = (fs::temp_directory_path() / (prefix + "-XXXXXX")).string();
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = buf.data();
  ::chmod(path_.c_str(), 0755);  // servers that drop privileges must be able to read it
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!keep_ && std::getenv("RDTEST_KEEP_TMP") == nullptr) fs::remove_all(path_, ec);
}

// ---- Process ----

Process::Process(std::vector<std::string> argv, std::map<std::string, std::string> env,
                 std::string log_path, bool clear_env)
    : log_path_(std::move(log_path)) {
  std::map<std::string, std::string> full;
  if (!clear_env) {
    for (char** e = environ; *e != nullptr; ++e) {
      std::string kv(*e);
      auto eq = kv.find('=');
      if (eq != std::string::npos) full[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
  }
  for (auto& [k, v] : env) full[k] = v;
  std::vector<std::string> env_strings;
  for (auto& [k, v] : full) env_strings.push_back(k + "=" + v);
  std::vector<char*> cargv, cenv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  for (auto& e : env_strings) cenv.push_back(e.data());
  cenv.push_back(nullptr);

  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    ::setpgid(0, 0);
    int fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::close(fd);
    }
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::execve(cargv[0], cargv.data(), cenv.data());
    // execve only returns on failure; try PATH lookup for bare names.
    ::execvpe(cargv[0], cargv.data(), cenv.data());
    std::fprintf(stderr, "exec %s failed: %s\n", cargv[0], std::strerror(errno));
    ::_exit(127);
  }
  ::setpgid(pid_, pid_);
}

Process::~Process() {
  kill_hard();
}

Process::Process(Process&& other) noexcept {
  *this = std::move(other);
}

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    kill_hard();
    pid_ = other.pid_;
    status_ = other.status_;
    log_path_ = std::move(other.log_path_);
    other.pid_ = -1;
  }
  return *this;
}

bool Process::running() {
  if (pid_ <= 0 || status_) return false;
  int st = 0;
  pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return false;
  }
  return true;
}

void Process::signal(int sig) {
  if (pid_ > 0 && !status_) ::kill(pid_, sig);
}

std::optional<int> Process::wait(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return status_;
  wait_until([&] { return !running(); }, timeout, 10ms);
  return status_;
}

void Process::kill_hard() {
  if (pid_ <= 0) return;
  if (!status_) {
    ::kill(-pid_, SIGKILL);
    ::kill(pid_, SIGKILL);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    status_ = 128 + SIGKILL;
  }
  pid_ = -1;
}

int Process::stop(std::chrono::milliseconds timeout) {
  if (!running()) return status_.value_or(-1);
  signal(SIGTERM);
  if (auto status = wait(timeout)) return *status;
  kill_hard();
  return 128 + SIGKILL;
}

std::string Process::log() const {
  return log_path_.empty() ? "" : read_file(log_path_);
}

// ---- NatsServer ----

NatsServer::NatsServer(std::vector<std::string> extra_args, int port)
    : dir_("rdtest-nats"),
      store_(dir_.file("js")),
      port_(port != 0 ? port : free_port()),
      extra_(std::move(extra_args)) {
  start();
}

NatsServer::~NatsServer() {
  proc_.kill_hard();
}

// Debian's nats-server package installs /usr/sbin/nats-server; other installs put it elsewhere.
static std::string nats_server_binary() {
  for (const char* p :
       {"/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return "nats-server";  // PATH lookup
}

void NatsServer::start() {
  std::vector<std::string> argv{nats_server_binary(),  "-a",  "127.0.0.1", "-p",
                                std::to_string(port_), "-js", "-sd",       store_};
  argv.insert(argv.end(), extra_.begin(), extra_.end());
  proc_ = Process(argv, {}, dir_.file("nats.log"));
  const bool up = wait_until(
      [&] {
        return loopback_port_accepts(port_) && log().find("Server is ready") != std::string::npos;
      },
      15s);
  if (!up) throw std::runtime_error("nats-server did not start: " + log());
}

void NatsServer::stop() {
  proc_.signal(SIGTERM);
  if (!proc_.wait(10s)) proc_.kill_hard();
}

void NatsServer::kill_hard() {
  proc_.kill_hard();
}

// ---- Postgres ----

namespace {
std::string pg_bin_dir() {
  glob_t g{};
  std::string found;
  if (::glob("/usr/lib/postgresql/*/bin/initdb", 0, nullptr, &g) == 0 && g.gl_pathc > 0) {
    found = fs::path(g.gl_pathv[g.gl_pathc - 1]).parent_path().string();
  }
  globfree(&g);
  if (found.empty())
    throw std::runtime_error("PostgreSQL server programs not found; run scripts/setup");
  return found;
}

int run_quiet(const std::vector<std::string>& argv, std::string* output = nullptr) {
  auto r = run_command(argv, {}, 60s);
  if (output) *output = r.output;
  return r.status;
}

bool running_as_root() {
  return ::geteuid() == 0;
}

std::vector<std::string> as_postgres(std::vector<std::string> argv) {
  if (!running_as_root()) return argv;
  std::vector<std::string> out{"/usr/sbin/runuser", "-u", "postgres", "--"};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}
}  // namespace

Postgres::Postgres() : bin_(pg_bin_dir()), port_(free_port()) {
  TempDir probe("rdtest-pg");  // just to get a unique name; real dir is created below
  base_ = probe.path() + "-db";
  fs::create_directories(base_);
  ::chmod(base_.c_str(), 0777);
  data_ = base_ + "/data";
  if (running_as_root()) {
    passwd* pw = ::getpwnam("postgres");
    if (pw == nullptr) throw std::runtime_error("no postgres user; run scripts/setup");
    ::chown(base_.c_str(), pw->pw_uid, pw->pw_gid);
  }
  std::string out;
  if (run_quiet(as_postgres({bin_ + "/initdb", "-D", data_, "-U", "postgres", "-A", "trust",
                             "--no-sync", "-E", "UTF8"}),
                &out) != 0) {
    throw std::runtime_error("initdb failed: " + out);
  }
  start();
}

Postgres::~Postgres() {
  stop();
  std::error_code ec;
  if (std::getenv("RDTEST_KEEP_TMP") == nullptr) fs::remove_all(base_, ec);
}

void Postgres::start() {
  std::string out;
  const std::string opts = "-p " + std::to_string(port_) + " -k " + base_ +
                           " -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200";
  if (run_quiet(as_postgres({bin_ + "/pg_ctl", "-D", data_, "-o", opts, "-l", base_ + "/pg.log",
                             "-w", "-t", "60", "start"}),
                &out) != 0) {
    throw std::runtime_error("pg_ctl start failed: " + out + read_file(base_ + "/pg.log"));
  }
  running_ = true;
}

void Postgres::stop() {
  if (!running_) return;
  run_quiet(as_postgres({bin_ + "/pg_ctl", "-D", data_, "-m", "fast", "-w", "stop"}));
  running_ = false;
}

std::string Postgres::url(const std::string& db) const {
  return "postgresql://postgres@127.0.0.1:" + std::to_string(port_) + "/" + db;
}

std::string Postgres::url_as(const std::string& user, const std::string& password,
                             const std::string& db) const {
  return "postgresql://" + user + ":" + password + "@127.0.0.1:" + std::to_string(port_) + "/" + db;
}

std::string Postgres::psql(const std::string& sql, const std::string& db) const {
  auto r =
      run_command({bin_ + "/psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-h",
                   "127.0.0.1", "-p", std::to_string(port_), "-U", "postgres", "-d", db, "-c", sql},
                  {}, 60s);
  if (r.status != 0) throw std::runtime_error("psql failed (" + sql + "): " + r.output);
  while (!r.output.empty() && (r.output.back() == '\n' || r.output.back() == '\r')) {
    r.output.pop_back();
  }
  return r.output;
}

// ---- Mosquitto ----

Mosquitto::Mosquitto(std::string username, std::string password)
    : dir_("rdtest-mqtt"),
      port_(free_port()),
      user_(std::move(username)),
      pass_(std::move(password)) {
  std::string conf = "listener " + std::to_string(port_) + " 127.0.0.1\n" +
                     "persistence false\nlog_dest stderr\nlog_type error\nlog_type warning\n"
                     "log_type notice\nlog_type information\nmax_inflight_messages 0\n"
                     "max_queued_messages 100000\n";
  if (running_as_root()) conf += "user root\n";
  if (!user_.empty()) {
    const std::string pwfile = dir_.file("passwd");
    write_file(pwfile, "");
    auto r = run_command({"/usr/bin/mosquitto_passwd", "-b", pwfile, user_, pass_});
    if (r.status != 0) throw std::runtime_error("mosquitto_passwd failed: " + r.output);
    ::chmod(pwfile.c_str(), 0600);
    conf += "allow_anonymous false\npassword_file " + pwfile + "\n";
  } else {
    conf += "allow_anonymous true\n";
  }
  write_file(dir_.file("mosquitto.conf"), conf);
  start();
}

Mosquitto::~Mosquitto() {
  proc_.kill_hard();
}

void Mosquitto::start() {
  proc_ = Process({"/usr/sbin/mosquitto", "-c", dir_.file("mosquitto.conf")}, {},
                  dir_.file("mosquitto.log"));
  const bool up = wait_until([&] { return loopback_port_accepts(port_); }, 10s);
  if (!up) throw std::runtime_error("mosquitto did not start: " + log());
}

void Mosquitto::stop() {
  proc_.signal(SIGTERM);
  if (!proc_.wait(10s)) proc_.kill_hard();
}

// ---- JsClient ----

namespace {
void check(natsStatus s, const char* what) {
  if (s != NATS_OK) {
    throw std::runtime_error(std::string(what) + ": " + natsStatus_GetText(s) + " " +
                             nats_GetLastError(nullptr));
  }
}
}  // namespace

JsClient::JsClient(const std::string& url) {
  natsOptions* opts = nullptr;
  check(natsOptions_Create(&opts), "options");
  natsOptions_SetURL(opts, url.c_str());
  natsOptions_SetMaxReconnect(opts, -1);
  natsOptions_SetReconnectWait(opts, 100);
  natsOptions_SetTimeout(opts, 5000);
  natsStatus s = NATS_OK;
  for (int i = 0; i < 50; ++i) {
    s = natsConnection_Connect(&nc_, opts);
    if (s == NATS_OK) break;
    std::this_thread::sleep_for(100ms);
  }
  natsOptions_Destroy(opts);
  check(s, "connect");
  check(natsConnection_JetStream(&js_, nc_, nullptr), "jetstream");
}

JsClient::~JsClient() {
  if (js_) jsCtx_Destroy(js_);
  if (nc_) natsConnection_Destroy(nc_);
}

void JsClient::ensure_routes_stream(const std::string& stream) {
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = stream.c_str();
  const char* subjects[] = {"routes.>"};
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 1;
  cfg.Storage = js_FileStorage;
  cfg.Retention = js_WorkQueuePolicy;
  jsStreamInfo* si = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  natsStatus s = js_AddStream(&si, js_, &cfg, nullptr, &err);
  if (s == NATS_OK) {
    jsStreamInfo_Destroy(si);
    return;
  }
  if (err == JSStreamNameExistErr) return;
  check(s, "add stream");
}

void JsClient::publish(const std::string& subject, const std::string& data) {
  jsPubAck* ack = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  natsStatus s = NATS_OK;
  for (int i = 0; i < 100; ++i) {  // tolerate a restarting server
    s = js_Publish(&ack, js_, subject.c_str(), data.data(), static_cast<int>(data.size()), nullptr,
                   &err);
    if (s == NATS_OK) break;
    std::this_thread::sleep_for(100ms);
  }
  check(s, "publish");
  jsPubAck_Destroy(ack);
}

uint64_t JsClient::stream_msgs(const std::string& stream) {
  jsStreamInfo* si = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  if (js_GetStreamInfo(&si, js_, stream.c_str(), nullptr, &err) != NATS_OK) return 0;
  uint64_t n = si->State.Msgs;
  jsStreamInfo_Destroy(si);
  return n;
}

std::optional<JsClient::ConsumerState> JsClient::consumer(const std::string& stream,
                                                          const std::string& name) {
  jsConsumerInfo* ci = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  if (js_GetConsumerInfo(&ci, js_, stream.c_str(), name.c_str(), nullptr, &err) != NATS_OK) {
    return std::nullopt;
  }
  ConsumerState st;
  st.pending = ci->NumPending;
  st.ack_pending = static_cast<uint64_t>(ci->NumAckPending);
  st.redelivered = static_cast<uint64_t>(ci->NumRedelivered);
  st.delivered_stream_seq = ci->Delivered.Stream;
  st.ack_floor = ci->AckFloor.Stream;
  st.max_deliver = ci->Config->MaxDeliver;
  jsConsumerInfo_Destroy(ci);
  return st;
}

std::vector<std::string> JsClient::stream_messages(const std::string& stream) {
  std::vector<std::string> out;
  jsStreamInfo* si = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  if (js_GetStreamInfo(&si, js_, stream.c_str(), nullptr, &err) != NATS_OK) return out;
  const uint64_t first = si->State.FirstSeq, last = si->State.LastSeq;
  const uint64_t count = si->State.Msgs;
  jsStreamInfo_Destroy(si);
  if (count == 0) return out;
  for (uint64_t seq = first; seq <= last; ++seq) {
    natsMsg* m = nullptr;
    if (js_GetMsg(&m, js_, stream.c_str(), seq, nullptr, &err) == NATS_OK) {
      out.emplace_back(natsMsg_GetData(m), static_cast<size_t>(natsMsg_GetDataLength(m)));
      natsMsg_Destroy(m);
    }
  }
  return out;
}

// ---- HTTP ----

HttpResponse http_get(int port, const std::string& path) {
  httplib::Client cli("127.0.0.1", port);
  cli.set_connection_timeout(2, 0);
  cli.set_read_timeout(5, 0);
  auto res = cli.Get(path.c_str());
  if (!res) return {};
  return {res->status, res->body};
}

// ---- Daemon ----

Daemon::Daemon(std::string config_yaml, std::map<std::string, std::string> env)
    : dir_("rdtest-daemon"), env_(std::move(env)), http_port_(0) {
  config_path_ = dir_.file("config.yaml");
  write_file(config_path_, config_yaml);
  if (auto it = env_.find("HEALTH_PORT"); it != env_.end()) {
    http_port_ = std::stoi(it->second);
  } else {
    http_port_ = free_port();
    env_["HEALTH_PORT"] = std::to_string(http_port_);
  }
  if (env_.find("LOG_FORMAT") == env_.end()) env_["LOG_FORMAT"] = "text";
  start();
}

Daemon::~Daemon() {
  if (proc_.running()) {
    proc_.signal(SIGTERM);
    if (!proc_.wait(20s)) proc_.kill_hard();
  }
  if (std::getenv("RDTEST_SHOW_LOGS") != nullptr) std::cerr << "---- daemon log ----\n" << log();
}

void Daemon::start() {
  exit_code_.reset();
  proc_ = Process({daemon_path(), "--config", config_path_}, env_, dir_.file("daemon.log"));
}

bool Daemon::wait_ready(std::chrono::milliseconds timeout) {
  return wait_until([&] { return proc_.running() && get("/ready").status == 200; }, timeout, 50ms);
}

void Daemon::stop(std::chrono::milliseconds timeout) {
  proc_.signal(SIGTERM);
  exit_code_ = proc_.wait(timeout);
  if (!exit_code_) proc_.kill_hard();
}

void Daemon::kill_hard() {
  proc_.kill_hard();
  exit_code_ = 128 + SIGKILL;
}

// ---- commands ----

CommandResult run_command(const std::vector<std::string>& argv,
                          const std::map<std::string, std::string>& env,
                          std::chrono::milliseconds timeout, const std::string& stdin_text) {
  TempDir dir("rdtest-cmd");
  std::vector<std::string> args = argv;
  std::string in_path;
  if (!stdin_text.empty()) {
    // Feed stdin through a file via sh so Process can stay simple.
    in_path = dir.file("stdin");
    write_file(in_path, stdin_text);
    std::string cmd = "exec";
    for (auto& a : args) {
      std::string q = "'";
      for (char c : a) q += (c == '\'') ? std::string("'\\''") : std::string(1, c);
      cmd += " " + q + "'";
    }
    cmd += " < '" + in_path + "'";
    args = {"/bin/sh", "-c", cmd};
  }
  Process p(args, env, dir.file("out.log"));
  auto st = p.wait(timeout);
  CommandResult r;
  if (!st) {
    p.kill_hard();
    r.status = -1;
  } else {
    r.status = *st;
  }
  r.output = p.log();
  return r;
}

std::string make_job(const std::string& tenant, int64_t route_id,
                     const std::string& destination_type,
                     const std::string& destination_config_json, const std::string& payload_json,
                     const std::string& topic) {
  nlohmann::json j;
  j["route"] = {{"id", route_id},
                {"destination_type", destination_type},
                {"destination_config", nlohmann::json::parse(destination_config_json)}};
  j["topic"] = topic;
  j["payload"] = nlohmann::json::parse(payload_json);
  j["tenant_id"] = tenant;
  return j.dump();
}

}  // namespace rdtest
