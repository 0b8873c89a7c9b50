// A second opinion on parse_job: nlohmann::json reads the same text as a document, and
// `job_oracle_mismatch` says where the two disagree (empty = they agree). Used by the unit tests
// and by tests/fuzz/fuzz_job.cpp, so the hand-written scanner is held to a well-tested parser.
#pragma once

#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "job.hpp"

namespace rd_test {

inline bool oracle_valid_tenant(const std::string& t) {
  if (t.empty() || t.size() > 256) return false;
  for (unsigned char c : t) {
    if (c <= 0x20 || c == 0x7f || c == '.' || c == '*' || c == '>') return false;
  }
  return true;
}

// Nesting depth of `j`, counted up to 65 (deeper documents stop the walk there).
inline int oracle_depth(const nlohmann::json& j, int level = 0) {
  if (!j.is_structured()) return level;
  if (level + 1 > 64) return level + 1;
  int deepest = level + 1;
  for (const auto& child : j) deepest = std::max(deepest, oracle_depth(child, level + 1));
  return deepest;
}

// Parses `text` with both; returns "" when they agree on validity, on every field a plugin sees,
// and on whether the job is accepted.
inline std::string job_oracle_mismatch(std::string_view text) {
  using nlohmann::json;
  rd::JobParse p;
  rd::parse_job(text, "", 1 << 20, p);
  const bool scanner_json = p.ok || (p.error.find("not valid JSON") == std::string::npos &&
                                     p.error.find("nested deeper") == std::string::npos);
  const json doc = json::parse(text.begin(), text.end(), nullptr, false);
  if (doc.is_discarded()) {
    if (!scanner_json) return "";
    // nlohmann refuses numbers that overflow a double (1e400); RFC 8259 allows them.
    try {
      const json again = json::parse(text.begin(), text.end());
      return "nlohmann parsed it on the second try";
    } catch (const json::exception& e) {
      if (std::string(e.what()).find("number overflow") != std::string::npos) return "";
    }
    return "scanner accepted text nlohmann rejects: " + p.error;
  }
  if (oracle_depth(doc) > 64) {
    return p.error.find("nested deeper") != std::string::npos ? "" : "deep document not refused";
  }
  if (!scanner_json) {
    // nlohmann stops reading at a NUL byte outside strings and ignores what follows; the scanner
    // refuses bytes after the document. Past that, the two must agree on the text before it.
    const size_t nul = text.find('\0');
    if (nul != std::string_view::npos) return job_oracle_mismatch(text.substr(0, nul));
    return "scanner rejected valid JSON: " + p.error;
  }
  if (!doc.is_object()) return p.ok ? "accepted a non-object" : "";

  auto same_json = [](const std::string& raw, const json& expected) {
    const json got = json::parse(raw, nullptr, false);
    return !got.is_discarded() && got == expected;
  };
  const auto topic = doc.find("topic");
  if (topic != doc.end() && topic->is_string() && p.job.topic != topic->get<std::string>())
    return "topic differs";
  const auto payload = doc.find("payload");
  if (payload != doc.end() && !same_json(p.job.payload_json, *payload)) return "payload differs";

  bool ok = true;
  const auto route = doc.find("route");
  if (route != doc.end() && route->is_object()) {
    const auto id = route->find("id");
    const auto type = route->find("destination_type");
    const auto config = route->find("destination_config");
    const bool id_fits = id != route->end() && id->is_number_integer() &&
                         !(id->is_number_unsigned() && id->get<uint64_t>() > INT64_MAX);
    if (id_fits && (!p.job.has_route_id || p.job.route_id != id->get<int64_t>()))
      return "route.id differs";
    ok = ok && id_fits;
    if (type != route->end() && type->is_string() &&
        p.job.destination_type != type->get<std::string>())
      return "destination_type differs";
    ok = ok && type != route->end() && type->is_string() && !type->get<std::string>().empty();
    if (config != route->end() && config->is_object() &&
        !same_json(p.job.destination_config_json, *config))
      return "destination_config differs";
    ok = ok && (config == route->end() || config->is_object() || config->is_null());
    if ((config == route->end() || config->is_null()) && p.job.destination_config_json != "{}")
      return "missing destination_config is not {}";
  } else {
    ok = false;
  }
  const auto tenant = doc.find("tenant_id");
  ok = ok && tenant != doc.end() && tenant->is_string() &&
       oracle_valid_tenant(tenant->get<std::string>());
  if (ok && p.job.tenant_id != tenant->get<std::string>()) return "tenant_id differs";
  ok = ok && topic != doc.end() && topic->is_string() && payload != doc.end();
  if (ok != p.ok) return std::string("acceptance differs: scanner says ") + (p.ok ? "ok" : p.error);
  return "";
}

}  // namespace rd_test
