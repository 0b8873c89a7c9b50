// Builds the outgoing request for one job attempt (headers, body, signature) without the network,
// so exactly what goes on the wire can be unit-tested.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "webhook_config.hpp"

namespace webhook {

struct OutgoingRequest {
  std::string method;  // POST, PUT or PATCH
  std::string url;
  std::vector<std::string> headers;  // "Name: value" lines (libcurl's form)
  std::string_view body;             // the job's payload JSON, unchanged
};

// `timestamp` is the attempt's send time in seconds since the epoch (webhook-timestamp).
OutgoingRequest build_request(const RouteConfig& route, std::string_view body,
                              std::string_view webhook_id, int64_t timestamp,
                              std::string_view user_agent);

}  // namespace webhook
