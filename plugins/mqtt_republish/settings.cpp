#include "settings.hpp"

#include <cstdio>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "topic_template.hpp"

namespace mqtt_republish {

using nlohmann::json;

namespace {

[[noreturn]] void fail(const std::string& key, const std::string& what) {
  throw std::invalid_argument("plugins.mqtt_republish." + key + ": " + what);
}

const json* find(const json& config, const char* key) {
  const auto it = config.find(key);
  return it == config.end() || it->is_null() ? nullptr : &*it;
}

void read_string(const json& config, const char* key, std::string& out) {
  if (const json* v = find(config, key)) {
    if (!v->is_string()) fail(key, "must be a string");
    out = v->get<std::string>();
  }
}

void read_bool(const json& config, const char* key, bool& out) {
  if (const json* v = find(config, key)) {
    if (!v->is_boolean()) fail(key, "must be true or false");
    out = v->get<bool>();
  }
}

int64_t read_int(const json& config, const char* key, int64_t value, int64_t min, int64_t max,
                 const char* unit = "") {
  if (const json* v = find(config, key)) {
    if (!v->is_number_integer()) fail(key, "must be an integer");
    value = v->get<int64_t>();
    if (value < min || value > max) {
      fail(key, "must be between " + std::to_string(min) + unit + " and " + std::to_string(max) +
                    unit + ", got " + std::to_string(value) + unit);
    }
  }
  return value;
}

}  // namespace

Settings parse_settings(std::string_view config_json) {
  const json config = json::parse(config_json.begin(), config_json.end(), nullptr, false);
  if (config.is_discarded() || !config.is_object()) {
    throw std::invalid_argument("plugins.mqtt_republish: configuration is not a JSON object");
  }
  Settings s;
  read_string(config, "host", s.host);
  s.port = static_cast<int>(read_int(config, "port", s.port, 1, 65535));
  read_string(config, "username", s.username);
  read_string(config, "password", s.password);
  s.qos = static_cast<int>(read_int(config, "qos", s.qos, 0, 2));
  read_string(config, "topic_prefix", s.topic_prefix);
  read_bool(config, "tls", s.tls);
  read_string(config, "ca_file", s.ca_file);
  s.max_inflight = static_cast<int>(read_int(config, "max_inflight", s.max_inflight, 1, 65535));
  s.publish_timeout_ms =
      read_int(config, "publish_timeout", s.publish_timeout_ms, 100, 3600000, "ms");
  s.connect_timeout_ms = read_int(config, "connect_timeout", s.connect_timeout_ms, 0, 600000, "ms");
  s.reconnect_min_ms = read_int(config, "reconnect_min", s.reconnect_min_ms, 1, 3600000, "ms");
  s.reconnect_max_ms = read_int(config, "reconnect_max", s.reconnect_max_ms, 1, 3600000, "ms");
  s.keepalive_ms = read_int(config, "keepalive", s.keepalive_ms, 1000, 3600000, "ms");
  read_string(config, "client_id_prefix", s.client_id_prefix);

  if (s.reconnect_max_ms < s.reconnect_min_ms) {
    fail("reconnect_max", "must not be shorter than reconnect_min");
  }
  if (s.host.find_first_of("/ \t") != std::string::npos) {
    fail("host", "must be a host name or address without scheme or path, e.g. mqtt.example.com");
  }
  if (s.client_id_prefix.empty() ||
      s.client_id_prefix.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                           "0123456789-_.") != std::string::npos) {
    fail("client_id_prefix", "must be non-empty and use only letters, digits, '-', '_' and '.'");
  }
  if (!s.topic_prefix.empty()) {
    std::string rendered;
    if (Check c = render(s.topic_prefix, "tenant", {}, false, rendered); !c.ok()) {
      fail("topic_prefix", c.error);
    }
    if (rendered.find_first_of("+#") != std::string::npos || !is_clean_utf8(rendered)) {
      fail("topic_prefix", "must be a valid topic without wildcards");
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

}  // namespace mqtt_republish
