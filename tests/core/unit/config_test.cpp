#include "config.hpp"

#include <gtest/gtest.h>

#include <route_delivery/plugin.hpp>

#include "duration.hpp"
#include "test_support.hpp"

namespace {

using rd::Config;
using rd::ConfigError;
using rd::Environment;

std::string write_yaml(const rdtest::TempDir& dir, const std::string& text) {
  const std::string path = dir.file("config.yaml");
  rdtest::write_file(path, text);
  return path;
}

std::string error_of(const std::string& path, const Environment& env = {}) {
  try {
    rd::load_config(path, env);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(Duration, ParsesOperatorSpellings) {
  EXPECT_EQ(rd::parse_duration_ms("250ms"), 250);
  EXPECT_EQ(rd::parse_duration_ms("10s"), 10'000);
  EXPECT_EQ(rd::parse_duration_ms("5m"), 300'000);
  EXPECT_EQ(rd::parse_duration_ms("1h"), 3'600'000);
  EXPECT_EQ(rd::parse_duration_ms("10"), 10'000);  // WEBHOOK_TIMEOUT_SECONDS=10
  EXPECT_EQ(rd::parse_duration_ms("0.5"), 500);
  EXPECT_FALSE(rd::parse_duration_ms("ten seconds"));
  EXPECT_FALSE(rd::parse_duration_ms("-1s"));
  EXPECT_FALSE(rd::parse_duration_ms(""));
  EXPECT_FALSE(rd::parse_duration_ms("5d"));
  EXPECT_EQ(rd::format_duration_ms(1500), "1500ms");
  EXPECT_EQ(rd::format_duration_ms(300'000), "5m");
}

TEST(Config, DefaultsMatchTheContract) {
  const Config c = rd::load_config("", {});
  EXPECT_EQ(c.nats.url, "nats://localhost:4222");
  EXPECT_EQ(c.nats.stream, "ROUTES");
  EXPECT_EQ(c.nats.subjects, std::vector<std::string>{"routes.>"});
  EXPECT_EQ(c.nats.consumer, "route-delivery");
  EXPECT_TRUE(c.nats.create);
  EXPECT_EQ(c.nats.max_deliver, 3);
  EXPECT_EQ(c.nats.ack_wait_ms, 30'000);
  EXPECT_EQ(c.nats.backoff_ms, (std::vector<int64_t>{1000, 5000}));
  EXPECT_EQ(c.nats.fetch_batch, 256);
  EXPECT_EQ(c.dead_letter.workers, 4);
  EXPECT_EQ(c.delivery.max_in_flight, 1024);
  EXPECT_EQ(c.delivery.shutdown_grace_ms, 20'000);
  EXPECT_EQ(c.dead_letter.stream, "ROUTES_DLQ");
  EXPECT_EQ(c.dead_letter.postgres_role, "pulse_app");
  EXPECT_TRUE(c.dead_letter.postgres_url.empty());
  EXPECT_EQ(c.http.port, 8080);
  EXPECT_EQ(c.log.level, "info");
  EXPECT_EQ(c.log.format, "json");
}

TEST(Config, FileValuesAndEnvOverrides) {
  rdtest::TempDir dir;
  const auto path = write_yaml(dir, R"(
nats:
  url: nats://file:4222
  max_deliver: 5
  backoff: [250ms, 2s, 1m]
delivery:
  workers: 8
http:
  port: 9000
)");
  Config c = rd::load_config(path, {});
  EXPECT_EQ(c.nats.url, "nats://file:4222");
  EXPECT_EQ(c.nats.max_deliver, 5);
  EXPECT_EQ(c.nats.backoff_ms, (std::vector<int64_t>{250, 2000, 60'000}));
  EXPECT_EQ(c.dead_letter.workers, 8);
  EXPECT_EQ(c.http.port, 9000);

  // The Python design's env names override the file.
  c = rd::load_config(path, {{"NATS_URL", "nats://env:4222"},
                             {"DELIVERY_WORKER_COUNT", "2"},
                             {"HEALTH_PORT", "0"},
                             {"NATS_BACKOFF", "1s, 3s"}});
  EXPECT_EQ(c.nats.url, "nats://env:4222");
  EXPECT_EQ(c.dead_letter.workers, 2);
  EXPECT_EQ(c.http.port, 0);
  EXPECT_EQ(c.nats.backoff_ms, (std::vector<int64_t>{1000, 3000}));
}

TEST(Config, VariableExpansion) {
  rdtest::TempDir dir;
  const auto path = write_yaml(dir, R"(
nats:
  url: nats://${NATS_HOST}:${NATS_PORT:-4222}
dead_letter:
  postgres:
    url: "postgresql://iot:${PG_SECRET}@db/iotcloud"
)");
  const Config c = rd::load_config(path, {{"NATS_HOST", "broker"}, {"PG_SECRET", "s3cret"}});
  EXPECT_EQ(c.nats.url, "nats://broker:4222");
  EXPECT_EQ(c.dead_letter.postgres_url, "postgresql://iot:s3cret@db/iotcloud");

  const std::string err = error_of(path, {{"NATS_HOST", "broker"}});
  EXPECT_NE(err.find("config.yaml:6"), std::string::npos) << err;
  EXPECT_NE(err.find("${PG_SECRET} is not set"), std::string::npos) << err;
}

TEST(Config, UnknownKeyNamesKeyLineAndSuggestion) {
  rdtest::TempDir dir;
  const auto path = write_yaml(dir, "nats:\n  url: nats://x:4222\n  max_deliverr: 3\n");
  const std::string err = error_of(path);
  EXPECT_NE(err.find("config.yaml:3"), std::string::npos) << err;
  EXPECT_NE(err.find("nats.max_deliverr"), std::string::npos) << err;
  EXPECT_NE(err.find("did you mean 'nats.max_deliver'"), std::string::npos) << err;
}

TEST(Config, BadValuesNameKeyAndOrigin) {
  rdtest::TempDir dir;
  const auto path = write_yaml(dir, "delivery:\n  workers: many\nnats:\n  ack_wait: soon\n");
  const std::string err = error_of(path);
  EXPECT_NE(err.find("config.yaml:2 (as delivery.workers): dead_letter.workers"), std::string::npos)
      << err;
  EXPECT_NE(err.find("config.yaml:4: nats.ack_wait"), std::string::npos) << err;

  const std::string env_err = error_of("", {{"DELIVERY_WORKER_COUNT", "zero"}});
  EXPECT_NE(env_err.find("env DELIVERY_WORKER_COUNT: dead_letter.workers"), std::string::npos)
      << env_err;
}

// delivery.workers (the seed's name, env DELIVERY_WORKER_COUNT) sizes the dead-letter threads
// and is now dead_letter.workers (DEAD_LETTER_WORKERS); the old names keep working.
TEST(Config, DeadLetterWorkersUnderTheirNewAndTheSeedsName) {
  rdtest::TempDir dir;
  const auto path = write_yaml(dir, "dead_letter:\n  workers: 6\n");
  EXPECT_EQ(rd::load_config(path, {}).dead_letter.workers, 6);
  EXPECT_EQ(rd::load_config(path, {{"DELIVERY_WORKER_COUNT", "3"}}).dead_letter.workers, 3);
  EXPECT_EQ(rd::load_config(path, {{"DELIVERY_WORKER_COUNT", "3"}, {"DEAD_LETTER_WORKERS", "5"}})
                .dead_letter.workers,
            5);

  const auto old_path = write_yaml(dir, "delivery:\n  workers: 7\n");
  const Config c = rd::load_config(old_path, {});
  EXPECT_EQ(c.dead_letter.workers, 7);
  const std::string shown = rd::render_effective_config(c, {});
  EXPECT_NE(shown.find("workers: 7  # " + old_path + ":2 (as delivery.workers)"), std::string::npos)
      << shown;

  const auto both = write_yaml(dir, "delivery:\n  workers: 7\ndead_letter:\n  workers: 6\n");
  const std::string err = error_of(both);
  EXPECT_NE(err.find("config.yaml:2 (as delivery.workers): dead_letter.workers is also set at "),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("config.yaml:4: keep dead_letter.workers"), std::string::npos) << err;
}

TEST(Config, YamlSyntaxErrorNamesLine) {
  rdtest::TempDir dir;
  const auto path = write_yaml(dir, "nats:\n  url: [unclosed\n");
  const std::string err = error_of(path);
  EXPECT_NE(err.find("config.yaml:"), std::string::npos) << err;
  EXPECT_NE(err.find("YAML syntax error"), std::string::npos) << err;
}

TEST(Config, PgVariablesBuildDatabaseUrl) {
  const Config c = rd::load_config(
      "", {{"PG_HOST", "db"}, {"PG_USER", "iot"}, {"PG_PASS", "p@ss"}, {"PG_DB", "iotcloud"}});
  EXPECT_EQ(c.dead_letter.postgres_url, "postgresql://iot:p%40ss@db:5432/iotcloud");
  const Config d = rd::load_config("", {{"PG_HOST", "db"}, {"DATABASE_URL", "postgresql://a@b/c"}});
  EXPECT_EQ(d.dead_letter.postgres_url, "postgresql://a@b/c");  // DATABASE_URL wins
}

TEST(Config, EffectiveConfigRedactsSecrets) {
  const Config c =
      rd::load_config("", {{"NATS_URL", "nats://user:hunter2@n:4222"},
                           {"DATABASE_URL", "postgresql://iot:topsecret@db/iotcloud"}});
  const std::string text = rd::render_effective_config(c, {});
  EXPECT_EQ(text.find("hunter2"), std::string::npos) << text;
  EXPECT_EQ(text.find("topsecret"), std::string::npos) << text;
  EXPECT_NE(text.find("nats://user:***@n:4222"), std::string::npos) << text;
  EXPECT_NE(text.find("# env DATABASE_URL"), std::string::npos) << text;
}

TEST(Config, PluginSectionValidatedAgainstDeclaredKeys) {
  rdtest::TempDir dir;
  const auto path = write_yaml(dir, R"(
plugins:
  demo:
    timeout: 2s
    hosts: [a, b]
    token: abc
    retries: 4
    tymeout: 1s
)");
  const Config c = rd::load_config(path, {});
  static const rd_config_key keys[] = {
      rd::config_key(RD_CONFIG_DURATION, "timeout", "10s", "DEMO_TIMEOUT", "d"),
      rd::config_key(RD_CONFIG_LIST, "hosts", "", nullptr, "d"),
      rd::config_key(RD_CONFIG_SECRET, "token", "", "DEMO_TOKEN", "d"),
      rd::config_key(RD_CONFIG_INT, "retries", "1", nullptr, "d"),
      rd::config_key(RD_CONFIG_BOOL, "verbose", "false", nullptr, "d"),
  };
  rd_plugin_descriptor d{};
  d.struct_size = sizeof d;
  d.abi_minor = RD_ABI_VERSION_MINOR;
  d.config_keys = keys;
  d.config_key_count = 5;
  try {
    rd::resolve_plugin_config(c, "demo", d, {}, 30'000);
    FAIL() << "unknown plugin key accepted";
  } catch (const ConfigError& e) {
    const std::string err = e.what();
    EXPECT_NE(err.find("config.yaml:8: unknown key 'plugins.demo.tymeout'"), std::string::npos)
        << err;
    EXPECT_NE(err.find("did you mean 'plugins.demo.timeout'"), std::string::npos) << err;
  }
  rdtest::write_file(path,
                     "plugins:\n  demo:\n    timeout: 2s\n    hosts: [a, b]\n    token: abc\n");
  const Config ok = rd::load_config(path, {});
  auto pc = rd::resolve_plugin_config(ok, "demo", d, {{"DEMO_TOKEN", "fromenv"}}, 30'000);
  EXPECT_EQ(pc.json,
            R"({"hosts":["a","b"],"retries":1,"timeout":2000,"token":"fromenv","verbose":false})");
  const std::string shown = rd::render_effective_config(ok, {{"demo", pc}});
  EXPECT_EQ(shown.find("fromenv"), std::string::npos) << shown;
  EXPECT_NE(shown.find("token: \"***\""), std::string::npos) << shown;

  // A default timeout that does not fit below ack_wait is lowered, with a note.
  const auto kept = rd::resolve_plugin_config(ok, "demo", d, {}, 8'000);
  EXPECT_NE(kept.json.find("\"timeout\":2000"), std::string::npos) << kept.json;  // written: kept
  rdtest::write_file(path, "plugins:\n  demo:\n    hosts: [a]\n");
  const auto low = rd::resolve_plugin_config(rd::load_config(path, {}), "demo", d, {}, 8'000);
  EXPECT_NE(low.json.find("\"timeout\":6000"), std::string::npos) << low.json;
  ASSERT_EQ(low.notes.size(), 1u);
  EXPECT_NE(low.notes[0].find("lowered to 6s"), std::string::npos) << low.notes[0];

  // A plugin timeout the operator set at or above ack_wait is a config error.
  try {
    rd::resolve_plugin_config(ok, "demo", d, {{"DEMO_TIMEOUT", "45s"}}, 30'000);
    FAIL() << "timeout >= ack_wait accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("must be below nats.ack_wait"), std::string::npos)
        << e.what();
  }
}

// plugins.<name>.isolation is the host's: validated here, never passed to the plugin.
TEST(Config, PluginIsolationIsAHostKeyNotPassedToThePlugin) {
  rdtest::TempDir dir;
  static const rd_config_key keys[] = {
      rd::config_key(RD_CONFIG_INT, "retries", "1", nullptr, "d"),
  };
  rd_plugin_descriptor d{};
  d.struct_size = sizeof d;
  d.abi_minor = RD_ABI_VERSION_MINOR;
  d.config_keys = keys;
  d.config_key_count = 1;
  const auto path = write_yaml(dir, "plugins:\n  demo:\n    isolation: process\n");
  const auto isolated = rd::resolve_plugin_config(rd::load_config(path, {}), "demo", d, {}, 30'000);
  EXPECT_TRUE(isolated.isolated);
  EXPECT_EQ(isolated.json, R"({"retries":1})");
  write_yaml(dir, "plugins:\n  demo:\n    retries: 2\n");
  const auto plain = rd::resolve_plugin_config(rd::load_config(path, {}), "demo", d, {}, 30'000);
  EXPECT_FALSE(plain.isolated);
  write_yaml(dir, "plugins:\n  demo:\n    isolation: in_process\n");
  EXPECT_FALSE(
      rd::resolve_plugin_config(rd::load_config(path, {}), "demo", d, {}, 30'000).isolated);
  for (const std::string bad : {"threads", "[process]", "\"\""}) {
    write_yaml(dir, "plugins:\n  demo:\n    isolation: " + bad + "\n");
    try {
      rd::resolve_plugin_config(rd::load_config(path, {}), "demo", d, {}, 30'000);
      FAIL() << "isolation: " << bad << " accepted";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(
                    "config.yaml:3: plugins.demo.isolation: must be in_process or process"),
                std::string::npos)
          << e.what();
    }
  }
}

TEST(Config, RedactUrl) {
  EXPECT_EQ(rd::redact_url("postgresql://iot:pw@h:5432/db"), "postgresql://iot:***@h:5432/db");
  EXPECT_EQ(rd::redact_url("nats://token@h:4222"), "nats://***@h:4222");
  EXPECT_EQ(rd::redact_url("nats://h:4222"), "nats://h:4222");
}

}  // namespace

namespace {
TEST(Config, DestinationKeysDefaultsEnvAndErrors) {
  const rd::Config c = rd::load_config("", {});
  EXPECT_EQ(c.delivery.give_up_after_ms, 6 * 3'600'000);
  EXPECT_EQ(c.delivery.max_in_flight_per_destination, 256);  // max_in_flight / 4
  EXPECT_EQ(c.delivery.max_waiting, 1024);                   // max_in_flight
  EXPECT_EQ(c.delivery.defer_delay_ms, 250);
  EXPECT_EQ(c.delivery.max_defer_delay_ms, 5'000);
  EXPECT_EQ(c.delivery.circuit_failures, 5);
  EXPECT_EQ(c.delivery.circuit_probe_interval_ms, 1'000);
  EXPECT_EQ(c.nats.attempts_bucket, "ROUTES_ATTEMPTS");

  const rd::Config e =
      rd::load_config_text("delivery:\n  max_in_flight: 100\n  circuit:\n    failures: 2\n",
                           "t.yaml", {{"DELIVERY_GIVE_UP_AFTER", "20s"}, {"NATS_STREAM", "JOBS"}});
  EXPECT_EQ(e.delivery.give_up_after_ms, 20'000);
  EXPECT_EQ(e.delivery.max_in_flight_per_destination, 25);
  EXPECT_EQ(e.delivery.circuit_failures, 2);
  EXPECT_EQ(e.nats.attempts_bucket, "JOBS_ATTEMPTS");

  try {
    rd::load_config_text("delivery:\n  give_up_after: 0s\n  max_defer_delay: 10ms\n", "t.yaml", {});
    FAIL() << "expected a ConfigError";
  } catch (const rd::ConfigError& err) {
    const std::string what = err.what();
    EXPECT_NE(what.find("t.yaml:2: delivery.give_up_after"), std::string::npos) << what;
    EXPECT_NE(what.find("delivery.max_defer_delay: must be >= delivery.defer_delay"),
              std::string::npos)
        << what;
  }
}
}  // namespace

namespace {
std::string text_error(const std::string& yaml, const Environment& env = {}) {
  try {
    rd::load_config_text(yaml, "t.yaml", env);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(Config, NatsSecurityKeysFileAndEnv) {
  rdtest::TempDir dir;
  const std::string ca = dir.file("ca.pem");
  rdtest::write_file(ca, "x");
  const Config c = rd::load_config_text(
      "nats:\n  user: rd\n  password: pw1\n  tls:\n    ca_file: " + ca + "\n", "t.yaml", {});
  EXPECT_EQ(c.nats.user, "rd");
  EXPECT_EQ(c.nats.password, "pw1");
  EXPECT_EQ(c.nats.tls.ca_file, ca);
  EXPECT_TRUE(c.nats.tls.verify);
  EXPECT_TRUE(c.nats.tls.enabled());
  EXPECT_EQ(c.nats.origins.at("nats.tls.ca_file"), "t.yaml:5");
  // Passwords and tokens are never printed; where they came from is.
  const std::string shown = rd::render_effective_config(c, {});
  EXPECT_EQ(shown.find("pw1"), std::string::npos) << shown;
  EXPECT_NE(shown.find("password: \"***\"  # t.yaml:3"), std::string::npos) << shown;
  EXPECT_NE(shown.find("  tls:\n    ca_file: \"" + ca + "\"  # t.yaml:5"), std::string::npos)
      << shown;

  const Config e = rd::load_config(
      "",
      {{"NATS_TOKEN", "t0k"}, {"NATS_TLS_VERIFY", "false"}, {"NATS_CREDS", ""}, {"NATS_USER", ""}});
  EXPECT_EQ(e.nats.token, "t0k");
  EXPECT_FALSE(e.nats.tls.verify);
  EXPECT_FALSE(e.nats.tls.enabled());
}

TEST(Config, NatsSecurityConflictsAreErrors) {
  std::string err = text_error("nats:\n  user: rd\n  token: abc\n");
  EXPECT_NE(err.find("t.yaml:3: nats.token: nats.user and nats.token are set"), std::string::npos)
      << err;
  err = text_error("nats:\n  url: nats://u:p@h:4222\n", {{"NATS_TOKEN", "abc"}});
  EXPECT_NE(err.find("credentials in nats.url and nats.token are set"), std::string::npos) << err;
  err = text_error("nats:\n  password: abc\n");
  EXPECT_NE(err.find("t.yaml:2: nats.password: needs nats.user"), std::string::npos) << err;
  err = text_error("nats:\n  tls:\n    key_file: /etc/hostname\n");
  EXPECT_NE(err.find("t.yaml:3: nats.tls.key_file: nats.tls.cert_file and nats.tls.key_file go "
                     "together"),
            std::string::npos)
      << err;
  err = text_error("", {{"NATS_CREDS", "/nonexistent/rd.creds"}});
  EXPECT_NE(err.find("env NATS_CREDS: nats.credentials_file: cannot read '/nonexistent/rd.creds'"),
            std::string::npos)
      << err;
}
}  // namespace

namespace {
TEST(Config, SecretsFromFiles) {
  rdtest::TempDir dir;
  const std::string pw = dir.file("nats_password");
  rdtest::write_file(pw, "s3cr3t-from-file\n");
  const std::string db = dir.file("database_url");
  rdtest::write_file(db, "host=db user=iot password='db pw' dbname=x\r\n");
  const Config c = rd::load_config(
      "", {{"NATS_USER", "rd"}, {"NATS_PASSWORD_FILE", pw}, {"DATABASE_URL_FILE", db}});
  EXPECT_EQ(c.nats.password, "s3cr3t-from-file");  // trailing newline stripped
  EXPECT_EQ(c.dead_letter.postgres_url, "host=db user=iot password='db pw' dbname=x");
  EXPECT_EQ(c.nats.origins.at("nats.password"), "file " + pw + " (NATS_PASSWORD_FILE)");
  const std::string shown = rd::render_effective_config(c, {});
  EXPECT_EQ(shown.find("s3cr3t"), std::string::npos) << shown;
  EXPECT_EQ(shown.find("db pw"), std::string::npos) << shown;
  EXPECT_NE(shown.find("password: \"***\"  # file " + pw + " (NATS_PASSWORD_FILE)"),
            std::string::npos)
      << shown;
  EXPECT_NE(shown.find("url: \"host=db user=iot password='***' dbname=x\"  # file " + db +
                       " (DATABASE_URL_FILE)"),
            std::string::npos)
      << shown;

  // PG_PASS_FILE for the PG_* form; NATS_TOKEN_FILE; NATS_URL_FILE (a URL may hold credentials).
  const Config p = rd::load_config("", {{"PG_HOST", "db"}, {"PG_PASS_FILE", pw}});
  EXPECT_EQ(p.dead_letter.postgres_url, "postgresql://iot:s3cr3t-from-file@db:5432/iotcloud");
  EXPECT_EQ(p.origin_of("dead_letter.postgres.url"),
            "env PG_HOST/PG_PORT/PG_DB/PG_USER/PG_PASS_FILE");
  EXPECT_EQ(rd::load_config("", {{"NATS_TOKEN_FILE", pw}}).nats.token, "s3cr3t-from-file");
  // DATABASE_URL_FILE, like DATABASE_URL, turns the PG_* form off.
  EXPECT_EQ(
      rd::load_config("", {{"PG_HOST", "x"}, {"DATABASE_URL_FILE", db}}).dead_letter.postgres_url,
      "host=db user=iot password='db pw' dbname=x");

  // Both set, or an unreadable file: errors naming the variables and the path, not the value.
  std::string err =
      error_of("", {{"NATS_PASSWORD", "a"}, {"NATS_PASSWORD_FILE", pw}, {"NATS_USER", "u"}});
  EXPECT_NE(err.find("env NATS_PASSWORD and env NATS_PASSWORD_FILE are both set"),
            std::string::npos)
      << err;
  // A plugin's secret (MQTT_PASSWORD_FILE) is read with that plugin's keys, not here.
  EXPECT_EQ(error_of("", {{"MQTT_PASSWORD_FILE", "/nonexistent/secret"}}), "");
  err = error_of("", {{"DATABASE_URL_FILE", "/nonexistent/db"}});
  EXPECT_NE(err.find("env DATABASE_URL_FILE: cannot read '/nonexistent/db'"), std::string::npos)
      << err;
  // Non-secret keys have no _FILE form.
  EXPECT_EQ(rd::load_config("", {{"NATS_STREAM_FILE", pw}}).nats.stream, "ROUTES");
}

TEST(Config, PluginSecretFromFile) {
  rdtest::TempDir dir;
  const std::string pw = dir.file("mqtt_password");
  rdtest::write_file(pw, "mq-pw\n");
  static const rd_config_key keys[] = {
      rd::config_key(RD_CONFIG_SECRET, "password", "", "DEMO_PASSWORD", "d"),
      rd::config_key(RD_CONFIG_STRING, "host", "", "DEMO_HOST", "d"),
  };
  rd_plugin_descriptor d{};
  d.struct_size = sizeof d;
  d.abi_minor = RD_ABI_VERSION_MINOR;
  d.config_keys = keys;
  d.config_key_count = 2;
  const Config c = rd::load_config("", {});
  auto pc = rd::resolve_plugin_config(c, "demo", d, {{"DEMO_PASSWORD_FILE", pw}}, 30'000);
  EXPECT_EQ(pc.json, R"({"host":"","password":"mq-pw"})");
  EXPECT_EQ(pc.effective[0].second.origin.text, "file " + pw + " (DEMO_PASSWORD_FILE)");
  // A string key has no _FILE form.
  pc = rd::resolve_plugin_config(c, "demo", d, {{"DEMO_HOST_FILE", pw}}, 30'000);
  EXPECT_EQ(pc.json, R"({"host":"","password":""})");
  EXPECT_THROW(rd::resolve_plugin_config(
                   c, "demo", d, {{"DEMO_PASSWORD_FILE", pw}, {"DEMO_PASSWORD", "x"}}, 30'000),
               ConfigError);
}

TEST(Config, RedactsEveryConnectionStringForm) {
  // libpq keyword=value, with and without quotes and blanks around '='.
  EXPECT_EQ(rd::redact_url("host=db user=iot password=dbpw999 dbname=x"),
            "host=db user=iot password=*** dbname=x");
  EXPECT_EQ(rd::redact_url("host=db password = 'a \\' b' dbname=x"),
            "host=db password = '***' dbname=x");
  EXPECT_EQ(rd::redact_url("password=p sslpassword=k"), "password=*** sslpassword=***");
  // URIs: userinfo, query parameters, both schemes; a user name alone is kept for postgres.
  EXPECT_EQ(rd::redact_url("postgresql://iot:pw@h:5432/db"), "postgresql://iot:***@h:5432/db");
  EXPECT_EQ(rd::redact_url("postgres://h/db?user=iot&password=qpw777&sslmode=require"),
            "postgres://h/db?user=iot&password=***&sslmode=require");
  EXPECT_EQ(rd::redact_url("postgresql://iot@h/db"), "postgresql://iot@h/db");
  EXPECT_EQ(rd::redact_url("postgresql://iot:p/w@h/db"), "postgresql://iot:***@h/db");
  // NATS: a token as the whole userinfo, several URLs.
  EXPECT_EQ(rd::redact_url("nats://tok@a:4222,tls://u:p@b:4222,nats://c:4222"),
            "nats://***@a:4222,tls://u:***@b:4222,nats://c:4222");
  EXPECT_EQ(rd::redact_url("plain text"), "plain text");
}
}  // namespace

namespace {
TEST(Config, DuplicateKeysAreErrorsNamingBothLines) {
  std::string err = text_error("nats:\n  url: nats://a:4222\n  stream: S\n  url: nats://b:4222\n");
  EXPECT_NE(err.find("t.yaml:4: duplicate key 'nats.url' (first at t.yaml:2)"), std::string::npos)
      << err;
  err = text_error("log:\n  level: info\nnats:\n  stream: S\nlog:\n  format: text\n");
  EXPECT_NE(err.find("t.yaml:5: duplicate key 'log' (first at t.yaml:1)"), std::string::npos)
      << err;
  err = text_error("plugins:\n  demo:\n    a: 1\n    a: 2\n  demo:\n    b: 1\n");
  EXPECT_NE(err.find("t.yaml:4: duplicate key 'plugins.demo.a' (first at t.yaml:3)"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("t.yaml:5: duplicate key 'plugins.demo' (first at t.yaml:2)"),
            std::string::npos)
      << err;
}

TEST(Config, UnterminatedQuotesAreErrorsAtTheirLine) {
  // yaml-cpp would read these as one long string swallowing the keys below.
  std::string err = text_error("nats:\n  url: \"nats://a:4222\n  stream: X\nlog:\n  level: info\n");
  EXPECT_NE(err.find("t.yaml:2: nats.url: the value's opening \" is not closed on this line"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("swallows 'stream: X' (line 3)"), std::string::npos) << err;
  err = text_error("log:\n  level: 'info\n");
  EXPECT_NE(err.find("t.yaml:2: log.level: the value's opening ' is never closed"),
            std::string::npos)
      << err;
  err = text_error("nats:\n  backoff: [1s, \"5s]\n");
  EXPECT_NE(err.find("t.yaml:2 opens a \" that is not closed on that line"), std::string::npos)
      << err;
  // A syntax error that follows an unterminated quote points back at it.
  err = text_error("nats:\n  url: \"nats://a:4222\n  stream: \"X\"\n");
  EXPECT_NE(err.find("YAML syntax error"), std::string::npos) << err;
  EXPECT_NE(err.find("t.yaml:2 opens a \" that is not closed on that line"), std::string::npos)
      << err;
  // Well-formed quoting, escapes and a folded quoted value are fine.
  EXPECT_EQ(text_error("nats:\n  url: \"nats://a:4222\"\n  stream: 'it''s'\n"
                       "  consumer: \"a \\\" b\"\n  subjects: [\"x.>\", 'y.>']\n"
                       "log:\n  level: \"in\n    fo\"\n"),
            "t.yaml:7: log.level: 'in fo' is not one of debug, info, warn, error, off");
}

TEST(Config, UrlsAreParsed) {
  std::string err = text_error("", {{"NATS_URL", "http://a b:4222"}});
  EXPECT_NE(err.find("env NATS_URL: nats.url: 'http://a b:4222' is not a NATS server URL: the "
                     "scheme 'http' is not nats, tls, ws or wss; it contains a blank"),
            std::string::npos)
      << err;
  for (const char* bad : {"nats://a:99999", "nats://:4222", "nats://a:4222/path", "nats://a_b$:1",
                          "nats://ok:4222,nats://x y:4222", "a:b"}) {
    EXPECT_NE(text_error("", {{"NATS_URL", bad}}).find("is not a NATS server URL"),
              std::string::npos)
        << bad;
  }
  for (const char* good : {"nats://a:4222", "tls://u:p@a.b-c:4222,nats://[::1]:4222",
                           "localhost:4222", "ws://h:8080/ws", "nats://token@h", "nats://h/"}) {
    EXPECT_EQ(text_error("", {{"NATS_URL", good}}), "") << good;
  }
  // Credentials in a bad URL stay hidden.
  err = text_error("", {{"NATS_URL", "nats://u:hunter2@h:42x"}});
  EXPECT_EQ(err.find("hunter2"), std::string::npos) << err;
  // The database URL is parsed as libpq parses it; parts of a password are never quoted back.
  err = text_error("", {{"DATABASE_URL", "host=db password=sec ret dbname=x"}});
  EXPECT_NE(err.find("env DATABASE_URL: dead_letter.postgres.url: not a PostgreSQL connection "
                     "string: missing \"=\" after \"...\""),
            std::string::npos)
      << err;
  EXPECT_EQ(err.find("ret"), std::string::npos) << err;
  err = text_error("", {{"DATABASE_URL", "postgresql://h/db?passwrd=x"}});
  EXPECT_NE(err.find("invalid URI query parameter: \"passwrd\""), std::string::npos) << err;
  EXPECT_NE(text_error("", {{"DATABASE_URL", "host=db password='abc"}}).find("unterminated"),
            std::string::npos);
  EXPECT_EQ(text_error("", {{"DATABASE_URL", "host=db user=iot password='a b' dbname=x"}}), "");
  EXPECT_EQ(text_error("", {{"DATABASE_URL", "postgresql://iot:p%40ss@db:5432/x?sslmode=require"}}),
            "");
}

TEST(Config, PluginSectionForNoLoadedPluginIsAnErrorWithASuggestion) {
  const Config c = rd::load_config_text(
      "plugins:\n  dir: /p\n  webhok:\n    timeout: 5s\n  scriptd:\n    x: 1\n  other: {}\n",
      "t.yaml", {});
  const auto errors = rd::unknown_plugin_sections(c, {"scripted", "mqtt_republish"}, "/p");
  ASSERT_EQ(errors.size(), 3u);
  // std::map order: other, scriptd, webhok; each at the line of its name.
  EXPECT_EQ(errors[0],
            "t.yaml:7: plugins.other: no loaded plugin is named 'other' (plugins loaded from /p: "
            "scripted, mqtt_republish; install the plugin or remove the section)");
  EXPECT_EQ(errors[1],
            "t.yaml:5: plugins.scriptd: no loaded plugin is named 'scriptd' (did you mean "
            "'scripted'?)");
  EXPECT_NE(errors[2].find("t.yaml:3: plugins.webhok: no loaded plugin is named 'webhok' (did "
                           "you mean 'webhook'?)"),
            std::string::npos)
      << errors[2];
  EXPECT_TRUE(rd::unknown_plugin_sections(c, {"webhok", "scriptd", "other"}, "/p").empty());
}
// Subcommands read only the sections they use: a ${VAR} left unset in a plugin section, or a bad
// value in a section they never look at, does not stop `status`; the daemon's full load still
// refuses both.
TEST(ConfigSections, ASubcommandReadsOnlyTheSectionsItUses) {
  const std::string yaml =
      "nats:\n  url: nats://n1:4222\n"
      "http:\n  port: ${RDTEST_UNSET_PORT}\n"
      "delivery:\n  max_in_flight: many\n"
      "plugins:\n  dir: /nowhere\n  mqtt_republish:\n    password: ${RDTEST_UNSET_MQTT_PASSWORD}\n"
      "dead_letter:\n  stream: DLQ_X\n";
  const rd::Environment env{{"HEALTH_PORT", "not-a-port"}};
  try {
    rd::load_config_text(yaml, "t.yaml", env);
    FAIL() << "the full load accepted an unset variable";
  } catch (const rd::ConfigError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("RDTEST_UNSET_MQTT_PASSWORD"), std::string::npos) << what;
    EXPECT_NE(what.find("delivery.max_in_flight"), std::string::npos) << what;
  }
  const Config c = rd::load_config_text(yaml, "t.yaml", env, {"nats", "dead_letter", "log"});
  EXPECT_EQ(c.nats.url, "nats://n1:4222");
  EXPECT_EQ(c.dead_letter.stream, "DLQ_X");
  EXPECT_EQ(c.delivery.max_in_flight, 1024);  // the default: the section was not read
  EXPECT_TRUE(c.plugins.sections.empty());
  // Within the sections it reads, errors are still errors.
  EXPECT_THROW(rd::load_config_text("nats:\n  url: ${RDTEST_UNSET_URL}\n", "t.yaml", {},
                                    {"nats", "dead_letter", "log"}),
               rd::ConfigError);
  EXPECT_THROW(rd::load_config_text("natss:\n  url: x\n", "t.yaml", {}, {"nats"}), rd::ConfigError);
}

TEST(ConfigSections, PluginsAllowNoneIsACoreKeyNotAPluginSection) {
  const Config c = rd::load_config_text("plugins:\n  allow_none: true\n", "t.yaml", {});
  EXPECT_TRUE(c.plugins.allow_none);
  EXPECT_TRUE(c.plugins.sections.empty());
  EXPECT_FALSE(rd::load_config_text("", "t.yaml", {}).plugins.allow_none);
  EXPECT_TRUE(
      rd::load_config_text("", "t.yaml", {{"PLUGINS_ALLOW_NONE", "true"}}).plugins.allow_none);
}

}  // namespace
