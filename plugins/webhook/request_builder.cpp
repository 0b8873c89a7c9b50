#include "request_builder.hpp"

#include <strings.h>

#include "signing.hpp"

namespace webhook {

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

OutgoingRequest build_request(const RouteConfig& route, std::string_view body,
                              std::string_view webhook_id, int64_t timestamp,
                              std::string_view user_agent) {
  OutgoingRequest r;
  r.method = route.method;
  r.url = route.url;
  r.body = body;
  bool content_type = false, agent = false;
  for (const auto& [name, value] : route.headers) {
    if (strcasecmp(name.c_str(), "content-type") == 0) content_type = true;
    if (strcasecmp(name.c_str(), "user-agent") == 0) agent = true;
  }
  r.headers.reserve(route.headers.size() + 7);
  if (!content_type) r.headers.push_back("Content-Type: application/json");
  if (!agent) r.headers.push_back(header_line("User-Agent", user_agent));
  for (const auto& [name, value] : route.headers) r.headers.push_back(header_line(name, value));
  r.headers.push_back(header_line("webhook-id", webhook_id));
  r.headers.push_back("webhook-timestamp: " + std::to_string(timestamp));
  switch (route.secret_kind) {
    case SecretKind::kStandardWebhooks:
      r.headers.push_back("webhook-signature: " + standard_webhooks_signature(route.secret_key,
                                                                              webhook_id, timestamp,
                                                                              body));
      break;
    case SecretKind::kXSignature256:
      r.headers.push_back("X-Signature-256: " + x_signature_256(route.secret_key, body));
      break;
    case SecretKind::kNone:
      break;
  }
  // No "Expect: 100-continue" round trip before the body.
  r.headers.push_back("Expect:");
  return r;
}

}  // namespace webhook
