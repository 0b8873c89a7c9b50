// plugins.mqtt_republish settings: parsed and checked once at create time, apart from the hot path.
#pragma once

#include <cstdint>
#include <route_delivery/plugin.hpp>
#include <string>
#include <string_view>

namespace rd::mqtt_republish {

// The declared keys (the descriptor's table): the host validates and normalises them, and
// parse_settings reads them through rd::ConfigReader.
inline constexpr rd_config_key kConfigKeys[] = {
    rd::config_key(RD_CONFIG_STRING, "host", "", "MQTT_HOST",
                   "broker host name or address; empty = plugin unavailable"),
    rd::range(rd::config_key(RD_CONFIG_INT, "port", "1883", "MQTT_PORT",
                             "broker port (8883 is usual for TLS)"),
              1, 65535),
    rd::config_key(RD_CONFIG_STRING, "username", "", "MQTT_USERNAME",
                   "user name; empty = anonymous"),
    rd::config_key(RD_CONFIG_SECRET, "password", "", "MQTT_PASSWORD", "password for username"),
    rd::range(rd::config_key(RD_CONFIG_INT, "qos", "1", "MQTT_QOS",
                             "QoS when the route does not set one (0, 1 or 2)"),
              0, 2),
    rd::config_key(
        RD_CONFIG_STRING, "topic_prefix", "", "MQTT_TOPIC_PREFIX",
        "every topic must start with this (may use {tenant_id}), e.g. tenants/{tenant_id}/"),
    rd::config_key(RD_CONFIG_BOOL, "tls", "false", "MQTT_TLS", "connect with TLS (ssl://)"),
    rd::config_key(RD_CONFIG_STRING, "ca_file", "", "MQTT_CA_FILE",
                   "PEM CA bundle to verify the broker; setting it turns TLS on"),
    rd::range(rd::config_key(RD_CONFIG_INT, "max_inflight", "1000", nullptr,
                             "unacknowledged QoS 1/2 publishes on the connection at once (QoS 2: "
                             "keep it within the broker's max_inflight_messages + "
                             "max_queued_messages)"),
              1, 65535),
    rd::range(rd::config_key(RD_CONFIG_DURATION, "publish_timeout", "10s", nullptr,
                             "no acknowledgement within this = retry"),
              100, 3600000),
    rd::range(rd::config_key(RD_CONFIG_DURATION, "connect_timeout", "5s", nullptr,
                             "TCP+CONNACK timeout; start-up waits this long for the first "
                             "connection"),
              0, 600000),
    rd::range(rd::config_key(RD_CONFIG_DURATION, "reconnect_min", "1s", nullptr,
                             "first reconnect delay (doubles up to reconnect_max)"),
              1, 3600000),
    rd::range(rd::config_key(RD_CONFIG_DURATION, "reconnect_max", "10s", nullptr,
                             "longest reconnect delay"),
              1, 3600000),
    rd::range(
        rd::config_key(RD_CONFIG_DURATION, "keepalive", "30s", nullptr, "MQTT keep-alive interval"),
        1000, 3600000),
    rd::config_key(RD_CONFIG_STRING, "client_id_prefix", "route-delivery", "MQTT_CLIENT_ID_PREFIX",
                   "client id = <prefix>-<hostname>-<pid>-<n>-<random>, unique per process"),
};

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
// Throws rd::ConfigKeyError (a std::invalid_argument) naming the key (plugins.mqtt_republish.<key>)
// and what is wrong.
Settings parse_settings(std::string_view config_json);

// A client id unique to this process and instance, stable for its lifetime (reconnects reuse it):
// "<prefix>-<hostname>-<pid>-<instance>-<random>". Two daemons, even with the same hostname and
// pid in separate containers, get different ids and so do not take over each other's session.
std::string make_client_id(std::string_view prefix, std::string_view hostname, long pid,
                           unsigned instance, uint32_t random);

}  // namespace rd::mqtt_republish
