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
#include <unordered_set>
#include <vector>

namespace httplib {
class Server;
}
namespace mqtt {
class async_client;
}

namespace bench {

// The non-negative integer after "<key>": inside a payload, or -1 (no JSON parsing: a scan).
int64_t number_of(std::string_view payload, std::string_view key);
// The "sent_ns" value inside a payload, or -1.
int64_t sent_ns_of(std::string_view payload);

class LatencyLog {
 public:
  // One arrival: the job's "seq" and "sent_ns" (-1 when absent) and when it arrived (wall_ns).
  struct Arrival {
    int64_t seq;
    int64_t sent_ns;
    int64_t arrived_ns;
  };
  void record(std::string_view payload);
  uint64_t received() const { return received_.load(); }
  // Distinct "seq" values received, and arrivals of a seq already received (duplicates).
  uint64_t distinct() const;
  uint64_t duplicates() const { return received() - distinct(); }
  // Latencies in milliseconds, in order of arrival.
  std::vector<double> latencies_ms() const;
  std::vector<Arrival> arrivals() const;

 private:
  mutable std::mutex mu_;
  std::vector<double> ms_;
  std::vector<Arrival> arrivals_;
  std::unordered_set<int64_t> seqs_;
  std::atomic<uint64_t> received_{0};
};

// HTTP/1.1 keep-alive receiver on 127.0.0.1:<port> answering 200 to every POST, after `delay_ms`
// (a sleep: a slow endpoint that costs no CPU). `port` 0 = a free one; else that port (to bring
// a dead endpoint back); throws when it cannot bind. Serves up to `threads` connections at once.
class HttpReceiver {
 public:
  explicit HttpReceiver(int delay_ms = 0, int port = 0, int threads = 64);
  ~HttpReceiver();
  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/hook"; }
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
