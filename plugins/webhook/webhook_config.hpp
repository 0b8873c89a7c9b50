// Configuration of the webhook plugin: the plugin-wide section (plugins.webhook, parsed once in
// xCreate) and the per-route destination_config (parsed once per distinct config text and cached).
// Parsing is apart from the hot path and has no network access.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "address_policy.hpp"

namespace webhook {

struct PluginConfig {
  int64_t timeout_ms = 10000;            // connect + total, per request
  std::vector<Cidr> allowed_networks;    // exempt from the SSRF guard
  std::string ca_file;                   // extra CA bundle; empty = system store
  int64_t max_connections_per_host = 8;  // concurrent requests (and connections) per host
  // Waiting for a free slot; beyond: retry at once. At least the host's default
  // delivery.max_in_flight (1024), so a burst to one host is never sent back for this reason.
  int64_t max_queued_per_host = 4096;
  int64_t max_idle_connections = 256;    // keep-alive pool size per event thread
  int64_t threads = 1;                   // event threads (each host is served by exactly one)
  int64_t response_excerpt_bytes = 200;  // of the response body, into failure reasons
};

// Parses the plugins.webhook object the host passes to xCreate. Durations are integer
// milliseconds (the host normalises them); strings such as "10s" are accepted too. Throws
// std::invalid_argument with a message naming the key on a bad value.
PluginConfig parse_plugin_config(std::string_view json);

enum class SecretKind { kNone, kStandardWebhooks, kXSignature256 };

struct RouteConfig {
  std::string url;
  std::string method = "POST";
  std::vector<std::pair<std::string, std::string>> headers;  // static extra headers, validated
  SecretKind secret_kind = SecretKind::kNone;
  std::string secret_key;   // raw HMAC key: decoded whsec_ bytes, or the secret's bytes
  int64_t timeout_ms = -1;  // per-route limit, -1 = none (bounded by the plugin's timeout anyway)
  std::string scheme;       // "http" or "https"
  std::string host;         // as written in the URL, without brackets
  long port = 0;
  std::string host_key;  // "host:port" as written, for reasons
  // "scheme://host:port" lowercased with the default port spelled out: the destination key
  // (xDestination) and the unit of the per-host queues and connection caps.
  std::string destination_key;
  std::optional<IpAddress> host_literal;  // set when the URL host is an IP address (any spelling)
};

// A route's destination_config parsed, or why it can never be delivered.
struct ParsedRoute {
  std::shared_ptr<const RouteConfig> config;  // null on error
  std::string error;                          // "config.method ..." etc.
};

ParsedRoute parse_route_config(std::string_view json);

// "250ms", "10s", "5m", "1h", or a bare number of seconds. nullopt when malformed.
std::optional<int64_t> parse_duration_ms(std::string_view text);

}  // namespace webhook
