#include "bench_sinks.hpp"

#include <httplib.h>
#include <mqtt/async_client.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <stdexcept>

#include "measure.hpp"
#include "test_support.hpp"

namespace bench {

using rdtest::wait_until;
using rdtest::wall_ns;

int64_t number_of(std::string_view payload, std::string_view key) {
  std::string quoted;
  quoted.reserve(key.size() + 3);
  quoted.append("\"").append(key).append("\":");
  const auto pos = payload.find(quoted);
  if (pos == std::string_view::npos) return -1;
  int64_t v = 0;
  bool any = false;
  for (size_t i = pos + quoted.size(); i < payload.size(); ++i) {
    const char c = payload[i];
    if (c == ' ') continue;
    if (c < '0' || c > '9') break;
    v = v * 10 + (c - '0');
    any = true;
  }
  return any ? v : -1;
}

int64_t sent_ns_of(std::string_view payload) {
  return number_of(payload, "sent_ns");
}

void LatencyLog::record(std::string_view payload) {
  const int64_t now = wall_ns();
  const int64_t sent = sent_ns_of(payload);
  const int64_t seq = number_of(payload, "seq");
  std::lock_guard<std::mutex> lock(mu_);
  // Counted under the lock so that received() - distinct() is never negative.
  received_.fetch_add(1);
  if (seq >= 0) seqs_.insert(seq);
  arrivals_.push_back({seq, sent, now});
  if (sent <= 0) return;
  ms_.push_back(static_cast<double>(now - sent) / 1e6);
}

uint64_t LatencyLog::distinct() const {
  std::lock_guard<std::mutex> lock(mu_);
  // Arrivals without a seq cannot be told apart: each counts as distinct.
  uint64_t no_seq = 0;
  for (const auto& a : arrivals_) no_seq += a.seq < 0 ? 1 : 0;
  return seqs_.size() + no_seq;
}

std::vector<double> LatencyLog::latencies_ms() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ms_;
}

std::vector<LatencyLog::Arrival> LatencyLog::arrivals() const {
  std::lock_guard<std::mutex> lock(mu_);
  return arrivals_;
}

HttpReceiver::HttpReceiver(int delay_ms, int port, int threads)
    : server_(std::make_unique<httplib::Server>()) {
  // One pool thread per open keep-alive connection: more connections than threads would queue
  // requests inside the receiver and show up as the daemon's latency.
  server_->new_task_queue = [threads] {
    return new httplib::ThreadPool(static_cast<size_t>(std::max(1, threads)));
  };
  server_->set_keep_alive_max_count(1'000'000);
  server_->set_keep_alive_timeout(60);
  server_->Post(".*", [this, delay_ms](const httplib::Request& req, httplib::Response& res) {
    if (delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    log_.record(req.body);
    if (req.has_header("X-Signature-256")) signed_.fetch_add(1);
    res.status = 200;
  });
  if (port > 0) {
    if (!server_->bind_to_port("127.0.0.1", port))
      throw std::runtime_error("http receiver: cannot bind 127.0.0.1:" + std::to_string(port));
    port_ = port;
  } else {
    port_ = server_->bind_to_any_port("127.0.0.1");
  }
  if (port_ <= 0) throw std::runtime_error("http receiver: cannot bind");
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
