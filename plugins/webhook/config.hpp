// Configuration of the webhook plugin: the plugin-wide section (plugins.webhook, parsed once in
// xCreate) and the per-route destination_config (parsed once per distinct config text and cached).
// Parsing is apart from the hot path and has no network access.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <route_delivery/plugin.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "address_policy.hpp"

namespace rd::webhook {

// The declared keys of plugins.webhook (the descriptor's table): the host validates and
// normalises them, and parse_plugin_config reads them through rd::ConfigReader.
inline constexpr rd_config_key kConfigKeys[] = {
    rd::at_least(rd::config_key(RD_CONFIG_DURATION, "timeout", "10s", "WEBHOOK_TIMEOUT_SECONDS",
                                "connect and total time limit of one webhook request"),
                 1),
    rd::config_key(RD_CONFIG_LIST, "allowed_networks", "", "WEBHOOK_ALLOWED_NETWORKS",
                   "CIDRs exempt from the private/loopback/link-local address block"),
    rd::config_key(RD_CONFIG_STRING, "ca_file", "", "WEBHOOK_CA_FILE",
                   "PEM CA bundle to verify TLS servers with instead of the system store"),
    rd::range(rd::config_key(RD_CONFIG_INT, "max_connections_per_host", "8",
                             "WEBHOOK_MAX_CONNECTIONS_PER_HOST",
                             "concurrent requests (and connections) per destination host:port"),
              1, 10000),
    rd::range(
        rd::config_key(RD_CONFIG_INT, "max_queued_per_host", "4096", "WEBHOOK_MAX_QUEUED_PER_HOST",
                       "requests waiting for a busy host beyond which new ones are retried later"),
        0, 1000000),
    rd::range(rd::config_key(RD_CONFIG_INT, "max_idle_connections", "1024",
                             "WEBHOOK_MAX_IDLE_CONNECTIONS",
                             "keep-alive connections kept open per event thread"),
              1, 100000),
    rd::range(rd::config_key(RD_CONFIG_INT, "threads", "1", "WEBHOOK_THREADS",
                             "event threads; each destination host is served by one of them"),
              1, 64),
    rd::range(rd::config_key(RD_CONFIG_INT, "response_excerpt_bytes", "200", nullptr,
                             "bytes of a failed response's body quoted in the failure reason"),
              0, 4096),
};

struct PluginConfig {
  int64_t timeout_ms = 10000;            // connect + total, per request
  std::vector<Cidr> allowed_networks;    // exempt from the SSRF guard
  std::string ca_file;                   // extra CA bundle; empty = system store
  int64_t max_connections_per_host = 8;  // concurrent requests (and connections) per host
  // Waiting for a free slot; beyond: retry at once. At least the host's default
  // delivery.max_in_flight (1024), so a burst to one host is never sent back for this reason.
  int64_t max_queued_per_host = 4096;
  int64_t max_idle_connections = 1024;   // keep-alive pool size per event thread
  int64_t threads = 1;                   // event threads (each host is served by exactly one)
  int64_t response_excerpt_bytes = 200;  // of the response body, into failure reasons
};

// Parses the plugins.webhook object the host passes to xCreate, as the host normalised it
// (durations in integer milliseconds, lists as arrays of strings). Missing keys keep their default.
// Throws rd::ConfigKeyError (a std::invalid_argument) with a message naming the key on a bad value.
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
  std::string target;  // the request target: the URL's path and query ("/" when it has none)
  // Sent by the loop's own HTTP/1.1 client rather than libcurl (see delivery_loop.hpp): plain
  // http:// with no user info or IPv6 zone id in the URL.
  bool own_client = false;
};

// A route's destination_config parsed, or why it can never be delivered.
struct ParsedRoute {
  std::shared_ptr<const RouteConfig> config;  // null on error
  std::string error;                          // "config.method ..." etc.
};

ParsedRoute parse_route_config(std::string_view json);

}  // namespace rd::webhook
