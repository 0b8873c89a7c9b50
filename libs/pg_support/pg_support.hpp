// PostgreSQL helpers shared by the host's dead-letter sink and admin
// (core/src/dead_letter_postgres*, dlq_admin_postgres*) and the postgresql destination plugin
// (plugins/postgresql): connection strings, secrets to keep out of messages, error text and
// SQLSTATEs. An internal static library (rd_pg_support): it depends on libpqxx only, never on the
// host, so a plugin that links it still links nothing of the daemon.
#pragma once

#include <pqxx/pqxx>
#include <string>
#include <string_view>
#include <vector>

namespace rd::pg {

// A libpqxx connection that prints no notices (they would otherwise go to stderr). Connects at
// once; throws pqxx::broken_connection when the database cannot be reached.
struct QuietConnection {
  explicit QuietConnection(const std::string& conninfo) : conn(conninfo), quiet(conn) {}
  pqxx::connection conn;
  pqxx::quiet_errorhandler quiet;
};

// A libpq connection string (URI or key=value) with connect_timeout, application_name and
// client_encoding=UTF8 added unless already set. Not validated here: libpq does that when
// connecting, and its message goes through short_error.
std::string with_connection_defaults(const std::string& url, int connect_timeout_s,
                                     std::string_view application_name);

// The password(s) inside a connection string (decoded and as written), so messages can be
// scrubbed of them.
std::vector<std::string> conninfo_secrets(const std::string& url);

// First line of a libpq/libpqxx error without the "ERROR:  " prefix, with `secrets` masked and
// made valid UTF-8. Later lines (DETAIL, CONTEXT) can quote the rejected data, e.g. a tenant's
// payload or destination_config.
std::string short_error(const std::string& what, const std::vector<std::string>& secrets);

// Replaces invalid UTF-8 and NUL bytes with U+FFFD: PostgreSQL rejects the former in text and
// libpq would silently cut a parameter at the latter.
std::string to_valid_utf8(std::string_view text);

// The error's SQLSTATE. libpqxx 6.4 leaves it empty for some errors it maps to its own exception
// classes (insufficient_privilege): filled in from the class; "" when unknown.
std::string sqlstate_of(const pqxx::sql_error& e);

// The SQLSTATE of a rollback libpqxx reports without one (serialization failure 40001, deadlock
// 40P01, statement completion unknown 40003; 40000 otherwise).
std::string rollback_sqlstate(const pqxx::transaction_rollback& e);

}  // namespace rd::pg
