// `route-delivery --check-config` as a CI gate for the bundled plugins' settings: every value that
// start-up refuses, --check-config refuses too, with exit 2 and the same message naming the key and
// its line (or env variable) and the real range. Runs the real daemon binary against the bundled
// plugin folder; start-up stops in its pre-flight checks, before it connects anywhere, so no
// server is needed (nats.url points at a closed port: a daemon that got past the checks would
// keep retrying it and be killed by the timeout).
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;

struct Case {
  std::string setting;  // "key: value" under plugins.<plugin>
  std::map<std::string, std::string> env;
  std::string message;  // expected in --check-config's output and in the daemon's log
};

void expect_refused_alike(const std::string& plugin, const std::vector<Case>& cases) {
  rdtest::TempDir tmp("rdtest-gate-" + plugin);
  const std::string file = tmp.file("config.yaml");
  for (const auto& c : cases) {
    // Line 6 holds the setting.
    const std::string yaml = "nats:\n  url: nats://127.0.0.1:1\nhttp:\n  port: 0\nplugins:\n  " +
                             plugin + ":\n    " + c.setting + "\n";
    rdtest::write_file(file, yaml);
    std::string message = c.message;
    if (const auto at = message.find("@FILE"); at != std::string::npos)
      message.replace(at, 5, file);
    const auto check =
        rdtest::run_command({rdtest::daemon_path(), "--config", file, "--check-config"}, c.env);
    EXPECT_EQ(check.status, 2) << c.setting << "\n" << check.output;
    EXPECT_NE(check.output.find(message), std::string::npos)
        << "--check-config, " << c.setting << ": want '" << message << "' in\n"
        << check.output;
    auto env = c.env;
    env["LOG_FORMAT"] = "text";
    const auto start = rdtest::run_command({rdtest::daemon_path(), "--config", file}, env, 20s);
    EXPECT_EQ(start.status, 2) << c.setting << "\n" << start.output;
    EXPECT_NE(start.output.find(message), std::string::npos)
        << "start-up, " << c.setting << ": want '" << message << "' in\n"
        << start.output;
  }
}

TEST(PluginConfigGate, MqttRepublishOutOfRangeRefusedByCheckConfigAsAtStartup) {
  expect_refused_alike(
      "mqtt_republish",
      {
          {"qos: 5",
           {},
           "@FILE:7: plugins.mqtt_republish.qos: must be an integer between 0 and 2, got '5'"},
          {"port: -1",
           {},
           "@FILE:7: plugins.mqtt_republish.port: must be an integer between 1 and 65535, got "
           "'-1'"},
          {"port: 70000",
           {},
           "plugins.mqtt_republish.port: must be an integer between 1 and 65535, got '70000'"},
          {"host: \"\"",
           {{"MQTT_QOS", "3"}},
           "env MQTT_QOS: plugins.mqtt_republish.qos: must be an integer between 0 and 2, got '3'"},
          {"max_inflight: 0",
           {},
           "plugins.mqtt_republish.max_inflight: must be an integer between 1 and 65535, got '0'"},
          {"publish_timeout: 10ms",
           {},
           "plugins.mqtt_republish.publish_timeout: must be a duration between 100ms and 1h, got "
           "10ms"},
          {"keepalive: 500ms",
           {},
           "plugins.mqtt_republish.keepalive: must be a duration between 1s and 1h, got 500ms"},
          // Checks of the plugin's own (xValidate), not expressible as a declared range.
          {"reconnect_min: 20s", {}, "plugin 'mqtt_republish' ("},
          {"reconnect_min: 20s",
           {},
           "refuses its configuration: plugins.mqtt_republish.reconnect_max: must not be shorter "
           "than reconnect_min"},
          {"client_id_prefix: \"a b\"",
           {},
           "plugins.mqtt_republish.client_id_prefix: must be non-empty"},
          {"host: mqtt://broker",
           {},
           "plugins.mqtt_republish.host: must be a host name or address without scheme"},
      });
}

TEST(PluginConfigGate, WebhookOutOfRangeRefusedByCheckConfigAsAtStartup) {
  expect_refused_alike(
      "webhook",
      {
          {"threads: -3",
           {},
           "@FILE:7: plugins.webhook.threads: must be an integer between 1 and 64, got '-3'"},
          {"threads: 65",
           {},
           "plugins.webhook.threads: must be an integer between 1 and 64, got '65'"},
          {"max_connections_per_host: 0",
           {},
           "plugins.webhook.max_connections_per_host: must be an integer between 1 and 10000, got "
           "'0'"},
          {"max_queued_per_host: -1",
           {},
           "plugins.webhook.max_queued_per_host: must be an integer between 0 and 1000000, got "
           "'-1'"},
          {"max_idle_connections: 0",
           {},
           "plugins.webhook.max_idle_connections: must be an integer between 1 and 100000, got "
           "'0'"},
          {"response_excerpt_bytes: 5000",
           {},
           "plugins.webhook.response_excerpt_bytes: must be an integer between 0 and 4096, got "
           "'5000'"},
          {"threads: many",
           {},
           "plugins.webhook.threads: must be an integer between 1 and 64, got 'many'"},
          {"timeout: 0s",
           {},
           "plugins.webhook.timeout: must be a duration of at least 1ms, got 0s"},
          // The plugin's own check (xValidate): a network that is not a CIDR.
          {"allowed_networks: [\"10.0.0.0/33\"]", {}, "plugin 'webhook' ("},
          {"allowed_networks: [\"10.0.0.0/33\"]", {}, "refuses its configuration:"},
      });
}

TEST(PluginConfigGate, PostgresqlOutOfRangeRefusedByCheckConfigAsAtStartup) {
  expect_refused_alike(
      "postgresql",
      {
          {"pool_size: 0",
           {},
           "@FILE:7: plugins.postgresql.pool_size: must be an integer between 1 and 64, got '0'"},
          {"pool_size: 65",
           {},
           "plugins.postgresql.pool_size: must be an integer between 1 and 64, got '65'"},
          {"batch_max: 1001",
           {},
           "plugins.postgresql.batch_max: must be an integer between 1 and 1000, got '1001'"},
          {"statement_timeout: 2h",
           {},
           "plugins.postgresql.statement_timeout: must be a duration between 0s and 1h, got 2h"},
          {"connect_timeout: 500ms",
           {},
           "plugins.postgresql.connect_timeout: must be a duration between 1s and 10m, got 500ms"},
          // The plugin's own check (xValidate): libpq does not parse the URL. Never quoted.
          {"url: \"host=db port\"",
           {},
           "plugins.postgresql.url: not a valid PostgreSQL connection string"},
      });
}

}  // namespace

// plugins.dirs / PLUGIN_DIRS add a third-party folder to the bundled one instead of replacing it:
// a section for a plugin in either folder is valid, and both kinds are loaded.
TEST(PluginConfigGate, PluginsDirsAddsAFolderToTheBundledOne) {
  rdtest::TempDir tmp("rdtest-gate-dirs");
  const std::string file = tmp.file("config.yaml");
  const std::string extra = rdtest::test_plugin_dir() + "/scripted";
  const std::string sections =
      "plugins:\n  webhook:\n    threads: 2\n  scripted:\n    worker_threads: 2\n";
  rdtest::write_file(file, "nats:\n  url: nats://127.0.0.1:1\n" + sections);
  // Without the extra folder: only the bundled plugins, so the scripted section names nothing.
  auto r = rdtest::run_command({rdtest::daemon_path(), "--config", file, "--check-config"});
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("plugins.scripted: no loaded plugin is named 'scripted'"),
            std::string::npos)
      << r.output;
  // In the file.
  rdtest::write_file(file,
                     "nats:\n  url: nats://127.0.0.1:1\n" + sections + "  dirs: [" + extra + "]\n");
  r = rdtest::run_command({rdtest::daemon_path(), "--config", file, "--check-config"});
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("  webhook:\n"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("  scripted:\n"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("  dirs: [\"" + extra + "\"]"), std::string::npos) << r.output;
  // In the environment (comma-separated, like every list).
  rdtest::write_file(file, "nats:\n  url: nats://127.0.0.1:1\n" + sections);
  r = rdtest::run_command({rdtest::daemon_path(), "--config", file, "--check-config"},
                          {{"PLUGIN_DIRS", extra}});
  EXPECT_EQ(r.status, 0) << r.output;
  // A folder that does not exist is an error naming the key.
  r = rdtest::run_command({rdtest::daemon_path(), "--config", file, "--check-config"},
                          {{"PLUGIN_DIRS", extra + "," + tmp.file("missing")}});
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("plugin folder '" + tmp.file("missing") +
                          "' does not exist (set "
                          "plugins.dirs or PLUGIN_DIRS"),
            std::string::npos)
      << r.output;
}
