// Turns one job into what to publish (topic, QoS, retain) or a permanent failure reason.
// Pure logic: JSON and templating only, no network, so every rule is unit-testable.
#pragma once

#include <cstddef>
#include <memory>
#include <route_delivery/plugin.hpp>
#include <string>
#include <string_view>

namespace rd::mqtt_republish {

struct PlanDefaults {
  int qos = 1;
  std::string topic_prefix;  // plugins.mqtt_republish.topic_prefix, may hold {tenant_id}
};

struct PublishPlan {
  std::string error;  // non-empty: permanent failure with this reason
  std::string topic;
  int qos = 1;
  bool retain = false;
  bool ok() const { return error.empty(); }
};

// What a route's destination_config says, parsed once: the same for every job of the route.
struct RoutePlan {
  std::string error;  // non-empty: every job of the route fails permanently with this reason
  std::string topic_template;
  int qos = 1;
  bool retain = false;
  bool uses_device_id = false;  // only then the payload is looked at
  bool ok() const { return error.empty(); }
};

// Reads `payload.device_id` (a string or an integer). Absent or null gives "" with no error;
// any other type is an error. A payload that is not a JSON object gives "". The payload has been
// validated as JSON by the host: the common case (a top-level object whose device_id is a plain
// ASCII string) is found by a scan without building a document; anything else is parsed.
std::string device_id_from_payload(std::string_view payload_json, std::string& device_id);

// `destination_config_json` is the route's destination_config: {"topic": "...", "qos": 0|1|2,
// "retain": bool}. Rules about the config alone are reported here as `error`.
RoutePlan parse_route_plan(std::string_view destination_config_json, const PlanDefaults& defaults);

// The rest of the rules, per job: device id, substitution, topic name, tenant prefix.
PublishPlan plan_job(const RoutePlan& route, std::string_view tenant_id,
                     std::string_view payload_json, const PlanDefaults& defaults);

// Parsed route plans by destination_config bytes, so a route's config is parsed once, not per
// job: the SDK's bounded, thread-safe route cache.
using RoutePlanCache = rd::RouteCache<std::shared_ptr<const RoutePlan>>;

// The plan for `destination_config_json` from `cache`, parsed (parse_route_plan) on a miss. A
// config with an error is cached too: every job of that route fails the same way.
std::shared_ptr<const RoutePlan> cached_route_plan(RoutePlanCache& cache,
                                                   std::string_view destination_config_json,
                                                   const PlanDefaults& defaults);

}  // namespace rd::mqtt_republish
