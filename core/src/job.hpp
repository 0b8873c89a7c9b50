// Parsing and validating a route job (docs/architecture.md, "Parse"). A job that fails here is a
// permanent failure: it is dead-lettered at once with the reason and never handed to a plugin.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace rd {

struct Job {
  std::string tenant_id;
  int64_t route_id = 0;
  bool has_route_id = false;
  std::string destination_type;
  std::string destination_config_json = "{}";
  std::string topic;
  std::string payload_json = "null";
};

struct JobParse {
  bool ok = false;
  std::string error;  // why the job is invalid, naming the field
  Job job;            // on error: whatever fields could be read, for the dead-letter record
};

// Parses `data` received on a subject whose tenant token is `subject_tenant` (may be empty):
// one pass over the text, which must be strict JSON (UTF-8, nesting at most 64 deep). Plugins get
// `payload` and `route.destination_config` as the exact bytes of the job. Reuses `out.job`'s
// string capacity; never throws.
void parse_job(std::string_view data, std::string_view subject_tenant, size_t max_bytes,
               JobParse& out);

// The tenant token of a job subject: "routes.tenant-a" with prefix "routes" -> "tenant-a".
std::string_view subject_tenant(std::string_view subject, std::string_view prefix);

}  // namespace rd
