// Turns one job into what to publish (topic, QoS, retain) or a permanent failure reason.
// Pure logic: JSON and templating only, no network, so every rule is unit-testable.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

namespace mqtt_republish {

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

// parse_route_plan + plan_job.
PublishPlan plan_publish(std::string_view destination_config_json, std::string_view tenant_id,
                         std::string_view payload_json, const PlanDefaults& defaults);

// Parsed route plans by destination_config bytes, so a route's config is parsed once, not per
// job. Bounded: when `capacity` distinct configs are held, the cache starts over. Not
// thread-safe (the host serialises xDeliver).
class RoutePlanCache {
 public:
  explicit RoutePlanCache(size_t capacity = 4096) : capacity_(capacity) {}
  const RoutePlan& get(std::string_view destination_config_json, const PlanDefaults& defaults);
  size_t size() const { return plans_.size(); }

 private:
  struct Entry {
    std::string config;  // the key's bytes (the map's string_view key points here)
    RoutePlan plan;
  };
  size_t capacity_;
  std::unordered_map<std::string_view, std::unique_ptr<Entry>> plans_;
};

}  // namespace mqtt_republish
