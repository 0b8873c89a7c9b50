// The webhook plugin's event thread: one libcurl multi handle that runs every request of the
// hosts assigned to it, reusing connections (keep-alive, HTTP/2 multiplexing over TLS) from one
// pool, with a cap on concurrent requests per host so one slow endpoint cannot take every slot.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "address_policy.hpp"
#include "classify.hpp"
#include "webhook_config.hpp"

namespace webhook {

using Clock = std::chrono::steady_clock;

// One job attempt handed to the loop. Owns copies of everything it needs.
struct DeliveryJob {
  uint64_t delivery_id = 0;
  std::shared_ptr<const RouteConfig> route;
  std::string body;
  std::string webhook_id;
  int64_t budget_ms = 0;       // total time allowed, including any wait for a free slot
  Clock::time_point deadline;  // accepted + budget
};

// What the loop reports back; implemented by the plugin (completions, metrics).
class DeliverySink {
 public:
  virtual ~DeliverySink() = default;
  virtual void complete(uint64_t delivery_id, const Decision& decision) = 0;
  // One finished HTTP request: status (0 = no response) and its duration.
  virtual void request_finished(long status, double seconds) = 0;
  virtual void ssrf_refused() = 0;
  virtual void queue_rejected() = 0;
  // This loop's current requests in flight and waiting for a slot (loop `index`).
  virtual void gauges(int index, int64_t in_flight, int64_t queued) = 0;
};

class DeliveryLoop {
 public:
  DeliveryLoop(int index, const PluginConfig& config, const AddressPolicy& policy,
               DeliverySink& sink, std::string user_agent);
  ~DeliveryLoop();  // stops the thread; what is unfinished completes as retry
  DeliveryLoop(const DeliveryLoop&) = delete;
  DeliveryLoop& operator=(const DeliveryLoop&) = delete;

  // Any thread; returns at once.
  void submit(DeliveryJob job);

  int64_t in_flight() const { return in_flight_.load(std::memory_order_relaxed); }
  int64_t queued() const { return queued_.load(std::memory_order_relaxed); }

 private:
  struct Transfer;
  struct HostState {
    int64_t active = 0;
    std::deque<DeliveryJob> waiting;
  };

  void run();
  void admit(DeliveryJob job);
  void start(DeliveryJob job, HostState& host);
  void finish(Transfer* t, CURLcode code);
  void start_waiting(const std::string& host_key);
  void expire_waiting(Clock::time_point now);
  void shutdown_all();
  void publish_gauges(bool force);

  static curl_socket_t open_socket(void* clientp, curlsocktype purpose, curl_sockaddr* address);
  static size_t on_body(char* data, size_t size, size_t n, void* userp);
  static size_t on_header(char* data, size_t size, size_t n, void* userp);

  const int index_;
  const PluginConfig& config_;
  const AddressPolicy& policy_;
  DeliverySink& sink_;
  const std::string user_agent_;

  CURLM* multi_ = nullptr;
  CURLSH* share_ = nullptr;
  std::vector<CURL*> idle_easy_;  // reused easy handles (curl_easy_reset between uses)
  std::unordered_map<CURL*, std::unique_ptr<Transfer>> transfers_;
  std::unordered_map<std::string, HostState> hosts_;
  Clock::time_point last_expiry_{};
  Clock::time_point last_gauges_{};

  std::mutex mu_;  // guards inbox_ and stop_
  std::vector<DeliveryJob> inbox_;
  bool stop_ = false;

  std::atomic<int64_t> in_flight_{0};
  std::atomic<int64_t> queued_{0};
  std::thread thread_;
};

}  // namespace webhook
