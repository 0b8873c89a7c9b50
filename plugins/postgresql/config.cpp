#include "config.hpp"

#include <libpq-fe.h>

#include <string>

#include "pg_support.hpp"

namespace rd::postgresql {

namespace {

// libpq's own parse of a connection string; `opts` is null when it is not one.
struct ParsedConninfo {
  explicit ParsedConninfo(const std::string& url) {
    char* err = nullptr;
    opts = PQconninfoParse(url.c_str(), &err);
    if (err != nullptr) PQfreemem(err);  // may quote the string, password included
  }
  ~ParsedConninfo() {
    if (opts != nullptr) PQconninfoFree(opts);
  }
  ParsedConninfo(const ParsedConninfo&) = delete;
  ParsedConninfo& operator=(const ParsedConninfo&) = delete;
  const char* get(std::string_view key) const {
    for (const PQconninfoOption* o = opts; o != nullptr && o->keyword != nullptr; ++o) {
      if (key == o->keyword) return o->val;
    }
    return nullptr;
  }
  PQconninfoOption* opts = nullptr;
};

}  // namespace

Settings parse_settings(std::string_view config_json, const char* database_url_env) {
  const rd::ConfigReader config(config_json, "postgresql", kConfigKeys);
  Settings s;
  s.url = config.string("url", s.url);
  if (s.url.empty() && database_url_env != nullptr) s.url = database_url_env;
  s.role = config.string("role", s.role);
  s.pool_size = static_cast<int>(config.integer("pool_size", s.pool_size, 1, 64));
  s.batch_max = static_cast<int>(config.integer("batch_max", s.batch_max, 1, 1000));
  s.statement_timeout_ms =
      config.duration_ms("statement_timeout", s.statement_timeout_ms, 0, 3600000);
  s.connect_timeout_ms = config.duration_ms("connect_timeout", s.connect_timeout_ms, 1000, 600000);
  if (s.role.find('\0') != std::string::npos) config.fail("role", "must not contain a NUL byte");
  if (s.configured() && ParsedConninfo(s.url).opts == nullptr) {
    config.fail(
        "url",
        "not a valid PostgreSQL connection string (postgresql://user:password@host:port/db or "
        "key=value pairs; it came from the config, POSTGRESQL_PLUGIN_URL or DATABASE_URL)");
  }
  return s;
}

std::string connection_string(const Settings& settings) {
  return pg::with_connection_defaults(settings.url,
                                      static_cast<int>((settings.connect_timeout_ms + 999) / 1000),
                                      "route-delivery-postgresql");
}

std::string target_of(const std::string& url) {
  const ParsedConninfo parsed(url);
  // libpq's defaults, with PGHOST, PGPORT, PGDATABASE and PGUSER applied.
  PQconninfoOption* defaults = PQconndefaults();
  const auto value = [&](std::string_view key) -> std::string {
    const char* v = parsed.get(key);
    if (v != nullptr && *v != '\0') return v;
    for (const PQconninfoOption* o = defaults; o != nullptr && o->keyword != nullptr; ++o) {
      if (key == o->keyword && o->val != nullptr) return o->val;
    }
    return {};
  };
  std::string host = value("host");
  if (host.empty()) host = value("hostaddr");
  if (host.empty()) host = "localhost";
  std::string port = value("port");
  if (port.empty()) port = "5432";
  std::string db = value("dbname");
  if (db.empty()) db = value("user");  // libpq's own default database name
  if (defaults != nullptr) PQconninfoFree(defaults);
  if (host.find(':') != std::string::npos && host.front() != '[') host = "[" + host + "]";
  return host + ":" + port + "/" + db;
}

}  // namespace rd::postgresql
