#include "cli.hpp"

#include <time.h>

#include <ctime>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

#include "dead_letter_jetstream.hpp"
#include "dead_letter_postgres.hpp"
#include "dlq_admin_jetstream.hpp"
#include "dlq_admin_postgres.hpp"
#include "duration.hpp"
#include "job.hpp"
#include "logging.hpp"
#include "metrics.hpp"
#include "nats_client.hpp"
#include "plugin_host.hpp"
#include "plugin_loader.hpp"
#include "preflight.hpp"

namespace rd {
namespace {

std::string plugin_dir(const Config& config) {
  return config.plugins.dir.empty() ? default_plugin_dir() : config.plugins.dir;
}

const char* type_name(int32_t t) {
  switch (t) {
    case RD_CONFIG_STRING:
      return "string";
    case RD_CONFIG_INT:
      return "int";
    case RD_CONFIG_BOOL:
      return "bool";
    case RD_CONFIG_DURATION:
      return "duration";
    case RD_CONFIG_LIST:
      return "list";
    case RD_CONFIG_SECRET:
      return "secret";
    default:
      return "?";
  }
}

std::unique_ptr<NatsClient> connect_once(const Config& config) {
  auto nats = std::make_unique<NatsClient>(config.nats, nullptr, "route-delivery-cli");
  nats->connect([] { return true; }, false);
  return nats;
}

std::string format_time_ms(int64_t ms) {
  const time_t secs = static_cast<time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

void print_entry(const DeadLetterEntry& e, bool as_json) {
  const auto& r = e.record;
  if (as_json) {
    nlohmann::json j = nlohmann::json::parse(dead_letter_record_json(r));
    j["id"] = e.id;
    j["created_at"] = format_time_ms(e.created_at_ms);
    j["replayed_at"] = e.replayed_at_ms ? nlohmann::json(format_time_ms(*e.replayed_at_ms))
                                        : nlohmann::json(nullptr);
    // destination_config may hold the tenant's secrets (a webhook's signing secret): never
    // printed, neither on its own nor inside the original job.
    j.erase("destination_config");
    if (auto job = j.find("job"); job != j.end() && job->is_object()) {
      if (auto route = job->find("route"); route != job->end() && route->is_object()) {
        route->erase("destination_config");
      }
    }
    std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    return;
  }
  std::cout << std::left << std::setw(8) << e.id << " " << std::setw(20)
            << format_time_ms(e.created_at_ms) << " " << std::setw(16) << r.tenant_id
            << " route=" << (r.route_id ? std::to_string(*r.route_id) : "-")
            << " type=" << (r.destination_type.empty() ? "-" : r.destination_type)
            << " attempts=" << r.attempts
            << (e.replayed_at_ms ? " replayed=" + format_time_ms(*e.replayed_at_ms) : "") << "\n"
            << "         error: " << r.error << "\n";
}

bool publish_job(NatsClient& nats, const Config& config, const std::string& tenant,
                 const std::string& job, std::string& error, uint64_t* seq = nullptr) {
  const std::string subject = config.nats.subject_prefix + "." + tenant;
  jsPubAck* ack = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  natsStatus s = js_Publish(&ack, nats.js(), subject.c_str(), job.data(),
                            static_cast<int>(job.size()), nullptr, &err);
  if (s != NATS_OK) {
    error = nats_error_text("publish to " + subject, s, err);
    return false;
  }
  if (seq != nullptr) *seq = ack->Sequence;
  jsPubAck_Destroy(ack);
  return true;
}

// The admin of the configured dead-letter store: the database when one is configured, else the
// JetStream stream, read through `nats` (which must then be connected).
std::unique_ptr<DeadLetterAdmin> open_dead_letter_admin(const Config& config, NatsClient* nats) {
  if (!config.dead_letter.postgres_url.empty())
    return std::make_unique<PostgresDlqAdmin>(config.dead_letter.postgres_url);
  return std::make_unique<JetStreamDlqAdmin>(nats->js(), config.dead_letter.stream,
                                             config.dead_letter.subject_prefix);
}

void print_replay_report(const Config& config, const DlqReplayReport& report) {
  for (const auto& e : report.replayed) {
    std::cout << "replayed dead letter " << e.id << " to " << config.nats.subject_prefix << "."
              << e.record.tenant_id << "\n";
  }
  for (const auto& e : report.skipped) {
    std::cerr << "refused: dead letter " << e.id << " was already replayed"
              << (e.replayed_at_ms ? " at " + format_time_ms(*e.replayed_at_ms) : "")
              << " (use --force to replay it again)\n";
  }
  for (const auto& e : report.invalid) {
    std::cerr << "refused: dead letter " << e.id << " holds an invalid job (" << e.record.error
              << "); fix it and publish it with `route-delivery publish`\n";
  }
  for (const auto& f : report.failed) {
    std::cerr << "error: dead letter " << f.entry.id << ": " << f.error << "\n";
  }
  for (const auto& w : report.warnings) std::cerr << "warning: " << w << "\n";
  std::cout << report.replayed.size() << " replayed, "
            << report.skipped.size() + report.invalid.size() << " refused, " << report.failed.size()
            << " failed\n";
}

}  // namespace

std::optional<int64_t> parse_since(const std::string& text, int64_t now_ms) {
  if (auto ago = parse_duration_ms(text)) return now_ms - *ago;
  std::tm tm{};
  std::istringstream in(text);
  in >> std::get_time(&tm, "%Y-%m-%dT%H:%M:%S");
  if (in.fail()) {
    in.clear();
    in.str(text);
    in >> std::get_time(&tm, "%Y-%m-%d");
    if (in.fail()) return std::nullopt;
  }
  return static_cast<int64_t>(timegm(&tm)) * 1000;
}

int cli_check_config(const Config& config, const Environment& env) {
  std::map<std::string, PluginConfig> resolved;
  Metrics metrics;
  PluginSet set;
  try {
    // What start-up checks before connecting (plugins loaded, not created): exit 2 on the same.
    preflight(config, env, metrics, set, false);
    for (const auto& p : set.all()) resolved[p->info.name] = p->config;
  } catch (const std::exception& e) {
    std::cerr << "configuration error:\n" << e.what() << "\n";
    return 2;
  }
  std::cout << render_effective_config(config, resolved);
  return 0;
}

int cli_plugins(const Config& config, const Environment& env) {
  const std::string dir = plugin_dir(config);
  try {
    PluginScan scan = scan_plugins(plugin_dirs(config));
    std::cout << "plugin folder: " << dir << "\n";
    for (const auto& p : scan.loaded) {
      std::cout << "\n"
                << p.name << " " << p.version << "  destination_type=" << p.destination_type
                << "  abi=" << p.descriptor->abi_major << "." << p.descriptor->abi_minor << "\n  "
                << p.path << "\n";
      if (!p.description.empty()) std::cout << "  " << p.description << "\n";
      for (uint32_t i = 0; i < p.descriptor->config_key_count; ++i) {
        const rd_config_key k = config_key_at(*p.descriptor, i);
        std::cout << "    plugins." << p.name << "." << k.name << " (" << type_name(k.type)
                  << ", default \"" << (k.default_value ? k.default_value : "") << "\""
                  << (k.env ? std::string(", env ") + k.env : "") << ")"
                  << (k.description ? std::string(": ") + k.description : "") << "\n";
      }
    }
    for (const auto& r : scan.refused)
      std::cout << "\nREFUSED " << r.path << ": " << r.reason << "\n";
    if (scan.loaded.empty()) std::cout << "\n(no plugins loaded)\n";
    Metrics metrics;
    PluginSet set;
    set.init(std::move(scan), config, env, metrics, config.nats.ack_wait_ms, false);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}

int cli_publish(const Config& config, const CliOptions& opts) {
  std::string text;
  if (opts.publish_file == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    std::ifstream in(opts.publish_file, std::ios::binary);
    if (!in) {
      std::cerr << "error: cannot read " << opts.publish_file << "\n";
      return 2;
    }
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' '))
    text.pop_back();
  JobParse parse;
  parse_job(text, "", static_cast<size_t>(config.delivery.max_job_bytes), parse);
  if (!parse.ok) {
    std::cerr
        << "error: not a valid route job: " << parse.error
        << "\n(expected "
           "{\"route\":{\"id\":1,\"destination_type\":\"webhook\",\"destination_config\":{...}},"
           "\"topic\":\"...\",\"payload\":{...},\"tenant_id\":\"...\"})\n";
    return 2;
  }
  try {
    auto nats = connect_once(config);
    std::string error;
    uint64_t seq = 0;
    if (!publish_job(*nats, config, parse.job.tenant_id, text, error, &seq)) {
      std::cerr << "error: " << error << "\n";
      return 1;
    }
    std::cout << "published to " << config.nats.subject_prefix << "." << parse.job.tenant_id
              << " (stream " << config.nats.stream << ", sequence " << seq << ")\n";
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

int cli_status(const Config& config, const CliOptions& opts) {
  try {
    auto nats = connect_once(config);
    jsConsumerInfo* ci = nullptr;
    jsErrCode err = static_cast<jsErrCode>(0);
    natsStatus s = js_GetConsumerInfo(&ci, nats->js(), config.nats.stream.c_str(),
                                      config.nats.consumer.c_str(), nullptr, &err);
    if (s != NATS_OK) {
      std::cerr << "error: "
                << nats_error_text("consumer " + config.nats.stream + "/" + config.nats.consumer, s,
                                   err)
                << "\n";
      return 1;
    }
    nlohmann::json j = {{"stream", config.nats.stream},
                        {"consumer", config.nats.consumer},
                        {"pending", ci->NumPending},
                        {"ack_pending", ci->NumAckPending},
                        {"redelivered", ci->NumRedelivered},
                        {"waiting_pulls", ci->NumWaiting},
                        {"max_attempts", config.nats.max_deliver},
                        {"jetstream_max_deliver", ci->Config->MaxDeliver},
                        {"ack_wait_ms", ci->Config->AckWait / 1'000'000},
                        {"dead_letter_stream_msgs", nullptr}};
    jsConsumerInfo_Destroy(ci);
    jsStreamInfo* si = nullptr;
    if (js_GetStreamInfo(&si, nats->js(), config.dead_letter.stream.c_str(), nullptr, &err) ==
        NATS_OK) {
      j["dead_letter_stream_msgs"] = si->State.Msgs;
      jsStreamInfo_Destroy(si);
    }
    if (opts.status_json) {
      std::cout << j.dump() << "\n";
      return 0;
    }
    std::cout << "stream:        " << config.nats.stream << "\n"
              << "consumer:      " << config.nats.consumer << "\n"
              << "pending:       " << j["pending"] << "\n"
              << "ack_pending:   " << j["ack_pending"] << "\n"
              << "redelivered:   " << j["redelivered"] << "\n"
              << "waiting_pulls: " << j["waiting_pulls"] << "\n"
              << "max_attempts:  " << config.nats.max_deliver << "  (nats.max_deliver)\n"
              << "jetstream_max_deliver: " << j["jetstream_max_deliver"]
              << "  (room for deferrals; safety net)\n"
              << "ack_wait:      " << format_duration_ms(j["ack_wait_ms"].get<int64_t>()) << "\n";
    if (!j["dead_letter_stream_msgs"].is_null()) {
      std::cout << "dead_letter_stream_msgs: " << j["dead_letter_stream_msgs"] << "\n";
    }
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

int cli_migrate(const Config& config) {
  if (config.dead_letter.postgres_url.empty()) {
    std::cerr << "error: no database configured (set DATABASE_URL, PG_HOST or "
                 "dead_letter.postgres.url)\n";
    return 2;
  }
  try {
    PostgresDeadLetterSink sink(config.dead_letter.postgres_url, config.dead_letter.postgres_role,
                                1);
    sink.migrate();
    std::cout << "schema applied to " << redact_url(config.dead_letter.postgres_url) << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}

int cli_dlq_list(const Config& config, const CliOptions& opts) {
  try {
    std::unique_ptr<NatsClient> nats;
    if (config.dead_letter.postgres_url.empty()) nats = connect_once(config);
    const std::vector<DeadLetterEntry> entries =
        open_dead_letter_admin(config, nats.get())
            ->list(opts.dlq_tenant.empty() ? std::nullopt
                                           : std::optional<std::string>(opts.dlq_tenant),
                   opts.dlq_limit);
    for (const auto& e : entries) print_entry(e, opts.dlq_json);
    if (entries.empty() && !opts.dlq_json) std::cout << "(no dead letters)\n";
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

int cli_dlq_replay(const Config& config, const CliOptions& opts) {
  if (opts.dlq_id < 0 && opts.dlq_tenant.empty()) {
    std::cerr << "error: say which dead letters to replay: --id N, or --tenant T [--route R] "
                 "[--since TIME]\n";
    return 2;
  }
  DlqSelection selection;
  if (opts.dlq_id >= 0) selection.id = opts.dlq_id;
  if (!opts.dlq_tenant.empty()) selection.tenant = opts.dlq_tenant;
  if (opts.dlq_route >= 0) selection.route_id = opts.dlq_route;
  if (!opts.dlq_since.empty()) {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    selection.since_ms = parse_since(opts.dlq_since, static_cast<int64_t>(ts.tv_sec) * 1000);
    if (!selection.since_ms) {
      std::cerr << "error: --since '" << opts.dlq_since
                << "' is not a time (write 2h, 30m or 2026-11-27T10:00:00)\n";
      return 2;
    }
  }
  try {
    auto nats = connect_once(config);
    auto admin = open_dead_letter_admin(config, nats.get());
    const DlqReplayReport report =
        admin->replay(selection, opts.dlq_force, [&](const DeadLetterEntry& e) {
          std::string error;
          if (!publish_job(*nats, config, e.record.tenant_id, e.record.original, error))
            throw DlqAdminError(error);
        });
    print_replay_report(config, report);
    const size_t refused = report.skipped.size() + report.invalid.size();
    return !report.failed.empty() || (report.replayed.empty() && refused > 0) ? 1 : 0;
  } catch (const DlqAlreadyReplayed& e) {
    std::cerr << "refused: " << e.what() << "\n";
    std::cout << "0 replayed, 1 refused, 0 failed\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace rd
