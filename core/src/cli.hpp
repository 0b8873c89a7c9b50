// Operator subcommands: --check-config, plugins, publish, status, migrate, dlq list/replay.
// Each returns the process exit code (0 ok, 1 operation failed, 2 bad input/config).
#pragma once

#include <cstdint>
#include <string>

#include "config.hpp"

namespace rd {

struct CliOptions {
  std::string config_file;
  bool check_config = false;
  std::string publish_file = "-";
  std::string dlq_tenant;
  int dlq_limit = 50;
  bool dlq_json = false;
  int64_t dlq_id = -1;
  int64_t dlq_route = -1;
  std::string dlq_since;
  bool dlq_force = false;
  bool status_json = false;
};

int cli_check_config(const Config& config, const Environment& env);
int cli_plugins(const Config& config, const Environment& env);
int cli_publish(const Config& config, const CliOptions& opts);
int cli_status(const Config& config, const CliOptions& opts);
int cli_migrate(const Config& config);
int cli_dlq_list(const Config& config, const CliOptions& opts);
int cli_dlq_replay(const Config& config, const CliOptions& opts);

// "2h" / "30m" (ago) or ISO 8601 "2026-11-27T10:00:00Z" -> ms since epoch; nullopt if unparsable.
std::optional<int64_t> parse_since(const std::string& text, int64_t now_ms);

}  // namespace rd
