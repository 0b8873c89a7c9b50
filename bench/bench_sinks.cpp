#include "bench_sinks.hpp"

#include <httplib.h>
#include <mqtt/async_client.h>

#include <chrono>
#include <cstdlib>
#include <stdexcept>

#include "bench_support.hpp"

namespace bench {

int64_t sent_ns_of(std::string_view payload) {
  static constexpr std::string_view kKey = "\"sent_ns\":";
  const auto pos = payload.find(kKey);
  if (pos == std::string_view::npos) return -1;
  int64_t v = 0;
  bool any = false;
  for (size_t i = pos + kKey.size(); i < payload.size(); ++i) {
    const char c = payload[i];
    if (c == ' ') continue;
    if (c < '0' || c > '9') break;
    v = v * 10 + (c - '0');
    any = true;
  }
  return any ? v : -1;
}

void LatencyLog::record(std::string_view payload) {
  const int64_t now = wall_ns();
  const int64_t sent = sent_ns_of(payload);
  received_.fetch_add(1);
  if (sent <= 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  ms_.push_back(static_cast<double>(now - sent) / 1e6);
}

std::vector<double> LatencyLog::latencies_ms() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ms_;
}

HttpReceiver::HttpReceiver() : server_(std::make_unique<httplib::Server>()) {
  server_->set_keep_alive_max_count(1'000'000);
  server_->set_keep_alive_timeout(60);
  server_->Post(".*", [this](const httplib::Request& req, httplib::Response& res) {
    log_.record(req.body);
    if (req.has_header("X-Signature-256")) signed_.fetch_add(1);
    res.status = 200;
  });
  port_ = server_->bind_to_any_port("127.0.0.1");
  if (port_ <= 0) throw std::runtime_error("latency receiver: cannot bind");
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  wait_until([&] { return server_->is_running(); }, std::chrono::seconds(5));
}

HttpReceiver::~HttpReceiver() {
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

MqttReceiver::MqttReceiver(const std::string& host, int port, const std::string& topic_filter)
    : client_(std::make_unique<mqtt::async_client>(
          "tcp://" + host + ":" + std::to_string(port),
          "rd-bench-sub-" + std::to_string(static_cast<long>(wall_ns() % 1'000'000'007)),
          mqtt::create_options(MQTTVERSION_3_1_1))) {
  client_->set_message_callback(
      [this](mqtt::const_message_ptr msg) { log_.record(msg->get_payload_str()); });
  auto opts = mqtt::connect_options_builder().clean_session(true).keep_alive_interval(
      std::chrono::seconds(30));
  client_->connect(opts.finalize())->wait();
  client_->subscribe(topic_filter, 0)->wait();
}

MqttReceiver::~MqttReceiver() {
  try {
    client_->disconnect()->wait_for(std::chrono::seconds(2));
  } catch (...) {
  }
}

}  // namespace bench
