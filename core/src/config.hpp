// Configuration: YAML file + environment overrides + ${VAR} expansion, validated with errors that
// name the key and where its value came from (file:line or env VAR).
#pragma once

#include <route_delivery/plugin.h>

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace rd {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Where a value came from, for error messages and --check-config.
struct ValueOrigin {
  std::string text = "default";  // "default", "config.yaml:12", "env NATS_URL"
};

// One scalar or list value as written, before typing.
struct RawValue {
  std::vector<std::string> items;  // one item for scalars
  bool is_list = false;
  ValueOrigin origin;
};

// A plugins.<name> section as written; validated later against the plugin's declared keys.
struct PluginSection {
  std::map<std::string, RawValue> values;
  std::string origin;  // file:line of the section
};

struct Config {
  struct Nats {
    std::string url = "nats://localhost:4222";  // may hold several URLs, comma-separated
    std::string stream = "ROUTES";
    std::vector<std::string> subjects{"routes.>"};
    std::string consumer = "route-delivery";
    bool create = true;
    int64_t max_deliver = 3;
    int64_t ack_wait_ms = 30'000;
    std::vector<int64_t> backoff_ms{1'000, 5'000};
    int64_t max_backoff_ms = 3'600'000;
    int fetch_batch = 256;
    int replicas = 1;                       // for streams the daemon creates (3 on a NATS cluster)
    std::string subject_prefix = "routes";  // jobs arrive on <prefix>.<tenant_id>
    std::string attempts_bucket = "ROUTES_ATTEMPTS";  // KV bucket of attempt counts
    // Authentication (at most one of user/password, token, credentials file, nkey seed file).
    std::string user;
    std::string password;          // secret
    std::string token;             // secret
    std::string credentials_file;  // a .creds file (user JWT + nkey seed), NATS_CREDS
    std::string nkey_seed_file;    // a file holding an nkey user seed (SU...)
    struct Tls {
      std::string ca_file;    // PEM CA bundle the server's certificate must chain to
      std::string cert_file;  // client certificate (PEM), with key_file
      std::string key_file;
      bool verify = true;  // false skips server certificate verification (tests only)
      bool enabled() const { return !ca_file.empty() || !cert_file.empty(); }
    } tls;
    // Where each nats.* value came from ("nats.tls.ca_file" -> "config.yaml:12"), so errors found
    // when the connection options are built name it.
    std::map<std::string, std::string> origins;
  } nats;
  struct Delivery {
    int max_in_flight = 1024;
    int64_t shutdown_grace_ms = 20'000;
    int64_t timeout_ms = 300'000;  // host gives up on a plugin that never completes (as retry)
    int64_t max_job_bytes = 1 << 20;
    // A job whose destination is unavailable waits at most this long (from its publish time).
    int64_t give_up_after_ms = 6 * 3'600'000;
    int max_in_flight_per_destination = 256;  // fairness share (0 in YAML = max_in_flight / 4)
    int max_waiting = 1024;              // jobs held in the host for a destination over its share
    int64_t defer_delay_ms = 250;        // first deferral's delay; doubles per redelivery
    int64_t max_defer_delay_ms = 5'000;  // cap of the deferral delay
    int64_t queue_timeout_ms = 600'000;  // a job a plugin holds queued without starting it
    int circuit_failures = 5;            // consecutive failures that open a destination (0 = off)
    int64_t circuit_probe_interval_ms = 1'000;
  } delivery;
  struct DeadLetter {
    std::string postgres_url;  // empty = JetStream dead-letter stream
    std::string postgres_role = "pulse_app";
    bool postgres_migrate = true;
    int postgres_pool_size = 4;
    std::string stream = "ROUTES_DLQ";
    std::string subject_prefix = "dlq.routes";
    int workers = 4;  // dead-letter threads: write the record, then term (seed: delivery.workers)
  } dead_letter;
  struct Http {
    int port = 8080;
    std::string bind = "0.0.0.0";
  } http;
  struct Plugins {
    std::string dir;          // empty = next to the executable
    bool allow_none = false;  // run with no plugin loaded (every job dead-lettered)
    // Scanned as well as `dir` (a third-party folder beside the bundled plugins).
    std::vector<std::string> dirs;
    std::map<std::string, PluginSection> sections;
  } plugins;
  struct Log {
    std::string level = "info";
    std::string format = "json";
  } log;

  std::string file;  // config file path, "" when none
  // Effective values of every core key, with origins, for --check-config.
  std::vector<std::pair<std::string, RawValue>> effective;

  // Where a core key's value came from ("default" for an unknown key): for error messages that
  // are found after loading (e.g. a TLS file that does not parse).
  std::string origin_of(const std::string& path) const;
};

using Environment = std::map<std::string, std::string>;
Environment process_environment();

// Loads `path` (may be empty: defaults + env only) and applies `env`. Throws ConfigError with one
// line per problem, each naming the key and file:line or env variable.
// `sections` (top-level names such as "nats", "dead_letter", "log"; empty = all) limits what is
// read to what a command uses: the other sections keep their defaults, their values and env
// overrides are not read, and so a ${VAR} or bad value there is no error (`route-delivery status`
// needs no MQTT_PASSWORD). Unknown top-level keys and YAML errors are still errors.
Config load_config(const std::string& path, const Environment& env,
                   const std::vector<std::string>& sections = {});
// Same, from YAML text; `name` stands in for the file name in error messages.
Config load_config_text(const std::string& text, const std::string& name, const Environment& env,
                        const std::vector<std::string>& sections = {});

// Validates a plugin's section against its declared keys (env overrides applied, defaults filled)
// and returns the JSON object passed to xCreate. Throws ConfigError naming key and line.
struct PluginConfig {
  std::string json;
  std::vector<std::pair<std::string, RawValue>> effective;  // for --check-config (secrets marked)
  std::vector<int32_t> types;                               // RD_CONFIG_* per effective entry
  std::vector<std::string> notes;  // adjustments worth a warning (e.g. a default lowered)
  // Host-owned key plugins.<name>.isolation: run the plugin in a child process the daemon
  // supervises (isolated_plugin.hpp). Not passed to the plugin.
  bool isolated = false;
};
PluginConfig resolve_plugin_config(const Config& config, const std::string& plugin_name,
                                   const rd_plugin_descriptor& descriptor, const Environment& env,
                                   int64_t ack_wait_ms);

// Errors for plugins.<name> sections that name no loaded plugin (a typo such as `webhok`, or a
// plugin missing from `dir`), each at the section's line, with a suggestion when one is close.
std::vector<std::string> unknown_plugin_sections(const Config& config,
                                                 const std::vector<std::string>& loaded,
                                                 const std::string& dir);

// The effective configuration as YAML with secrets and URL passwords redacted.
std::string render_effective_config(const Config& config,
                                    const std::map<std::string, PluginConfig>& plugins);

// Secrets taken out of a connection string, in every form the daemon accepts:
//   "postgresql://user:secret@host/db"          -> "postgresql://user:***@host/db"
//   "postgresql://h/db?user=u&password=secret"  -> "postgresql://h/db?user=u&password=***"
//   "host=db password='se cret' dbname=x"       -> "host=db password=*** dbname=x"
//   "nats://token@h:4222,nats://u:p@h2:4222"    -> "nats://***@h:4222,nats://u:***@h2:4222"
// Other strings are returned unchanged.
std::string redact_url(const std::string& url);

}  // namespace rd
