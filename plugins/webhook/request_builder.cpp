#include "request_builder.hpp"

#include <strings.h>

#include <charconv>

namespace rd::webhook {

namespace {
std::string header_line(std::string_view name, std::string_view value) {
  std::string line(name);
  // libcurl drops a header written "Name:" with nothing after it; "Name;" sends it empty.
  if (value.empty()) return line + ";";
  line += ": ";
  line.append(value);
  return line;
}
}  // namespace

std::shared_ptr<const RequestTemplate> make_request_template(
    std::shared_ptr<const RouteConfig> route, std::string_view user_agent) {
  auto t = std::make_shared<RequestTemplate>();
  bool content_type = false, agent = false;
  for (const auto& [name, value] : route->headers) {
    if (strcasecmp(name.c_str(), "content-type") == 0) content_type = true;
    if (strcasecmp(name.c_str(), "user-agent") == 0) agent = true;
  }
  t->leading.reserve(route->headers.size() + 2);
  if (!content_type) t->leading.push_back("Content-Type: application/json");
  if (!agent) t->leading.push_back(header_line("User-Agent", user_agent));
  for (const auto& [name, value] : route->headers) t->leading.push_back(header_line(name, value));
  // No "Expect: 100-continue" round trip before the body.
  t->trailing.push_back("Expect:");
  if (route->secret_kind != SecretKind::kNone) {
    t->key = std::make_unique<const HmacSha256Key>(route->secret_key);
  }
  if (route->own_client) {
    std::string& h = t->http1_head;
    const bool v6 = route->host.find(':') != std::string::npos;
    h = route->method + " " + route->target +
        " HTTP/1.1\r\nHost: " + (v6 ? "[" + route->host + "]" : route->host);
    if (route->port != 80) h += ":" + std::to_string(route->port);
    h += "\r\n";
    for (const std::string& line : t->leading) append_http1_header(h, line);
    h += "Accept: */*\r\n";  // as libcurl sends
  }
  t->route = std::move(route);
  return t;
}

void append_http1_header(std::string& out, std::string_view line) {
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos) {
    if (!line.empty() && line.back() == ';') {
      out.append(line.substr(0, line.size() - 1));
      out += ":\r\n";
    }
    return;
  }
  if (line.find_first_not_of(' ', colon + 1) == std::string_view::npos) return;  // "Name:"
  out.append(line);
  out += "\r\n";
}

void build_http1_request(const RequestTemplate& t, const AttemptHeaders& attempt,
                         std::string_view body, std::string& out) {
  out.assign(t.http1_head);
  for (size_t i = 0; i < attempt.count; ++i) append_http1_header(out, attempt.lines[i]);
  for (const std::string& line : t.trailing) append_http1_header(out, line);
  char digits[24];
  const auto end = std::to_chars(digits, digits + sizeof digits, body.size()).ptr;
  out += "Content-Length: ";
  out.append(digits, static_cast<size_t>(end - digits));
  out += "\r\n\r\n";
  out.append(body);
}

void build_attempt_headers(const RequestTemplate& t, std::string_view body,
                           std::string_view webhook_id, int64_t timestamp, AttemptHeaders& out) {
  char digits[24];
  const auto end = std::to_chars(digits, digits + sizeof digits, timestamp).ptr;
  const std::string_view ts(digits, static_cast<size_t>(end - digits));

  out.count = 0;
  std::string& id = out.lines[out.count++];
  id.assign("webhook-id: ");
  id.append(webhook_id);
  if (webhook_id.empty()) id.assign("webhook-id;");
  std::string& stamp = out.lines[out.count++];
  stamp.assign("webhook-timestamp: ");
  stamp.append(ts);
  switch (t.route->secret_kind) {
    case SecretKind::kStandardWebhooks: {
      std::string& sig = out.lines[out.count++];
      sig.assign("webhook-signature: ");
      append_standard_webhooks_signature(*t.key, webhook_id, ts, body, sig);
      break;
    }
    case SecretKind::kXSignature256: {
      std::string& sig = out.lines[out.count++];
      sig.assign("X-Signature-256: ");
      append_x_signature_256(*t.key, body, sig);
      break;
    }
    case SecretKind::kNone:
      break;
  }
}

OutgoingRequest build_request(const RequestTemplate& t, std::string_view body,
                              std::string_view webhook_id, int64_t timestamp) {
  OutgoingRequest r;
  r.method = t.route->method;
  r.url = t.route->url;
  r.body = body;
  AttemptHeaders attempt;
  build_attempt_headers(t, body, webhook_id, timestamp, attempt);
  r.headers.reserve(t.leading.size() + attempt.count + t.trailing.size());
  r.headers.insert(r.headers.end(), t.leading.begin(), t.leading.end());
  for (size_t i = 0; i < attempt.count; ++i) r.headers.push_back(attempt.lines[i]);
  r.headers.insert(r.headers.end(), t.trailing.begin(), t.trailing.end());
  return r;
}

OutgoingRequest build_request(const RouteConfig& route, std::string_view body,
                              std::string_view webhook_id, int64_t timestamp,
                              std::string_view user_agent) {
  // A non-owning pointer: the template lives only inside this call.
  const auto t = make_request_template(
      std::shared_ptr<const RouteConfig>(std::shared_ptr<void>(), &route), user_agent);
  return build_request(*t, body, webhook_id, timestamp);
}

}  // namespace rd::webhook
