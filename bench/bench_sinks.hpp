// Receivers that timestamp each delivery on arrival, for end-to-end latency (publish -> sink).
// Each job's payload carries "sent_ns" (CLOCK_REALTIME at publish); a receiver records
// arrival - sent_ns. Throughput runs use nginx / mosquitto instead, so the sink is not the limit.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace httplib {
class Server;
}
namespace mqtt {
class async_client;
}

namespace bench {

// The "sent_ns" value inside a payload, or -1.
int64_t sent_ns_of(std::string_view payload);

class LatencyLog {
 public:
  void record(std::string_view payload);
  uint64_t received() const { return received_.load(); }
  // Latencies in milliseconds, in order of arrival.
  std::vector<double> latencies_ms() const;

 private:
  mutable std::mutex mu_;
  std::vector<double> ms_;
  std::atomic<uint64_t> received_{0};
};

// HTTP/1.1 keep-alive receiver on 127.0.0.1:<port> answering 200 to every POST.
class HttpReceiver {
 public:
  HttpReceiver();
  ~HttpReceiver();
  int port() const { return port_; }
  LatencyLog& log() { return log_; }
  uint64_t signed_requests() const { return signed_.load(); }

 private:
  LatencyLog log_;
  std::atomic<uint64_t> signed_{0};
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

// MQTT subscriber (Paho C++) on `topic_filter`, QoS 0.
class MqttReceiver {
 public:
  MqttReceiver(const std::string& host, int port, const std::string& topic_filter);
  ~MqttReceiver();
  LatencyLog& log() { return log_; }

 private:
  LatencyLog log_;
  std::unique_ptr<mqtt::async_client> client_;
};

}  // namespace bench
