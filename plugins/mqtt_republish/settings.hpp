// plugins.mqtt_republish settings: parsed and checked once at create time, apart from the hot path.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace mqtt_republish {

struct Settings {
  std::string host;  // empty = not configured: the plugin loads but reports itself unavailable
  int port = 1883;
  std::string username;
  std::string password;
  int qos = 1;
  std::string topic_prefix;
  bool tls = false;
  std::string ca_file;  // setting it turns TLS on
  int max_inflight = 1000;
  int64_t publish_timeout_ms = 10000;
  int64_t connect_timeout_ms = 5000;
  int64_t reconnect_min_ms = 1000;
  int64_t reconnect_max_ms = 10000;
  int64_t keepalive_ms = 30000;
  std::string client_id_prefix = "route-delivery";

  bool configured() const { return !host.empty(); }
  bool use_tls() const { return tls || !ca_file.empty(); }
  // "tcp://host:port" or "ssl://host:port" (IPv6 literals bracketed).
  std::string server_uri() const;
  // "host:port" for messages.
  std::string endpoint() const;
};

// Parses the validated config object the host passes to xCreate. Missing keys keep their default.
// Throws std::invalid_argument naming the key (plugins.mqtt_republish.<key>) and what is wrong.
Settings parse_settings(std::string_view config_json);

// A client id unique to this process and instance, stable for its lifetime (reconnects reuse it):
// "<prefix>-<hostname>-<pid>-<instance>-<random>". Two daemons, even with the same hostname and
// pid in separate containers, get different ids and so do not take over each other's session.
std::string make_client_id(std::string_view prefix, std::string_view hostname, long pid,
                           unsigned instance, uint32_t random);

}  // namespace mqtt_republish
