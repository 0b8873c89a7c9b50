// route-delivery: the daemon and its operator subcommands.
#include <CLI/CLI.hpp>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli.hpp"
#include "config.hpp"
#include "isolated_plugin.hpp"
#include "logging.hpp"
#include "plugin_test.hpp"
#include "service.hpp"

int main(int argc, char** argv) {
  // An isolated plugin's process (plugins.<name>.isolation: process), started by the daemon
  // itself: hidden from --help, it takes nothing from the command line but its socket and .so.
  if (argc >= 2 && std::string(argv[1]) == "plugin-child") return rd::run_plugin_child(argc, argv);
  rd::block_signals();
  CLI::App app{
      "route-delivery: delivers route jobs from NATS JetStream to webhook, MQTT and PostgreSQL "
      "destinations through plugins"};
  app.set_version_flag("--version", std::string("route-delivery ") + RD_VERSION + " (plugin ABI " +
                                        std::to_string(RD_ABI_VERSION_MAJOR) + "." +
                                        std::to_string(RD_ABI_VERSION_MINOR) + ")");
  rd::CliOptions opts;
  app.add_option("-c,--config", opts.config_file, "YAML config file (env vars override it)")
      ->check(CLI::ExistingFile);
  app.add_flag("--check-config", opts.check_config,
               "validate the configuration and plugins, print the effective config (secrets "
               "redacted), exit 0 or 2");
  app.fallthrough();

  auto* plugins_cmd = app.add_subcommand("plugins", "list the plugins found in the plugin folder");
  std::string plugin_test_file;
  auto* plugin_test_cmd =
      app.add_subcommand("plugin-test",
                         "run one plugin .so through the plugin contract; exit 0, or 1 naming each "
                         "broken rule");
  plugin_test_cmd->add_option("file", plugin_test_file, "the plugin's .so")
      ->required()
      ->check(CLI::ExistingFile);
  auto* publish_cmd = app.add_subcommand("publish", "publish a route job to routes.<tenant_id>");
  publish_cmd->add_option("file", opts.publish_file, "job JSON file, or - for stdin")
      ->default_val("-");
  auto* status_cmd = app.add_subcommand(
      "status", "show the durable consumer's pending, ack-pending and redelivered counts");
  status_cmd->add_flag("--json", opts.status_json, "one JSON object");
  auto* migrate_cmd =
      app.add_subcommand("migrate", "apply config/schema.sql to the dead-letter database");
  auto* dlq_cmd = app.add_subcommand("dlq", "inspect and replay dead-lettered jobs");
  dlq_cmd->require_subcommand(1);
  auto* dlq_list = dlq_cmd->add_subcommand("list", "list dead-lettered jobs, newest first");
  dlq_list->add_option("--tenant", opts.dlq_tenant, "only this tenant");
  dlq_list->add_option("--limit", opts.dlq_limit, "at most N rows")->default_val(50);
  dlq_list->add_flag("--json", opts.dlq_json, "one JSON object per line");
  auto* dlq_replay =
      dlq_cmd->add_subcommand("replay", "republish dead-lettered jobs to routes.<tenant_id>");
  dlq_replay->add_option("--id", opts.dlq_id, "one dead letter by id");
  dlq_replay->add_option("--tenant", opts.dlq_tenant, "every dead letter of this tenant");
  dlq_replay->add_option("--route", opts.dlq_route, "with --tenant: only this route id");
  dlq_replay->add_option("--since", opts.dlq_since,
                         "with --tenant: only those since TIME (ISO 8601 or e.g. 2h)");
  dlq_replay->add_flag("--force", opts.dlq_force, "replay even if already replayed");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  const rd::Environment env = rd::process_environment();
  // Each subcommand reads only the sections it uses: `status` must not need MQTT_PASSWORD for a
  // plugin section it never looks at. The daemon, --check-config and `plugins` read everything.
  std::vector<std::string> sections;
  if (*publish_cmd) sections = {"nats", "delivery", "log"};
  if (*status_cmd || *dlq_cmd) sections = {"nats", "dead_letter", "log"};
  if (*migrate_cmd) sections = {"dead_letter", "log"};
  if (opts.check_config) sections.clear();
  rd::Config config;
  try {
    config = rd::load_config(opts.config_file, env, sections);
  } catch (const rd::ConfigError& e) {
    std::cerr << "configuration error:\n" << e.what() << "\n";
    return 2;
  }
  // The postgresql plugin falls back to getenv("DATABASE_URL") itself: a URL given as
  // DATABASE_URL_FILE is handed to it the same way (setenv does not show in /proc/PID/environ).
  if (env.count("DATABASE_URL") == 0 && env.count("DATABASE_URL_FILE") > 0) {
    ::setenv("DATABASE_URL", config.dead_letter.postgres_url.c_str(), 1);
  }
  const bool daemon = !opts.check_config && app.get_subcommands().empty();
  auto level = rd::log::parse_level(config.log.level);
  // Subcommands print their own results; only problems are logged.
  if (!daemon && level < rd::log::Level::warn) level = rd::log::Level::warn;
  rd::log::init(level, config.log.format == "text" || !daemon ? rd::log::Format::text
                                                              : rd::log::Format::json);

  if (opts.check_config) return rd::cli_check_config(config, env);
  if (*plugins_cmd) return rd::cli_plugins(config, env);
  if (*plugin_test_cmd) return rd::cli_plugin_test(plugin_test_file, config, env);
  if (*publish_cmd) return rd::cli_publish(config, opts);
  if (*status_cmd) return rd::cli_status(config, opts);
  if (*migrate_cmd) return rd::cli_migrate(config);
  if (*dlq_list) return rd::cli_dlq_list(config, opts);
  if (*dlq_replay) return rd::cli_dlq_replay(config, opts);
  return rd::run_service(config, env);
}
