#include "dead_letter_postgres.hpp"

#include <cctype>
#include <optional>
#include <pqxx/pqxx>
#include <stdexcept>
#include <utility>
#include <vector>

#include "dead_letter_postgres_pool.hpp"

namespace rd {

namespace pgdl {

namespace {

bool is_uri(const std::string& url) {
  return url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0;
}

bool is_space(char c) {
  return std::isspace(static_cast<unsigned char>(c)) != 0;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// The (key, raw value) pairs of a URI's query string.
std::vector<std::pair<std::string, std::string>> uri_query(const std::string& url) {
  std::vector<std::pair<std::string, std::string>> out;
  const size_t q = url.find('?');
  if (q == std::string::npos) return out;
  for (size_t pos = q + 1; pos <= url.size();) {
    size_t amp = url.find('&', pos);
    if (amp == std::string::npos) amp = url.size();
    const std::string param = url.substr(pos, amp - pos);
    const size_t eq = param.find('=');
    if (eq != std::string::npos) out.emplace_back(param.substr(0, eq), param.substr(eq + 1));
    pos = amp + 1;
  }
  return out;
}

// The (key, unquoted value) pairs of a libpq key=value string.
std::vector<std::pair<std::string, std::string>> keyword_pairs(const std::string& s) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t i = 0;
  while (true) {
    while (i < s.size() && is_space(s[i])) ++i;
    if (i >= s.size()) break;
    const size_t k0 = i;
    while (i < s.size() && s[i] != '=' && !is_space(s[i])) ++i;
    std::string key = s.substr(k0, i - k0);
    while (i < s.size() && is_space(s[i])) ++i;
    if (i >= s.size() || s[i] != '=') break;  // malformed: libpq will say so when connecting
    ++i;
    while (i < s.size() && is_space(s[i])) ++i;
    std::string value;
    const bool quoted = i < s.size() && s[i] == '\'';
    if (quoted) ++i;
    for (; i < s.size() && (quoted ? s[i] != '\'' : !is_space(s[i])); ++i) {
      if (s[i] == '\\' && i + 1 < s.size()) ++i;
      value += s[i];
    }
    if (quoted && i < s.size()) ++i;
    out.emplace_back(std::move(key), std::move(value));
  }
  return out;
}

}  // namespace

std::string normalize_conninfo(const std::string& url, int connect_timeout_s) {
  const bool uri = is_uri(url);
  const auto present = uri ? uri_query(url) : keyword_pairs(url);
  const std::pair<const char*, std::string> defaults[] = {
      {"connect_timeout", std::to_string(connect_timeout_s)},
      {"application_name", "route-delivery"},
      {"client_encoding", "UTF8"},
  };
  std::string out = url;
  for (const auto& [key, value] : defaults) {
    bool set = false;
    for (const auto& kv : present) set = set || kv.first == key;
    if (set) continue;
    if (uri) {
      out += (out.find('?') == std::string::npos) ? '?' : '&';
    } else if (!out.empty()) {
      out += ' ';
    }
    out += std::string(key) + "=" + value;
  }
  return out;
}

std::vector<std::string> conninfo_secrets(const std::string& url) {
  std::vector<std::string> out;
  auto add = [&](const std::string& raw, bool encoded) {
    if (raw.empty()) return;
    out.push_back(encoded ? percent_decode(raw) : raw);
    if (encoded && out.back() != raw) out.push_back(raw);
  };
  if (is_uri(url)) {
    const size_t start = url.find("://") + 3;
    const size_t end = url.find_first_of("/?", start);
    const std::string authority =
        url.substr(start, end == std::string::npos ? std::string::npos : end - start);
    const size_t at = authority.rfind('@');
    const size_t colon = authority.find(':');
    if (at != std::string::npos && colon < at)
      add(authority.substr(colon + 1, at - colon - 1), true);
    for (const auto& [key, value] : uri_query(url)) {
      if (key == "password") add(value, true);
    }
  } else {
    for (const auto& [key, value] : keyword_pairs(url)) {
      if (key == "password") add(value, false);
    }
  }
  return out;
}

std::string short_error(const std::string& what, const std::vector<std::string>& secrets) {
  std::string line = what.substr(0, what.find('\n'));
  for (const char* prefix : {"ERROR:  ", "FATAL:  "}) {
    if (line.rfind(prefix, 0) == 0) line.erase(0, std::string_view(prefix).size());
  }
  while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.pop_back();
  for (const std::string& secret : secrets) {
    if (secret.empty()) continue;
    for (size_t pos = line.find(secret); pos != std::string::npos; pos = line.find(secret, pos)) {
      line.replace(pos, secret.size(), "***");
      pos += 3;
    }
  }
  return to_valid_utf8(line);
}

std::string to_valid_utf8(std::string_view s) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len = 0;
    uint32_t cp = 0;
    if (c == 0) {
      len = 0;
    } else if (c < 0x80) {
      len = 1;
      cp = c;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    }
    bool ok = len > 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) ok = false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Reject overlong forms, surrogates and values beyond U+10FFFF.
    if (ok && ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
               (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)) {
      ok = false;
    }
    if (ok) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out.append(kReplacement);
      i += 1;
    }
  }
  return out;
}

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
    return Lease(this, std::make_unique<PooledConnection>(conninfo_), false);
  } catch (...) {
    lock.lock();
    --open_;
    cv_.notify_one();
    throw;
  }
}

void ConnectionPool::release(std::unique_ptr<PooledConnection> conn, bool keep) {
  std::unique_ptr<PooledConnection> drop;
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
    : conninfo_(pgdl::normalize_conninfo(url)),
      secrets_(pgdl::conninfo_secrets(url)),
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
  const std::string tenant = pgdl::to_valid_utf8(r.tenant_id);
  const std::string route = r.route_id ? std::to_string(*r.route_id) : std::string();
  const std::string topic = pgdl::to_valid_utf8(r.topic);
  const std::string payload = pgdl::to_valid_utf8(r.payload_json.empty() ? "null" : r.payload_json);
  const std::string dtype = pgdl::to_valid_utf8(r.destination_type);
  const std::string dconfig =
      pgdl::to_valid_utf8(r.destination_config_json.empty() ? "{}" : r.destination_config_json);
  const std::string error = truncate_chars(pgdl::to_valid_utf8(r.error), kMaxErrorChars);
  const std::string attempts = std::to_string(r.attempts);
  const std::string message_id = pgdl::to_valid_utf8(r.message_id);
  const std::string subject = pgdl::to_valid_utf8(r.subject);
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
    } catch (const DeadLetterError& e) {
      set_status(false, e.what());
      throw;
    } catch (const std::exception& e) {
      const std::string msg =
          "cannot connect to the dead-letter database: " + pgdl::short_error(e.what(), secrets_);
      set_status(false, msg);
      throw DeadLetterError(msg);
    }
    std::string msg;
    try {
      pqxx::connection& conn = lease->conn();
      pqxx::work tx(conn);
      std::string setup = "SET LOCAL statement_timeout = 30000";
      if (!role_.empty()) setup += "; SET LOCAL ROLE " + tx.quote_name(role_);
      tx.exec(setup);
      tx.exec_params("SELECT set_config('app.tenant_id', $1, true)", tenant);
      pqxx::result res = tx.exec_params(insert_sql(json_as_text),
                                        pqxx::prepare::make_dynamic_params(params), original);
      if (res.empty()) res = tx.exec_params(kExistingId, message_id, original);  // already stored
      tx.commit();
      lease->keep();
      set_status(true, "");
      return res.at(0).at(0).as<int64_t>();
    } catch (const pqxx::sql_error& e) {
      const std::string state = pgdl::sqlstate_of(e);
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
            pgdl::short_error(e.what(), secrets_);
    } catch (const pqxx::in_doubt_error& e) {
      // The row may or may not be there; the caller's nak leads to a retry (at-least-once).
      msg = "dead-letter commit outcome unknown: " + pgdl::short_error(e.what(), secrets_);
    } catch (const pqxx::broken_connection& e) {
      if (lease->reused() && !retried_on_fresh) {
        retried_on_fresh = true;  // a pooled connection that died while idle, e.g. after a restart
        continue;
      }
      msg = "dead-letter database connection lost: " + pgdl::short_error(e.what(), secrets_);
    } catch (const std::exception& e) {
      msg = "dead-letter insert failed: " + pgdl::short_error(e.what(), secrets_);
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

void PostgresDeadLetterSink::migrate() {
  try {
    pgdl::PooledConnection c(conninfo_);
    pqxx::nontransaction tx(c.conn);
    // The file reads the application role from this setting (see its header comment).
    tx.exec_params("SELECT set_config('route_delivery.app_role', $1, false)", role_);
    tx.exec(std::string(dead_letter_schema_sql()));
  } catch (const pqxx::sql_error& e) {
    throw DeadLetterError(
        "dead-letter schema migration failed: " +
        (pgdl::sqlstate_of(e).empty() ? std::string() : pgdl::sqlstate_of(e) + " ") +
        pgdl::short_error(e.what(), secrets_));
  } catch (const std::exception& e) {
    throw DeadLetterError("dead-letter schema migration failed: " +
                          pgdl::short_error(e.what(), secrets_));
  }
}

}  // namespace rd
