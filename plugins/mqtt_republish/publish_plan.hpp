// Turns one job into what to publish (topic, QoS, retain) or a permanent failure reason.
// Pure logic: JSON and templating only, no network, so every rule is unit-testable.
#pragma once

#include <string>
#include <string_view>

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

// Reads `payload.device_id` (a string or an integer). Absent or null gives "" with no error;
// any other type is an error.
std::string device_id_from_payload(std::string_view payload_json, std::string& device_id);

// `destination_config_json` is the route's destination_config: {"topic": "...", "qos": 0|1|2,
// "retain": bool}. Every rule that makes a job unpublishable is reported here as `error`.
PublishPlan plan_publish(std::string_view destination_config_json, std::string_view tenant_id,
                         std::string_view payload_json, const PlanDefaults& defaults);

}  // namespace mqtt_republish
