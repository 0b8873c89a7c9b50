#include "publish_plan.hpp"

#include <nlohmann/json.hpp>
#include <optional>

#include "topic_template.hpp"

namespace rd::mqtt_republish {

using nlohmann::json;

namespace {

// device_id from a parsed JSON value (the rules of device_id_from_payload).
std::string device_id_from_value(const json& value, std::string& device_id) {
  if (value.is_null()) return {};
  if (value.is_string()) {
    device_id = value.get<std::string>();
  } else if (value.is_number_integer()) {
    device_id = value.dump();
  } else {
    return "payload.device_id is a " + std::string(value.type_name()) +
           ", expected a string or an integer";
  }
  return {};
}

// The full parse: the reference behaviour.
std::string device_id_by_parsing(std::string_view payload_json, std::string& device_id) {
  const json payload = json::parse(payload_json.begin(), payload_json.end(), nullptr, false);
  if (payload.is_discarded() || !payload.is_object()) return {};
  const auto it = payload.find("device_id");
  if (it == payload.end()) return {};
  return device_id_from_value(*it, device_id);
}

// A scan over valid JSON that finds the span of the top-level object's last "device_id" value
// without building a document. Gives up (nullopt) on anything it does not handle exactly like
// the parser: escaped keys, malformed input, a payload that is not an object.
class TopLevelScan {
 public:
  explicit TopLevelScan(std::string_view text) : s_(text) {}

  // true: scanned; `found` says whether device_id occurs, `value` is its last value's bytes.
  bool run(bool& found, std::string_view& value) {
    found = false;
    ws();
    if (!eat('{')) return false;
    ws();
    if (eat('}')) return rest_is_ws();
    for (;;) {
      ws();
      std::string_view key;
      if (!plain_string(key)) return false;
      ws();
      if (!eat(':')) return false;
      ws();
      const size_t start = i_;
      if (!skip_value()) return false;
      if (key == "device_id") {
        found = true;
        value = s_.substr(start, i_ - start);
      }
      ws();
      if (eat(',')) continue;
      if (eat('}')) return rest_is_ws();
      return false;
    }
  }

 private:
  bool eat(char c) {
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  void ws() {
    while (i_ < s_.size() &&
           (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) {
      ++i_;
    }
  }
  bool rest_is_ws() {
    ws();
    return i_ == s_.size();
  }
  // A key without escapes.
  bool plain_string(std::string_view& out) {
    if (!eat('"')) return false;
    const size_t start = i_;
    while (i_ < s_.size() && s_[i_] != '"') {
      if (s_[i_] == '\\') return false;
      ++i_;
    }
    if (i_ >= s_.size()) return false;
    out = s_.substr(start, i_ - start);
    ++i_;
    return true;
  }
  bool skip_string() {
    if (!eat('"')) return false;
    while (i_ < s_.size()) {
      const char c = s_[i_++];
      if (c == '"') return true;
      if (c == '\\') ++i_;
    }
    return false;
  }
  bool skip_value() {
    if (i_ >= s_.size()) return false;
    const char c = s_[i_];
    if (c == '"') return skip_string();
    if (c == '{' || c == '[') {
      int depth = 0;
      while (i_ < s_.size()) {
        const char d = s_[i_];
        if (d == '"') {
          if (!skip_string()) return false;
          continue;
        }
        ++i_;
        if (d == '{' || d == '[') ++depth;
        if (d == '}' || d == ']') {
          if (--depth == 0) return true;
        }
      }
      return false;
    }
    // A number or a literal: up to the next delimiter.
    const size_t start = i_;
    while (i_ < s_.size() && s_[i_] != ',' && s_[i_] != '}' && s_[i_] != ']' && s_[i_] != ' ' &&
           s_[i_] != '\t' && s_[i_] != '\n' && s_[i_] != '\r') {
      ++i_;
    }
    return i_ > start;
  }

  std::string_view s_;
  size_t i_ = 0;
};

// A string token whose content is printable ASCII without escapes: its bytes are its value.
std::optional<std::string_view> plain_ascii_string(std::string_view token) {
  if (token.size() < 2 || token.front() != '"' || token.back() != '"') return std::nullopt;
  const std::string_view inner = token.substr(1, token.size() - 2);
  for (const char c : inner) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f || c == '\\' || c == '"') return std::nullopt;
  }
  return inner;
}

}  // namespace

std::string device_id_from_payload(std::string_view payload_json, std::string& device_id) {
  device_id.clear();
  bool found = false;
  std::string_view value;
  if (!TopLevelScan(payload_json).run(found, value)) {
    return device_id_by_parsing(payload_json, device_id);
  }
  if (!found) return {};
  if (const auto plain = plain_ascii_string(value)) {
    device_id.assign(plain->data(), plain->size());
    return {};
  }
  // null, a number, an escaped or non-ASCII string, an object...: parse that value alone.
  const json parsed = json::parse(value.begin(), value.end(), nullptr, false);
  if (parsed.is_discarded()) return device_id_by_parsing(payload_json, device_id);
  return device_id_from_value(parsed, device_id);
}

RoutePlan parse_route_plan(std::string_view destination_config_json, const PlanDefaults& defaults) {
  RoutePlan route;
  const json config =
      json::parse(destination_config_json.begin(), destination_config_json.end(), nullptr, false);
  if (config.is_discarded() || !config.is_object()) {
    route.error = "destination_config is not a JSON object";
    return route;
  }

  const auto topic_it = config.find("topic");
  if (topic_it == config.end() || topic_it->is_null()) {
    route.error = "destination_config.topic is missing";
    return route;
  }
  if (!topic_it->is_string()) {
    route.error = "destination_config.topic must be a string";
    return route;
  }
  route.topic_template = topic_it->get<std::string>();
  if (route.topic_template.empty()) {
    route.error = "destination_config.topic is empty";
    return route;
  }

  route.qos = defaults.qos;
  if (const auto it = config.find("qos"); it != config.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > 2) {
      route.error = "destination_config.qos must be 0, 1 or 2, got " + it->dump();
      return route;
    }
    route.qos = static_cast<int>(it->get<int64_t>());
  }
  if (const auto it = config.find("retain"); it != config.end() && !it->is_null()) {
    if (!it->is_boolean()) {
      route.error = "destination_config.retain must be true or false, got " + it->dump();
      return route;
    }
    route.retain = it->get<bool>();
  }
  route.uses_device_id = uses_device_id(route.topic_template);
  return route;
}

PublishPlan plan_job(const RoutePlan& route, std::string_view tenant_id,
                     std::string_view payload_json, const PlanDefaults& defaults) {
  PublishPlan plan;
  if (!route.ok()) {
    plan.error = route.error;
    return plan;
  }
  plan.qos = route.qos;
  plan.retain = route.retain;

  std::string device_id;
  if (route.uses_device_id) {
    if (std::string e = device_id_from_payload(payload_json, device_id); !e.empty()) {
      plan.error = std::move(e);
      return plan;
    }
  }
  if (Check c = render(route.topic_template, tenant_id, device_id, true, plan.topic); !c.ok()) {
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

std::shared_ptr<const RoutePlan> cached_route_plan(RoutePlanCache& cache,
                                                   std::string_view destination_config_json,
                                                   const PlanDefaults& defaults) {
  return cache.get(destination_config_json, [&](std::string_view text) {
    return std::make_shared<const RoutePlan>(parse_route_plan(text, defaults));
  });
}

}  // namespace rd::mqtt_republish
