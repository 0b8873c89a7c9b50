#include "mqtt_test_support.hpp"

#include <arpa/inet.h>
#include <mqtt/async_client.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <stdexcept>

#include "test_support.hpp"

namespace rdtest {

using namespace std::chrono_literals;

std::string mqtt_plugin_path() {
  return plugin_dir() + "/mqtt_republish.so";
}

std::string mqtt_plugin_config(int port, const std::string& user, const std::string& pass,
                               const std::string& extra) {
  std::string json = R"({"host":"127.0.0.1","port":)" + std::to_string(port) + R"(,"username":")" +
                     user + R"(","password":")" + pass +
                     R"(","connect_timeout":3000,"reconnect_min":1000,"reconnect_max":2000)";
  if (!extra.empty()) json += "," + extra;
  return json + "}";
}

namespace {
std::atomic<int> g_subscriber_seq{0};
}

MqttSubscriber::MqttSubscriber(int port, const std::string& filter, const std::string& user,
                               const std::string& pass) {
  const std::string id =
      "rdtest-sub-" + std::to_string(::getpid()) + "-" + std::to_string(++g_subscriber_seq);
  client_ = std::make_unique<mqtt::async_client>("tcp://127.0.0.1:" + std::to_string(port), id);
  client_->start_consuming();
  mqtt::connect_options opts;
  opts.set_clean_session(true);
  if (!user.empty()) {
    opts.set_user_name(user);
    opts.set_password(pass);
  }
  client_->connect(opts)->wait_for(std::chrono::seconds(10));
  if (!client_->is_connected()) throw std::runtime_error("subscriber could not connect");
  if (!client_->subscribe(filter, 2)->wait_for(std::chrono::seconds(10))) {
    throw std::runtime_error("subscribe timed out");
  }
}

MqttSubscriber::~MqttSubscriber() {
  try {
    client_->stop_consuming();
    if (client_->is_connected()) client_->disconnect()->wait_for(std::chrono::seconds(2));
  } catch (...) {
  }
}

std::optional<MqttMessage> MqttSubscriber::next(std::chrono::milliseconds timeout) {
  mqtt::const_message_ptr msg;
  if (!client_->try_consume_message_for(&msg, timeout) || !msg) return std::nullopt;
  MqttMessage m{msg->get_topic(), msg->to_string(), msg->get_qos(), msg->is_retained()};
  received_.push_back(m);
  return m;
}

std::vector<MqttMessage> MqttSubscriber::wait_for(size_t n, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (received_.size() < n) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    next(left);
  }
  return received_;
}

SilentBroker::SilentBroker() {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 16) != 0) {
    throw std::runtime_error("SilentBroker: cannot listen");
  }
  socklen_t len = sizeof addr;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { serve(); });
}

SilentBroker::~SilentBroker() {
  stop_ = true;
  thread_.join();
  ::close(listen_fd_);
}

void SilentBroker::serve() {
  std::vector<pollfd> fds{{listen_fd_, POLLIN, 0}};
  std::vector<bool> greeted{false};
  char buf[65536];
  while (!stop_) {
    if (::poll(fds.data(), fds.size(), 50) <= 0) continue;
    for (size_t i = 0; i < fds.size(); ++i) {
      if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      if (i == 0) {
        const int fd = ::accept(listen_fd_, nullptr, nullptr);
        if (fd >= 0) {
          fds.push_back({fd, POLLIN, 0});
          greeted.push_back(false);
        }
        continue;
      }
      const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        ::close(fds[i].fd);
        fds[i].fd = -1;  // poll ignores negative descriptors
        continue;
      }
      bytes_ += static_cast<size_t>(n);
      if (!greeted[i]) {
        // The first packet is CONNECT: answer CONNACK, session present 0, return code 0.
        const unsigned char connack[] = {0x20, 0x02, 0x00, 0x00};
        (void)!::write(fds[i].fd, connack, sizeof connack);
        greeted[i] = true;
      }
    }
  }
  for (size_t i = 1; i < fds.size(); ++i) {
    if (fds[i].fd >= 0) ::close(fds[i].fd);
  }
}

namespace {
void openssl(const std::vector<std::string>& args) {
  std::vector<std::string> argv{"/usr/bin/openssl"};
  argv.insert(argv.end(), args.begin(), args.end());
  const CommandResult r = run_command(argv);
  if (r.status != 0) throw std::runtime_error("openssl failed: " + r.output);
}

}  // namespace

TlsMosquitto::TlsMosquitto()
    : dir_(std::make_unique<TempDir>("rdtest-mqtt-tls")),
      tls_port_(free_port()),
      plain_port_(free_port()) {
  const auto f = [&](const char* name) { return dir_->file(name); };
  for (const char* ca : {"ca", "other-ca"}) {
    openssl({"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             std::string("/CN=rdtest ") + ca, "-keyout", f(ca) + ".key", "-out", f(ca) + ".pem"});
  }
  openssl({"req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout",
           f("server.key"), "-out", f("server.csr")});
  write_file(f("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  openssl({"x509", "-req", "-in", f("server.csr"), "-CA", f("ca.pem"), "-CAkey", f("ca.key"),
           "-CAcreateserial", "-days", "2", "-extfile", f("san.ext"), "-out", f("server.pem")});
  std::string conf =
      "per_listener_settings false\nallow_anonymous true\npersistence false\n"
      "log_dest stderr\n";
  if (::geteuid() == 0) conf += "user root\n";
  conf += "listener " + std::to_string(plain_port_) + " 127.0.0.1\n";
  conf += "listener " + std::to_string(tls_port_) + " 127.0.0.1\ncafile " + f("ca.pem") +
          "\ncertfile " + f("server.pem") + "\nkeyfile " + f("server.key") + "\n";
  write_file(f("mosquitto.conf"), conf);
  proc_ = std::make_unique<Process>(
      std::vector<std::string>{"/usr/sbin/mosquitto", "-c", f("mosquitto.conf")},
      std::map<std::string, std::string>{}, f("mosquitto.log"));
  if (!wait_until(
          [&] { return loopback_port_accepts(plain_port_) && loopback_port_accepts(tls_port_); },
          10s)) {
    throw std::runtime_error("mosquitto (TLS) did not start: " + log());
  }
}

TlsMosquitto::~TlsMosquitto() {
  proc_->kill_hard();
}

std::string TlsMosquitto::ca_file() const {
  return dir_->file("ca.pem");
}
std::string TlsMosquitto::other_ca_file() const {
  return dir_->file("other-ca.pem");
}
std::string TlsMosquitto::log() const {
  return proc_->log();
}

}  // namespace rdtest
