#include "job.hpp"

#include <nlohmann/json.hpp>
#include <optional>

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

namespace {
size_t skip_ws(std::string_view s, size_t i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
  return i;
}

// Index just past the JSON string starting at s[i] == '"', or npos.
size_t skip_string(std::string_view s, size_t i) {
  for (++i; i < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;
    } else if (s[i] == '"') {
      return i + 1;
    }
  }
  return std::string_view::npos;
}

// Index just past the JSON value starting at s[i], or npos. Expects well-formed JSON.
size_t skip_value(std::string_view s, size_t i) {
  if (i >= s.size()) return std::string_view::npos;
  if (s[i] == '"') return skip_string(s, i);
  if (s[i] == '{' || s[i] == '[') {
    int depth = 0;
    while (i < s.size()) {
      const char c = s[i];
      if (c == '"') {
        i = skip_string(s, i);
        if (i == std::string_view::npos) return i;
        continue;
      }
      if (c == '{' || c == '[') ++depth;
      if (c == '}' || c == ']') {
        if (--depth == 0) return i + 1;
      }
      ++i;
    }
    return std::string_view::npos;
  }
  while (i < s.size() && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ' && s[i] != '\t' &&
         s[i] != '\n' && s[i] != '\r') {
    ++i;
  }
  return i;
}
}  // namespace

std::optional<std::string_view> member_span(std::string_view object, std::string_view key) {
  size_t i = skip_ws(object, 0);
  if (i >= object.size() || object[i] != '{') return std::nullopt;
  std::optional<std::string_view> found;  // the last occurrence wins, as in the parsed document
  i = skip_ws(object, i + 1);
  while (i < object.size() && object[i] == '"') {
    const size_t key_end = skip_string(object, i);
    if (key_end == std::string_view::npos) return std::nullopt;
    const std::string_view name = object.substr(i + 1, key_end - i - 2);
    i = skip_ws(object, key_end);
    if (i >= object.size() || object[i] != ':') return std::nullopt;
    i = skip_ws(object, i + 1);
    const size_t value_end = skip_value(object, i);
    if (value_end == std::string_view::npos) return std::nullopt;
    if (name == key) found = object.substr(i, value_end - i);
    i = skip_ws(object, value_end);
    if (i < object.size() && object[i] == ',') i = skip_ws(object, i + 1);
  }
  return found;
}

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
  // Hand plugins the payload and config exactly as ingest wrote them (key order, number
  // spelling, no re-serialisation); the document is valid JSON, so the spans are too. A key
  // written with escapes is not matched and the re-serialised value above stays.
  if (auto raw = member_span(data, "payload")) job.payload_json.assign(raw->data(), raw->size());
  if (auto raw_route = member_span(data, "route")) {
    auto raw_config = member_span(*raw_route, "destination_config");
    if (raw_config && !raw_config->empty() && raw_config->front() == '{') {
      job.destination_config_json.assign(raw_config->data(), raw_config->size());
    }
  }
  out.ok = true;
}

}  // namespace rd
