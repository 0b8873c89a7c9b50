// Builds the outgoing request for one job attempt (headers, body, signature) without the network,
// so exactly what goes on the wire can be unit-tested. What never changes for a route (its static
// headers, its prepared signing key) is built once, in a RequestTemplate; an attempt adds only
// webhook-id, webhook-timestamp and the signature.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config.hpp"
#include "signing.hpp"

namespace rd::webhook {

struct OutgoingRequest {
  std::string method;  // POST, PUT or PATCH
  std::string url;
  std::vector<std::string> headers;  // "Name: value" lines (libcurl's form)
  std::string_view body;             // the job's payload JSON, unchanged
};

// One route's requests, minus the per-attempt headers. Immutable once built; shared by every
// attempt of the route's jobs (on any thread).
struct RequestTemplate {
  std::shared_ptr<const RouteConfig> route;
  std::vector<std::string> leading;          // Content-Type, User-Agent, the route's headers
  std::vector<std::string> trailing;         // after the per-attempt headers ("Expect:")
  std::unique_ptr<const HmacSha256Key> key;  // null when the route has no secret
  // For a route the loop's own HTTP/1.1 client sends (RouteConfig::own_client): the request line,
  // Host, the leading headers and Accept, on the wire; an attempt adds its headers,
  // Content-Length and the body.
  std::string http1_head;
};

std::shared_ptr<const RequestTemplate> make_request_template(
    std::shared_ptr<const RouteConfig> route, std::string_view user_agent);

// The per-attempt header lines: webhook-id, webhook-timestamp and, for a signed route, the
// signature. Kept in reusable strings (an attempt's lines overwrite the previous attempt's).
struct AttemptHeaders {
  std::string lines[3];
  size_t count = 0;
};

// `timestamp` is the attempt's send time in seconds since the epoch (webhook-timestamp).
void build_attempt_headers(const RequestTemplate& t, std::string_view body,
                           std::string_view webhook_id, int64_t timestamp, AttemptHeaders& out);

// Appends one header line in libcurl's form ("Name: value"; "Name;" = empty value; "Name:" = do
// not send) to `out` as HTTP/1.1 sends it ("Name: value\r\n").
void append_http1_header(std::string& out, std::string_view line);

// The whole HTTP/1.1 request of one attempt of an own-client route, into `out` (overwritten).
void build_http1_request(const RequestTemplate& t, const AttemptHeaders& attempt,
                         std::string_view body, std::string& out);

// Every header line of one attempt, in the order they are sent.
OutgoingRequest build_request(const RequestTemplate& t, std::string_view body,
                              std::string_view webhook_id, int64_t timestamp);
OutgoingRequest build_request(const RouteConfig& route, std::string_view body,
                              std::string_view webhook_id, int64_t timestamp,
                              std::string_view user_agent);

}  // namespace rd::webhook
