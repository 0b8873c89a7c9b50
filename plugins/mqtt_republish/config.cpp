#include "config.hpp"

#include <cstdio>

#include "topic_template.hpp"

namespace rd::mqtt_republish {

Settings parse_settings(std::string_view config_json) {
  const rd::ConfigReader config(config_json, "mqtt_republish", kConfigKeys);
  Settings s;
  s.host = config.string("host", s.host);
  s.port = static_cast<int>(config.integer("port", s.port, 1, 65535));
  s.username = config.string("username", s.username);
  s.password = config.string("password", s.password);
  s.qos = static_cast<int>(config.integer("qos", s.qos, 0, 2));
  s.topic_prefix = config.string("topic_prefix", s.topic_prefix);
  s.tls = config.boolean("tls", s.tls);
  s.ca_file = config.string("ca_file", s.ca_file);
  s.max_inflight = static_cast<int>(config.integer("max_inflight", s.max_inflight, 1, 65535));
  s.publish_timeout_ms = config.duration_ms("publish_timeout", s.publish_timeout_ms, 100, 3600000);
  s.connect_timeout_ms = config.duration_ms("connect_timeout", s.connect_timeout_ms, 0, 600000);
  s.reconnect_min_ms = config.duration_ms("reconnect_min", s.reconnect_min_ms, 1, 3600000);
  s.reconnect_max_ms = config.duration_ms("reconnect_max", s.reconnect_max_ms, 1, 3600000);
  s.keepalive_ms = config.duration_ms("keepalive", s.keepalive_ms, 1000, 3600000);
  s.client_id_prefix = config.string("client_id_prefix", s.client_id_prefix);

  if (s.reconnect_max_ms < s.reconnect_min_ms) {
    config.fail("reconnect_max", "must not be shorter than reconnect_min");
  }
  if (s.host.find_first_of("/ \t") != std::string::npos) {
    config.fail("host",
                "must be a host name or address without scheme or path, e.g. mqtt.example.com");
  }
  if (s.client_id_prefix.empty() ||
      s.client_id_prefix.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                           "0123456789-_.") != std::string::npos) {
    config.fail("client_id_prefix",
                "must be non-empty and use only letters, digits, '-', '_' and '.'");
  }
  if (!s.topic_prefix.empty()) {
    std::string rendered;
    if (Check c = render(s.topic_prefix, "tenant", {}, false, rendered); !c.ok()) {
      config.fail("topic_prefix", c.error);
    }
    if (rendered.find_first_of("+#") != std::string::npos || !is_clean_utf8(rendered)) {
      config.fail("topic_prefix", "must be a valid topic without wildcards");
    }
  }
  return s;
}

std::string Settings::endpoint() const {
  const bool v6 = host.find(':') != std::string::npos && host.front() != '[';
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string Settings::server_uri() const {
  return (use_tls() ? "ssl://" : "tcp://") + endpoint();
}

std::string make_client_id(std::string_view prefix, std::string_view hostname, long pid,
                           unsigned instance, uint32_t random) {
  std::string host;
  for (char c : hostname.substr(0, 32)) {
    const bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_' || c == '.';
    host += keep ? c : '_';
  }
  char rnd[9];
  std::snprintf(rnd, sizeof rnd, "%08x", random);
  std::string id(prefix);
  if (!host.empty()) id += "-" + host;
  id += "-" + std::to_string(pid) + "-" + std::to_string(instance) + "-" + rnd;
  return id;
}

}  // namespace rd::mqtt_republish
