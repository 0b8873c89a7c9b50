#include "publish_plan.hpp"

#include <nlohmann/json.hpp>

#include "topic_template.hpp"

namespace mqtt_republish {

using nlohmann::json;

std::string device_id_from_payload(std::string_view payload_json, std::string& device_id) {
  device_id.clear();
  const json payload = json::parse(payload_json.begin(), payload_json.end(), nullptr, false);
  if (payload.is_discarded() || !payload.is_object()) return {};
  const auto it = payload.find("device_id");
  if (it == payload.end() || it->is_null()) return {};
  if (it->is_string()) {
    device_id = it->get<std::string>();
  } else if (it->is_number_integer()) {
    device_id = it->dump();
  } else {
    return "payload.device_id is a " + std::string(it->type_name()) +
           ", expected a string or an integer";
  }
  return {};
}

PublishPlan plan_publish(std::string_view destination_config_json, std::string_view tenant_id,
                         std::string_view payload_json, const PlanDefaults& defaults) {
  PublishPlan plan;
  const json config =
      json::parse(destination_config_json.begin(), destination_config_json.end(), nullptr, false);
  if (config.is_discarded() || !config.is_object()) {
    plan.error = "destination_config is not a JSON object";
    return plan;
  }

  const auto topic_it = config.find("topic");
  if (topic_it == config.end() || topic_it->is_null()) {
    plan.error = "destination_config.topic is missing";
    return plan;
  }
  if (!topic_it->is_string()) {
    plan.error = "destination_config.topic must be a string";
    return plan;
  }
  const std::string& tmpl = topic_it->get_ref<const std::string&>();
  if (tmpl.empty()) {
    plan.error = "destination_config.topic is empty";
    return plan;
  }

  plan.qos = defaults.qos;
  if (const auto it = config.find("qos"); it != config.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > 2) {
      plan.error = "destination_config.qos must be 0, 1 or 2, got " + it->dump();
      return plan;
    }
    plan.qos = static_cast<int>(it->get<int64_t>());
  }
  if (const auto it = config.find("retain"); it != config.end() && !it->is_null()) {
    if (!it->is_boolean()) {
      plan.error = "destination_config.retain must be true or false, got " + it->dump();
      return plan;
    }
    plan.retain = it->get<bool>();
  }

  std::string device_id;
  const bool with_device = uses_device_id(tmpl);
  if (with_device) {
    if (std::string e = device_id_from_payload(payload_json, device_id); !e.empty()) {
      plan.error = std::move(e);
      return plan;
    }
  }
  if (Check c = render(tmpl, tenant_id, device_id, true, plan.topic); !c.ok()) {
    plan.error = std::move(c.error);
    return plan;
  }
  if (Check c = validate_topic_name(plan.topic); !c.ok()) {
    plan.error = std::move(c.error);
    return plan;
  }
  if (Check c = check_prefix(defaults.topic_prefix, tenant_id, plan.topic); !c.ok()) {
    plan.error = std::move(c.error);
    return plan;
  }
  return plan;
}

}  // namespace mqtt_republish
