// Helpers for the mqtt_republish tests: a Paho subscriber that records what the broker delivers,
// a "silent broker" that accepts connections but never acknowledges a publish, and config JSON.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

namespace mqtt {
class async_client;
}

namespace rdtest {

std::string mqtt_plugin_path();  // build/lib/route-delivery/plugins/mqtt_republish.so

// Config object as the host would pass it, pointing at 127.0.0.1:port; `extra` is spliced in,
// e.g. R"("qos":2,"topic_prefix":"t/")".
std::string mqtt_plugin_config(int port, const std::string& user = "", const std::string& pass = "",
                               const std::string& extra = "");

struct MqttMessage {
  std::string topic;
  std::string payload;
  int qos = -1;
  bool retained = false;
};

// Subscribes to `filter` at QoS 2 (so each message arrives at the QoS it was published with).
class MqttSubscriber {
 public:
  MqttSubscriber(int port, const std::string& filter, const std::string& user = "",
                 const std::string& pass = "");
  ~MqttSubscriber();
  MqttSubscriber(const MqttSubscriber&) = delete;
  MqttSubscriber& operator=(const MqttSubscriber&) = delete;

  std::optional<MqttMessage> next(std::chrono::milliseconds timeout);
  // Waits until `n` messages arrived in total (since construction); returns all of them.
  std::vector<MqttMessage> wait_for(size_t n, std::chrono::milliseconds timeout);

 private:
  std::unique_ptr<mqtt::async_client> client_;
  std::vector<MqttMessage> received_;
};

// Accepts MQTT connections on a free port, answers CONNECT with CONNACK "accepted" and then reads
// and discards everything: a broker that never acknowledges a publish.
class SilentBroker {
 public:
  SilentBroker();
  ~SilentBroker();
  int port() const { return port_; }
  size_t bytes_received() const { return bytes_.load(); }

 private:
  void serve();
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<size_t> bytes_{0};
  std::thread thread_;
};

// mosquitto with two listeners: TLS on tls_port() (a certificate for 127.0.0.1 signed by a CA made
// for this test, ca_file()) and plain TCP on plain_port() for test subscribers. other_ca_file() is
// an unrelated CA, for the "wrong CA" case.
class TlsMosquitto {
 public:
  TlsMosquitto();
  ~TlsMosquitto();
  int tls_port() const { return tls_port_; }
  int plain_port() const { return plain_port_; }
  std::string ca_file() const;
  std::string other_ca_file() const;
  std::string log() const;

 private:
  std::unique_ptr<TempDir> dir_;
  int tls_port_ = 0, plain_port_ = 0;
  std::unique_ptr<Process> proc_;
};

}  // namespace rdtest
