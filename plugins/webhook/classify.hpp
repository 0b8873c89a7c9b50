// Turns what happened to one HTTP request into the plugin's result: ok, retry (with an optional
// Retry-After delay), permanent, or defer (the destination could not be tried), with a short
// reason. Pure logic, no network.
//
// The rule: an attempt is spent (retry) only when the destination was actually tried and the try
// failed — an answer that says so, or a request that was sent and then timed out or lost its
// connection. When the request never left (refused, unresolved, no connection in time) the
// result is defer, which costs no attempt.
#pragma once

#include <curl/curl.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace rd::webhook {

enum class Disposition {
  kOk,
  kRetry,
  kPermanent,
  kDefer,  // not tried: no attempt spent (RD_OUTCOME_DEFER; RETRY on a 1.0 host)
};

// 2xx ok; 408, 425, 429 and 5xx retry; everything else (3xx: redirects are not followed; other 4xx;
// a final 1xx or a status outside 100..599) permanent.
Disposition classify_status(long status);

// For a transfer that ended without a usable HTTP response; `sent` tells whether the request left
// (libcurl got past connecting, CURLINFO_PRETRANSFER_TIME_T > 0). A refused connection, a name
// that does not resolve, and a timeout before the request was sent defer; a timeout after it was
// sent, reset connections, TLS handshake failures and broken responses retry; a malformed URL or
// a TLS certificate that does not verify is permanent.
Disposition classify_transport_error(CURLcode code, bool sent);

// Retry-After: delay-seconds or an HTTP-date (IMF-fixdate, RFC 850 or asctime form), relative to
// `now_ms` (wall clock, ms since the epoch). Returns the delay in ms (0 for a date in the past), or
// nullopt when the value is neither form. Very large values are clamped to one day.
std::optional<int64_t> parse_retry_after(std::string_view value, int64_t now_ms);

// A response body made safe and short for a reason string: control characters become spaces,
// runs of spaces collapse, cut at `max_bytes` on a UTF-8 boundary with "..." when cut.
std::string excerpt(std::string_view body, size_t max_bytes);

// Everything known about one finished request.
struct RequestReport {
  CURLcode code = CURLE_OK;
  long status = 0;           // HTTP status, 0 when no response arrived
  std::string retry_after;   // raw Retry-After header value, empty when absent
  std::string body;          // the first bytes of the response body
  std::string ssrf_refusal;  // set when the SSRF guard refused every address tried
  std::string curl_error;    // libcurl's error buffer text
  std::string host;          // "host:port", for the reason (never the path or query)
  std::string destination;   // "scheme://host:port", for the reason of a deferral
  bool sent = false;         // the request left (CURLINFO_PRETRANSFER_TIME_T > 0)
  int64_t timeout_ms = 0;    // the time limit this request had
  int64_t now_ms = 0;        // wall clock at completion, for Retry-After dates
};

struct Decision {
  Disposition disposition = Disposition::kPermanent;
  int64_t retry_after_ms = -1;  // retry or defer; -1 = no suggestion
  std::string reason;           // empty for ok
};

Decision decide(const RequestReport& report, size_t excerpt_bytes);

}  // namespace rd::webhook
