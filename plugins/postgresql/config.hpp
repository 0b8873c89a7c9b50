// plugins.postgresql settings: parsed and checked once at create time, apart from the hot path.
#pragma once

#include <cstdint>
#include <route_delivery/plugin.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace rd::postgresql {

// The declared keys (the descriptor's table): the host validates and normalises them, and
// parse_settings reads them through rd::ConfigReader.
inline constexpr rd_config_key kConfigKeys[] = {
    rd::config_key(RD_CONFIG_SECRET, "url", "", "POSTGRESQL_PLUGIN_URL",
                   "libpq URL or key=value string; empty = DATABASE_URL; neither = unavailable"),
    rd::config_key(RD_CONFIG_STRING, "role", "", "POSTGRESQL_PLUGIN_ROLE",
                   "SET LOCAL ROLE for every insert (row-level security); empty = none"),
    rd::range(rd::config_key(RD_CONFIG_INT, "pool_size", "2", "POSTGRESQL_PLUGIN_POOL_SIZE",
                             "connections, one writer thread each (1-64)"),
              1, 64),
    rd::range(rd::config_key(RD_CONFIG_INT, "batch_max", "100", nullptr,
                             "most jobs written by one multi-row INSERT (1-1000)"),
              1, 1000),
    rd::range(rd::config_key(RD_CONFIG_DURATION, "statement_timeout", "10s", nullptr,
                             "server-side limit per statement; 0 = none"),
              0, 3600000),
    rd::range(rd::config_key(RD_CONFIG_DURATION, "connect_timeout", "5s", nullptr,
                             "limit for opening a connection (whole seconds, at least 1s)"),
              1000, 600000),
};

struct Settings {
  // libpq URI or key=value string. Empty in the config = DATABASE_URL from the environment;
  // empty after that = not configured: the plugin loads but reports itself unavailable.
  std::string url;
  std::string role;     // SET LOCAL ROLE for every insert; empty = none
  int pool_size = 2;    // connections = worker threads
  int batch_max = 100;  // rows in one multi-row INSERT
  int64_t statement_timeout_ms = 10000;
  int64_t connect_timeout_ms = 5000;

  bool configured() const { return !url.empty(); }
};

// Parses the validated config object the host passes to xCreate; missing keys keep their default.
// `database_url_env` (the DATABASE_URL environment variable) is used when `url` is empty.
// Throws rd::ConfigKeyError (a std::invalid_argument) naming the key (plugins.postgresql.<key>) and
// what is wrong; the url itself is never echoed, since it may hold a password.
Settings parse_settings(std::string_view config_json, const char* database_url_env);

// `url` with connect_timeout (seconds, rounded up), application_name and client_encoding=UTF8
// added unless already set.
std::string connection_string(const Settings& settings);

// "host:port/dbname" of the database `url` points at (libpq's defaults and PG* environment
// variables filling what it leaves out), for reasons and the destination key; never credentials.
std::string target_of(const std::string& url);

}  // namespace rd::postgresql
