#include "dead_letter_postgres.hpp"

#include <optional>
#include <pqxx/pqxx>
#include <stdexcept>
#include <utility>
#include <vector>

#include "dead_letter_postgres_pool.hpp"

namespace rd {

namespace pgdl {

// ---- connection pool ------------------------------------------------------------------------

ConnectionPool::ConnectionPool(std::string conninfo, size_t size)
    : conninfo_(std::move(conninfo)), size_(size == 0 ? 1 : size) {}

ConnectionPool::~ConnectionPool() = default;

ConnectionPool::Lease ConnectionPool::acquire(std::chrono::milliseconds wait) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_for(lock, wait, [&] { return !idle_.empty() || open_ < size_; })) {
    throw DeadLetterError("no dead-letter database connection became free within " +
                          std::to_string(wait.count()) + " ms");
  }
  if (!idle_.empty()) {
    auto conn = std::move(idle_.back());
    idle_.pop_back();
    return Lease(this, std::move(conn), true);
  }
  ++open_;
  lock.unlock();
  try {
    return Lease(this, std::make_unique<pg::QuietConnection>(conninfo_), false);
  } catch (...) {
    lock.lock();
    --open_;
    cv_.notify_one();
    throw;
  }
}

void ConnectionPool::release(std::unique_ptr<pg::QuietConnection> conn, bool keep) {
  std::unique_ptr<pg::QuietConnection> drop;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (keep && conn->conn.is_open()) {
      idle_.push_back(std::move(conn));
    } else {
      drop = std::move(conn);  // closed outside the lock
      --open_;
    }
  }
  cv_.notify_one();
}

ConnectionPool::Lease::~Lease() {
  if (conn_ != nullptr) pool_->release(std::move(conn_), keep_);
}

}  // namespace pgdl

// ---- the sink -----------------------------------------------------------------------------------

namespace {

constexpr auto kAcquireWait = std::chrono::seconds(30);
constexpr size_t kMaxErrorChars = 2000;
// The tenant of check()'s probe row (rolled back, never stored).
constexpr const char* kCheckTenant = "route-delivery:write-check";

// In `tx`: the statement timeout, SET LOCAL ROLE `role` (dead_letter.postgres.role, "" = none)
// and the tenant context row-level security reads; the same for a write and the write check.
void act_as_writer(pqxx::work& tx, const std::string& role, const std::string& tenant) {
  std::string setup = "SET LOCAL statement_timeout = 30000";
  if (!role.empty()) setup += "; SET LOCAL ROLE " + tx.quote_name(role);
  tx.exec(setup);
  tx.exec_params("SELECT set_config('app.tenant_id', $1, true)", tenant);
}

// Column list shared by both INSERT forms; original_job goes last as the one binary parameter.
// A job redelivered after its dead-letter row was written (the term was lost) comes back with the
// same message_id and bytes: it gets no second row.
constexpr const char* kInsertHead =
    "INSERT INTO dead_letter_messages (tenant_id, route_id, original_topic, payload, "
    "destination_type, destination_config, error_message, attempts, message_id, subject, "
    "job_valid, failed_at, original_job) SELECT $1::text, $2::bigint, $3::text, ";
constexpr const char* kInsertTail =
    ", $7::text, $8::integer, $9::text, $10::text, $11::boolean, "
    "to_timestamp($12::bigint / 1000.0), $13::bytea "
    "WHERE $9::text = '' OR NOT EXISTS (SELECT 1 FROM dead_letter_messages "
    "WHERE message_id = $9::text AND original_job = $13::bytea) RETURNING id";
constexpr const char* kExistingId =
    "SELECT id FROM dead_letter_messages WHERE message_id = $1 AND original_job = $2 "
    "ORDER BY id LIMIT 1";

std::string insert_sql(bool json_as_text) {
  // json_as_text: the payload or config was refused as jsonb (e.g. "\u0000", which jsonb cannot
  // hold); store each as a JSON string of its text so the dead letter is not lost.
  return std::string(kInsertHead) +
         (json_as_text ? "to_jsonb($4::text), $5::text, to_jsonb($6::text)"
                       : "$4::jsonb, $5::text, $6::jsonb") +
         kInsertTail;
}

std::string truncate_chars(const std::string& utf8, size_t max_chars) {
  size_t chars = 0;
  for (size_t i = 0; i < utf8.size(); ++i) {
    if ((static_cast<unsigned char>(utf8[i]) & 0xC0) != 0x80) {
      if (chars == max_chars) return utf8.substr(0, i);
      ++chars;
    }
  }
  return utf8;
}

bool sqlstate_class(const std::string& state, const char* cls) {
  return state.rfind(cls, 0) == 0;
}

}  // namespace

PostgresDeadLetterSink::PostgresDeadLetterSink(std::string url, std::string role, size_t pool_size)
    : conninfo_(pg::with_connection_defaults(url, 5, "route-delivery")),
      secrets_(pg::conninfo_secrets(url)),
      role_(std::move(role)),
      pool_(std::make_unique<pgdl::ConnectionPool>(conninfo_, pool_size)) {
  if (role_.find('\0') != std::string::npos) {
    throw std::invalid_argument("dead_letter.postgres.role must not contain NUL");
  }
}

PostgresDeadLetterSink::~PostgresDeadLetterSink() = default;

void PostgresDeadLetterSink::write(const DeadLetterRecord& record) {
  (void)insert(record);
}

int64_t PostgresDeadLetterSink::insert(const DeadLetterRecord& r) {
  // Text parameters go through libpq as C strings: make them valid UTF-8 without NULs first.
  const std::string tenant = pg::to_valid_utf8(r.tenant_id);
  const std::string route = r.route_id ? std::to_string(*r.route_id) : std::string();
  const std::string topic = pg::to_valid_utf8(r.topic);
  const std::string payload = pg::to_valid_utf8(r.payload_json.empty() ? "null" : r.payload_json);
  const std::string dtype = pg::to_valid_utf8(r.destination_type);
  const std::string dconfig =
      pg::to_valid_utf8(r.destination_config_json.empty() ? "{}" : r.destination_config_json);
  const std::string error = truncate_chars(pg::to_valid_utf8(r.error), kMaxErrorChars);
  const std::string attempts = std::to_string(r.attempts);
  const std::string message_id = pg::to_valid_utf8(r.message_id);
  const std::string subject = pg::to_valid_utf8(r.subject);
  const std::string failed_at = std::to_string(r.failed_at_ms);
  const std::vector<const char*> params = {
      tenant.c_str(),
      r.route_id ? route.c_str() : nullptr,
      topic.c_str(),
      payload.c_str(),
      dtype.c_str(),
      dconfig.c_str(),
      error.c_str(),
      attempts.c_str(),
      message_id.c_str(),
      subject.c_str(),
      r.job_valid ? "true" : "false",
      r.failed_at_ms > 0 ? failed_at.c_str() : nullptr,
  };
  const pqxx::binarystring original(r.original.data(), r.original.size());

  bool json_as_text = false;
  bool retried_on_fresh = false;
  for (;;) {
    std::optional<pgdl::ConnectionPool::Lease> lease;
    try {
      lease.emplace(pool_->acquire(kAcquireWait));
    } catch (const std::exception& e) {
      connect_failed(e);
    }
    std::string msg;
    try {
      pqxx::connection& conn = lease->conn();
      pqxx::work tx(conn);
      act_as_writer(tx, role_, tenant);
      pqxx::result res = tx.exec_params(insert_sql(json_as_text),
                                        pqxx::prepare::make_dynamic_params(params), original);
      if (res.empty()) res = tx.exec_params(kExistingId, message_id, original);  // already stored
      tx.commit();
      lease->keep();
      set_status(true, "");
      return res.at(0).at(0).as<int64_t>();
    } catch (const pqxx::sql_error& e) {
      const std::string state = pg::sqlstate_of(e);
      const bool conn_lost = sqlstate_class(state, "08") || sqlstate_class(state, "57");
      if (!conn_lost) lease->keep();
      if (sqlstate_class(state, "22") && !json_as_text) {
        json_as_text = true;
        continue;
      }
      if (conn_lost && lease->reused() && !retried_on_fresh) {
        retried_on_fresh = true;
        continue;
      }
      msg = "dead-letter insert failed: " + (state.empty() ? std::string() : state + " ") +
            pg::short_error(e.what(), secrets_);
    } catch (const pqxx::in_doubt_error& e) {
      // The row may or may not be there; the caller's nak leads to a retry (at-least-once).
      msg = "dead-letter commit outcome unknown: " + pg::short_error(e.what(), secrets_);
    } catch (const pqxx::broken_connection& e) {
      if (lease->reused() && !retried_on_fresh) {
        retried_on_fresh = true;  // a pooled connection that died while idle, e.g. after a restart
        continue;
      }
      msg = "dead-letter database connection lost: " + pg::short_error(e.what(), secrets_);
    } catch (const std::exception& e) {
      msg = "dead-letter insert failed: " + pg::short_error(e.what(), secrets_);
    }
    set_status(false, msg);
    throw DeadLetterError(msg);
  }
}

bool PostgresDeadLetterSink::healthy(std::string& detail) const {
  const bool ok = ok_.load();
  std::lock_guard<std::mutex> lock(status_mu_);
  detail = ok ? "postgres" : "postgres: " + status_detail_;
  return ok;
}

void PostgresDeadLetterSink::set_status(bool ok, const std::string& detail) {
  if (ok && ok_.load()) return;  // the common case: no lock
  std::lock_guard<std::mutex> lock(status_mu_);
  status_detail_ = detail;
  ok_.store(ok);
}

namespace {

// The text between the quotes after `prefix` in `message`, e.g. the role of
// `permission denied to set role "pulse_app"`; "" when absent.
std::string quoted_after(const std::string& message, const std::string& prefix) {
  const auto at = message.find(prefix + " \"");
  if (at == std::string::npos) return "";
  const auto start = at + prefix.size() + 2;
  const auto end = message.find('"', start);
  return end == std::string::npos ? "" : message.substr(start, end - start);
}

}  // namespace

std::string PostgresDeadLetterSink::explain(const std::string& state, const std::string& message,
                                            const std::string& user) const {
  const std::string who = user.empty() ? "<user>" : user;
  std::string hint;
  if (const std::string role = quoted_after(message, "permission denied to set role");
      !role.empty()) {
    hint = "the user " + who + " may not SET ROLE " + role + ": run GRANT " + role + " TO " + who +
           " (as a superuser or the role's admin), or set dead_letter.postgres.role to \"\" to "
           "write as " +
           who;
  } else if (const std::string u = quoted_after(message, "password authentication failed for user");
             !u.empty()) {
    hint = "the password for user " + u +
           " is wrong: check DATABASE_URL or PG_PASS (or DATABASE_URL_FILE / PG_PASS_FILE)";
  } else if (const std::string r = quoted_after(message, "role");
             !r.empty() && message.find("does not exist") != std::string::npos) {
    hint = r == role_
               ? "create the role " + r +
                     " (route-delivery migrate does, given CREATEROLE) or set "
                     "dead_letter.postgres.role to a role that exists"
               : "there is no database user " + r + ": check the user in DATABASE_URL or PG_USER";
  } else if (state == "42P01" || message.find("does not exist") != std::string::npos) {
    hint =
        "the dead-letter table is missing: set dead_letter.postgres.migrate: true or run "
        "route-delivery migrate";
  } else if (message.find("must be owner of") != std::string::npos) {
    hint =
        "run route-delivery migrate as the table's owner, or set dead_letter.postgres.migrate: "
        "false once the schema is applied";
  } else if (message.find("permission denied to create role") != std::string::npos) {
    hint = "the migrating user needs CREATEROLE, or create the role " + role_ +
           " NOLOGIN and GRANT it to " + who + " beforehand";
  } else if (state == "42501") {
    hint = "GRANT SELECT, INSERT ON dead_letter_messages TO " + (role_.empty() ? who : role_) +
           " (route-delivery migrate, run as the table's owner, does this)";
  }
  const std::string text = (state.empty() ? std::string() : state + " ") + message;
  return hint.empty() ? text : text + " (" + hint + ")";
}

void PostgresDeadLetterSink::connect_failed(const std::exception& e) {
  if (dynamic_cast<const DeadLetterError*>(&e) != nullptr) {
    set_status(false, e.what());
    throw;  // the exception being handled: the pool's own words
  }
  const std::string msg = "cannot connect to the dead-letter database: " +
                          explain("", pg::short_error(e.what(), secrets_), "");
  set_status(false, msg);
  throw DeadLetterError(msg);
}

void PostgresDeadLetterSink::check() {
  std::optional<pgdl::ConnectionPool::Lease> lease;
  try {
    lease.emplace(pool_->acquire(kAcquireWait));
  } catch (const std::exception& e) {
    connect_failed(e);
  }
  std::string msg;
  try {
    pqxx::connection& conn = lease->conn();
    const char* user = conn.username();
    const std::string who = user != nullptr ? user : "";
    try {
      pqxx::work tx(conn);
      act_as_writer(tx, role_, kCheckTenant);
      // The privileges a real write uses (INSERT, the duplicate check's SELECT, the id
      // sequence), under the same row-level-security policy; then nothing is kept.
      tx.exec_params(
          "INSERT INTO dead_letter_messages (tenant_id, error_message, message_id, original_job) "
          "SELECT $1::text, 'route-delivery write check (rolled back)', '', ''::bytea "
          "WHERE NOT EXISTS (SELECT 1 FROM dead_letter_messages WHERE message_id = '' AND "
          "original_job = ''::bytea AND tenant_id = $1::text) RETURNING id",
          kCheckTenant);
      tx.abort();
      lease->keep();
      set_status(true, "");
      return;
    } catch (const pqxx::sql_error& e) {
      const std::string state = pg::sqlstate_of(e);
      if (!sqlstate_class(state, "08") && !sqlstate_class(state, "57")) lease->keep();
      msg = "dead-letter write check failed: " +
            explain(state, pg::short_error(e.what(), secrets_), who);
    }
  } catch (const DeadLetterError&) {
    throw;
  } catch (const std::exception& e) {
    msg = "dead-letter write check failed: " + pg::short_error(e.what(), secrets_);
  }
  set_status(false, msg);
  throw DeadLetterError(msg);
}

void PostgresDeadLetterSink::migrate() {
  std::string msg;
  try {
    pg::QuietConnection c(conninfo_);
    const char* user = c.conn.username();
    try {
      pqxx::nontransaction tx(c.conn);
      // The file reads the application role from this setting (see its header comment).
      tx.exec_params("SELECT set_config('route_delivery.app_role', $1, false)", role_);
      tx.exec(std::string(dead_letter_schema_sql()));
      return;
    } catch (const pqxx::sql_error& e) {
      msg = "dead-letter schema migration failed: " + explain(pg::sqlstate_of(e),
                                                              pg::short_error(e.what(), secrets_),
                                                              user != nullptr ? user : "");
    }
  } catch (const std::exception& e) {
    msg = "dead-letter schema migration failed: " +
          explain("", pg::short_error(e.what(), secrets_), "");
  }
  set_status(false, msg);
  throw DeadLetterError(msg);
}

}  // namespace rd
