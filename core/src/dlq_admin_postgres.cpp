#include "dlq_admin_postgres.hpp"

#include <pqxx/pqxx>
#include <utility>

#include "dead_letter_postgres.hpp"
#include "pg_support.hpp"

namespace rd {

namespace {

// Python-era rows have no original_job: rebuild the job from their columns so replay still works.
constexpr const char* kSelectColumns =
    "SELECT id, tenant_id, route_id, coalesce(original_topic, ''), coalesce(payload::text, "
    "'null'), "
    "coalesce(destination_type, ''), coalesce(destination_config::text, '{}'), "
    "coalesce(error_message, ''), attempts, coalesce(message_id, ''), coalesce(subject, ''), "
    "coalesce(original_job, convert_to(jsonb_build_object('route', jsonb_build_object('id', "
    "route_id, 'destination_type', destination_type, 'destination_config', "
    "coalesce(destination_config, '{}'::jsonb)), 'topic', original_topic, 'payload', payload, "
    "'tenant_id', tenant_id)::text, 'UTF8')), job_valid, "
    "(extract(epoch FROM coalesce(failed_at, created_at)) * 1000)::bigint, "
    "(extract(epoch FROM created_at) * 1000)::bigint, "
    "(extract(epoch FROM replayed_at) * 1000)::bigint "
    "FROM dead_letter_messages ";

DeadLetterEntry entry_from_row(const pqxx::row& row) {
  DeadLetterEntry e;
  e.id = row[0].as<int64_t>();
  DeadLetterRecord& r = e.record;
  r.tenant_id = row[1].as<std::string>();
  if (!row[2].is_null()) r.route_id = row[2].as<int64_t>();
  r.topic = row[3].as<std::string>();
  r.payload_json = row[4].as<std::string>();
  r.destination_type = row[5].as<std::string>();
  r.destination_config_json = row[6].as<std::string>();
  r.error = row[7].as<std::string>();
  r.attempts = row[8].as<uint32_t>();
  r.message_id = row[9].as<std::string>();
  r.subject = row[10].as<std::string>();
  r.original = pqxx::binarystring(row[11]).str();
  r.job_valid = row[12].as<bool>();
  r.failed_at_ms = row[13].as<int64_t>();
  e.created_at_ms = row[14].as<int64_t>();
  if (!row[15].is_null()) e.replayed_at_ms = row[15].as<int64_t>();
  return e;
}

void set_tenant(pqxx::work& tx, const std::optional<std::string>& tenant) {
  if (tenant) tx.exec_params("SELECT set_config('app.tenant_id', $1, true)", *tenant);
}

const char* opt(const std::optional<std::string>& s) {
  return s ? s->c_str() : nullptr;
}

}  // namespace

PostgresDlqAdmin::PostgresDlqAdmin(const std::string& url) {
  const std::string conninfo = pg::with_connection_defaults(url, 5, "route-delivery");
  secrets_ = pg::conninfo_secrets(url);
  try {
    conn_ = std::make_unique<pg::QuietConnection>(conninfo);
    pqxx::nontransaction tx(conn_->conn);
    const pqxx::result r =
        tx.exec("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user");
    bypass_rls_ = !r.empty() && r[0][0].as<bool>();
  } catch (const std::exception& e) {
    throw DlqAdminError("cannot connect to the dead-letter database: " +
                        pg::short_error(e.what(), secrets_));
  }
}

PostgresDlqAdmin::~PostgresDlqAdmin() = default;

void PostgresDlqAdmin::require_scope(const std::optional<std::string>& tenant,
                                     const char* what) const {
  if (tenant || bypass_rls_) return;
  throw DlqAdminError(std::string(what) +
                      " across tenants needs a database user that bypasses row-level security "
                      "(superuser or BYPASSRLS); pass --tenant to work on one tenant");
}

namespace {
template <typename F>
auto guarded(const std::vector<std::string>& secrets, F&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const DlqAdminError&) {
    throw;
  } catch (const pqxx::sql_error& e) {
    std::string msg = "dead-letter database: " +
                      (pg::sqlstate_of(e).empty() ? std::string() : pg::sqlstate_of(e) + " ") +
                      pg::short_error(e.what(), secrets);
    if (pg::sqlstate_of(e) == "42P01") msg += " (run `route-delivery migrate` first)";
    throw DlqAdminError(msg);
  } catch (const std::exception& e) {
    throw DlqAdminError("dead-letter database: " + pg::short_error(e.what(), secrets));
  }
}
}  // namespace

std::vector<DeadLetterEntry> PostgresDlqAdmin::list(std::optional<std::string> tenant, int limit) {
  require_scope(tenant, "listing dead letters");
  if (limit <= 0) limit = 100;
  return guarded(secrets_, [&] {
    pqxx::work tx(conn_->conn);
    set_tenant(tx, tenant);
    const pqxx::result res = tx.exec_params(
        std::string(kSelectColumns) +
            "WHERE ($1::text IS NULL OR tenant_id = $1) ORDER BY created_at DESC, id DESC "
            "LIMIT $2",
        opt(tenant), limit);
    tx.commit();
    std::vector<DeadLetterEntry> out;
    out.reserve(res.size());
    for (const auto& row : res) out.push_back(entry_from_row(row));
    return out;
  });
}

std::vector<DeadLetterEntry> PostgresDlqAdmin::select_for_replay(const DlqSelection& sel,
                                                                 bool include_replayed) {
  if (!sel.id && !sel.tenant) throw DlqAdminError("dlq replay needs --id or --tenant");
  require_scope(sel.tenant, "replaying a dead letter by id");
  std::vector<DeadLetterEntry> out = guarded(secrets_, [&] {
    const std::string id = sel.id ? std::to_string(*sel.id) : std::string();
    const std::string route = sel.route_id ? std::to_string(*sel.route_id) : std::string();
    const std::string since = sel.since_ms ? std::to_string(*sel.since_ms) : std::string();
    pqxx::work tx(conn_->conn);
    set_tenant(tx, sel.tenant);
    const pqxx::result res = tx.exec_params(
        std::string(kSelectColumns) +
            "WHERE ($1::bigint IS NULL OR id = $1) AND ($2::text IS NULL OR tenant_id = $2) "
            "AND ($3::bigint IS NULL OR route_id = $3) "
            "AND ($4::bigint IS NULL OR created_at >= to_timestamp($4 / 1000.0)) "
            "AND ($5::boolean OR $1::bigint IS NOT NULL OR replayed_at IS NULL) "
            "ORDER BY created_at, id",
        sel.id ? id.c_str() : nullptr, opt(sel.tenant), sel.route_id ? route.c_str() : nullptr,
        sel.since_ms ? since.c_str() : nullptr, include_replayed);
    tx.commit();
    std::vector<DeadLetterEntry> rows;
    rows.reserve(res.size());
    for (const auto& row : res) rows.push_back(entry_from_row(row));
    return rows;
  });
  if (sel.id) {
    if (out.empty()) {
      throw DlqAdminError("no dead letter with id " + std::to_string(*sel.id) +
                          (sel.tenant ? " for tenant " + *sel.tenant : std::string()));
    }
    if (!include_replayed && out.front().replayed_at_ms) {
      throw DlqAlreadyReplayed("dead letter " + std::to_string(*sel.id) +
                               " was already replayed; pass --force to replay it again");
    }
  }
  return out;
}

DlqReplayReport PostgresDlqAdmin::replay(const DlqSelection& selection, bool force,
                                         const DlqPublish& publish) {
  DlqReplayReport report;
  std::vector<DeadLetterEntry> candidates = select_for_replay(selection, /*include_replayed=*/true);
  for (auto& entry : candidates) {
    if (entry.replayed_at_ms && !force) {
      if (selection.id) {
        throw DlqAlreadyReplayed("dead letter " + std::to_string(entry.id) +
                                 " was already replayed; pass --force to replay it again");
      }
      report.skipped.push_back(std::move(entry));
      continue;
    }
    if (!entry.record.job_valid) {
      if (selection.id) {
        throw DlqAdminError("dead letter " + std::to_string(entry.id) + " holds an invalid job (" +
                            entry.record.error +
                            "), which would only fail again: fix it and publish it instead");
      }
      report.invalid.push_back(std::move(entry));
      continue;
    }
    const bool done = guarded(secrets_, [&] {
      pqxx::work tx(conn_->conn);
      set_tenant(tx, std::optional<std::string>(entry.record.tenant_id));
      // Lock the row so two operators replaying at once publish it once.
      const pqxx::result cur = tx.exec_params(
          "SELECT replayed_at IS NOT NULL FROM dead_letter_messages WHERE id = $1 FOR UPDATE",
          entry.id);
      if (cur.empty()) return false;                     // deleted meanwhile
      if (cur[0][0].as<bool>() && !force) return false;  // replayed meanwhile
      try {
        publish(entry);
      } catch (const std::exception& e) {
        throw DlqAdminError("replayed " + std::to_string(report.replayed.size()) +
                            " dead letter(s), then publishing dead letter " +
                            std::to_string(entry.id) + " failed: " + e.what());
      }
      const pqxx::result marked = tx.exec_params(
          "UPDATE dead_letter_messages SET replayed_at = now() WHERE id = $1 "
          "RETURNING (extract(epoch FROM replayed_at) * 1000)::bigint",
          entry.id);
      tx.commit();
      entry.replayed_at_ms = marked.at(0).at(0).as<int64_t>();
      return true;
    });
    if (done) {
      report.replayed.push_back(std::move(entry));
    } else {
      report.skipped.push_back(std::move(entry));
    }
  }
  return report;
}

}  // namespace rd
