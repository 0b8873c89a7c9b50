#include "job.hpp"

#include <nlohmann/json.hpp>

namespace rd {
namespace {
constexpr int kMaxDepth = 64;
constexpr size_t kMaxTenantLength = 256;

bool valid_tenant_token(std::string_view t) {
  if (t.empty() || t.size() > kMaxTenantLength) return false;
  for (unsigned char c : t) {
    // The tenant becomes a NATS subject token (dlq.routes.<tenant>): no separators or wildcards.
    if (c <= 0x20 || c == 0x7f || c == '.' || c == '*' || c == '>') return false;
  }
  return true;
}

std::string type_name(const nlohmann::json& j) {
  return j.type_name();
}
}  // namespace

std::string_view subject_tenant(std::string_view subject, std::string_view prefix) {
  if (subject.size() > prefix.size() + 1 && subject.compare(0, prefix.size(), prefix) == 0 &&
      subject[prefix.size()] == '.') {
    return subject.substr(prefix.size() + 1);
  }
  return {};
}

int json_depth(std::string_view json, int limit) {
  int depth = 0, max_depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > max_depth) {
        max_depth = depth;
        if (max_depth > limit) return max_depth;
      }
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return max_depth;
}

void parse_job(std::string_view data, std::string_view subject_tenant_token, size_t max_bytes,
               JobParse& out) {
  out.ok = false;
  out.error.clear();
  Job& job = out.job;
  job.tenant_id.assign(subject_tenant_token);
  job.route_id = 0;
  job.has_route_id = false;
  job.destination_type.clear();
  job.destination_config_json = "{}";
  job.topic.clear();
  job.payload_json = "null";

  if (data.size() > max_bytes) {
    out.error = "job is " + std::to_string(data.size()) + " bytes, over delivery.max_job_bytes (" +
                std::to_string(max_bytes) + ")";
    return;
  }
  if (json_depth(data, kMaxDepth) > kMaxDepth) {
    out.error = "job JSON is nested deeper than " + std::to_string(kMaxDepth) + " levels";
    return;
  }
  nlohmann::json doc = nlohmann::json::parse(data.begin(), data.end(), nullptr, false);
  if (doc.is_discarded()) {
    out.error = "job is not valid JSON (UTF-8)";
    return;
  }
  if (!doc.is_object()) {
    out.error = "job must be a JSON object, found " + type_name(doc);
    return;
  }
  // Read what we can before rejecting, so the dead-letter record carries it.
  auto tenant = doc.find("tenant_id");
  auto route = doc.find("route");
  auto topic = doc.find("topic");
  auto payload = doc.find("payload");
  if (topic != doc.end() && topic->is_string()) job.topic = topic->get_ref<const std::string&>();
  if (payload != doc.end()) {
    job.payload_json = payload->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  const nlohmann::json* config = nullptr;
  if (route != doc.end() && route->is_object()) {
    auto id = route->find("id");
    if (id != route->end() && id->is_number_integer()) {
      job.route_id = id->get<int64_t>();
      job.has_route_id = true;
    }
    auto type = route->find("destination_type");
    if (type != route->end() && type->is_string())
      job.destination_type = type->get_ref<const std::string&>();
    auto cfg = route->find("destination_config");
    if (cfg != route->end()) {
      config = &*cfg;
      if (cfg->is_object()) {
        job.destination_config_json =
            cfg->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      }
    }
  }

  if (tenant == doc.end()) {
    out.error = "job has no 'tenant_id'";
    return;
  }
  if (!tenant->is_string()) {
    out.error = "'tenant_id' must be a string, found " + type_name(*tenant);
    return;
  }
  const auto& tenant_text = tenant->get_ref<const std::string&>();
  if (!valid_tenant_token(tenant_text)) {
    out.error = "'tenant_id' must be 1-256 characters without spaces, '.', '*' or '>'";
    return;
  }
  if (!subject_tenant_token.empty() && tenant_text != subject_tenant_token) {
    out.error = "'tenant_id' \"" + tenant_text + "\" does not match the subject's tenant \"" +
                std::string(subject_tenant_token) + "\"";
    return;
  }
  job.tenant_id = tenant_text;
  if (route == doc.end()) {
    out.error = "job has no 'route'";
    return;
  }
  if (!route->is_object()) {
    out.error = "'route' must be an object, found " + type_name(*route);
    return;
  }
  auto id = route->find("id");
  if (id == route->end()) {
    out.error = "job has no 'route.id'";
    return;
  }
  if (!id->is_number_integer()) {
    out.error = "'route.id' must be an integer, found " + type_name(*id);
    return;
  }
  auto type = route->find("destination_type");
  if (type == route->end()) {
    out.error = "job has no 'route.destination_type'";
    return;
  }
  if (!type->is_string() || type->get_ref<const std::string&>().empty()) {
    out.error = "'route.destination_type' must be a non-empty string";
    return;
  }
  if (config != nullptr && !config->is_object() && !config->is_null()) {
    out.error = "'route.destination_config' must be an object, found " + type_name(*config);
    return;
  }
  if (topic == doc.end()) {
    out.error = "job has no 'topic'";
    return;
  }
  if (!topic->is_string()) {
    out.error = "'topic' must be a string, found " + type_name(*topic);
    return;
  }
  if (payload == doc.end()) {
    out.error = "job has no 'payload'";
    return;
  }
  out.ok = true;
}

}  // namespace rd
