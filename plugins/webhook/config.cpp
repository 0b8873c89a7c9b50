#include "config.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

#include "signing.hpp"

namespace rd::webhook {

namespace {

using json = nlohmann::json;

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool is_token_char(char c) {
  if (std::isalnum(static_cast<unsigned char>(c))) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// Headers the plugin sets itself; a route may not replace them.
bool is_reserved_header(const std::string& lname) {
  static const char* const kReserved[] = {"webhook-id",
                                          "webhook-timestamp",
                                          "webhook-signature",
                                          "x-signature-256",
                                          "content-length",
                                          "transfer-encoding",
                                          "host",
                                          "connection",
                                          "expect",
                                          "te",
                                          "upgrade",
                                          "keep-alive"};
  for (const char* r : kReserved) {
    if (lname == r) return true;
  }
  return false;
}

struct UrlParts {
  std::string scheme, host;
  long port = 0;
  std::string target;  // path and query
  bool plain = true;   // no user info, no IPv6 zone id
};

std::optional<UrlParts> split_url(const std::string& url, std::string& error) {
  CURLU* u = curl_url();
  if (u == nullptr) {
    error = "out of memory parsing config.url";
    return std::nullopt;
  }
  std::optional<UrlParts> out;
  const CURLUcode rc = curl_url_set(u, CURLUPART_URL, url.c_str(), 0);
  if (rc != CURLUE_OK) {
    error = std::string("config.url is not a valid URL (") + curl_url_strerror(rc) + ")";
  } else {
    char* scheme = nullptr;
    char* host = nullptr;
    char* port = nullptr;
    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    curl_url_get(u, CURLUPART_HOST, &host, 0);
    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
    char* path = nullptr;
    char* query = nullptr;
    char* user = nullptr;
    char* zone = nullptr;
    curl_url_get(u, CURLUPART_PATH, &path, 0);
    curl_url_get(u, CURLUPART_QUERY, &query, 0);
    curl_url_get(u, CURLUPART_USER, &user, 0);
    curl_url_get(u, CURLUPART_ZONEID, &zone, 0);
    UrlParts p;
    p.target = path != nullptr && *path != '\0' ? path : "/";
    if (query != nullptr) p.target += std::string("?") + query;
    p.plain = user == nullptr && zone == nullptr;
    curl_free(path);
    curl_free(query);
    curl_free(user);
    curl_free(zone);
    p.scheme = scheme != nullptr ? lower(scheme) : "";
    p.host = host != nullptr ? host : "";
    p.port = port != nullptr ? std::strtol(port, nullptr, 10) : 0;
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    if (p.scheme != "http" && p.scheme != "https") {
      error = "config.url must be http:// or https://, got scheme \"" + p.scheme + "\"";
    } else if (p.host.empty()) {
      error = "config.url has no host";
    } else {
      if (p.host.size() >= 2 && p.host.front() == '[' && p.host.back() == ']') {
        p.host = p.host.substr(1, p.host.size() - 2);
      }
      out = p;
    }
  }
  curl_url_cleanup(u);
  return out;
}

ParsedRoute fail(std::string error) {
  ParsedRoute r;
  r.error = std::move(error);
  return r;
}

}  // namespace

PluginConfig parse_plugin_config(std::string_view text) {
  const rd::ConfigReader config(text, "webhook", kConfigKeys);
  PluginConfig c;
  c.timeout_ms = config.duration_ms("timeout", c.timeout_ms, 1);
  std::string error;
  auto nets = parse_allowed_networks(config.list("allowed_networks"), error);
  if (!nets) throw rd::ConfigKeyError(error);
  c.allowed_networks = std::move(*nets);
  c.ca_file = config.string("ca_file", c.ca_file);
  c.max_connections_per_host =
      config.integer("max_connections_per_host", c.max_connections_per_host, 1, 10000);
  c.max_queued_per_host = config.integer("max_queued_per_host", c.max_queued_per_host, 0, 1000000);
  c.max_idle_connections =
      config.integer("max_idle_connections", c.max_idle_connections, 1, 100000);
  c.threads = config.integer("threads", c.threads, 1, 64);
  c.response_excerpt_bytes =
      config.integer("response_excerpt_bytes", c.response_excerpt_bytes, 0, 4096);
  return c;
}

ParsedRoute parse_route_config(std::string_view text) {
  const json j = json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return fail("destination_config is not a JSON object");
  auto rc = std::make_shared<RouteConfig>();

  auto url = j.find("url");
  if (url == j.end() || !url->is_string() || url->get<std::string>().empty()) {
    return fail("config.url is missing; set destination_config.url to an http(s) URL");
  }
  rc->url = url->get<std::string>();
  std::string error;
  auto parts = split_url(rc->url, error);
  if (!parts) return fail(error);
  rc->scheme = parts->scheme;
  rc->host = parts->host;
  rc->port = parts->port;
  rc->target = parts->target;
  const bool v6 = rc->host.find(':') != std::string::npos;
  rc->host_key = (v6 ? "[" + rc->host + "]" : rc->host) + ":" + std::to_string(rc->port);
  rc->destination_key = rc->scheme + "://" + lower(rc->host_key);
  rc->host_literal = parse_ip(rc->host);
  rc->own_client = rc->scheme == "http" && parts->plain;

  if (auto m = j.find("method"); m != j.end() && !m->is_null()) {
    if (!m->is_string()) return fail("config.method must be a string (POST, PUT or PATCH)");
    std::string method = m->get<std::string>();
    std::transform(method.begin(), method.end(), method.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    if (method != "POST" && method != "PUT" && method != "PATCH") {
      return fail("config.method \"" + m->get<std::string>() +
                  "\" is not allowed; use POST, PUT or PATCH");
    }
    rc->method = method;
  }

  if (auto h = j.find("headers"); h != j.end() && !h->is_null()) {
    if (!h->is_object()) return fail("config.headers must be an object of name: value strings");
    for (auto it = h->begin(); it != h->end(); ++it) {
      const std::string& name = it.key();
      if (name.empty() || !std::all_of(name.begin(), name.end(), is_token_char)) {
        return fail("config.headers: \"" + name + "\" is not a valid header name");
      }
      if (is_reserved_header(lower(name))) {
        return fail("config.headers may not set " + name + "; the plugin sets it itself");
      }
      if (!it.value().is_string()) return fail("config.headers." + name + " must be a string");
      const std::string value = it.value().get<std::string>();
      if (value.find_first_of("\r\n", 0) != std::string::npos ||
          value.find('\0') != std::string::npos) {
        return fail("config.headers." + name + " contains a line break");
      }
      rc->headers.emplace_back(name, value);
    }
  }

  if (auto s = j.find("secret"); s != j.end() && !s->is_null()) {
    if (!s->is_string()) return fail("config.secret must be a string");
    const std::string secret = s->get<std::string>();
    if (secret.rfind("whsec_", 0) == 0) {
      auto key = base64_decode(std::string_view(secret).substr(6));
      if (!key || key->empty()) {
        return fail("config.secret starts with whsec_ but what follows is not base64");
      }
      rc->secret_kind = SecretKind::kStandardWebhooks;
      rc->secret_key = std::move(*key);
    } else if (!secret.empty()) {
      rc->secret_kind = SecretKind::kXSignature256;
      rc->secret_key = secret;
    }
  }

  if (auto t = j.find("timeout_ms"); t != j.end() && !t->is_null()) {
    if (!t->is_number_integer() || t->get<int64_t>() <= 0) {
      return fail("config.timeout_ms must be a positive integer (milliseconds)");
    }
    rc->timeout_ms = t->get<int64_t>();
  }

  ParsedRoute out;
  out.config = std::move(rc);
  return out;
}

}  // namespace rd::webhook
