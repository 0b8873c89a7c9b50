// The postgresql plugin's pure logic: table names, the batch INSERT, SQLSTATE classes, settings.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "batch.hpp"
#include "config.hpp"
#include "table_name.hpp"

namespace {

using rd::postgresql::parse_table_name;

TEST(PostgresqlTableName, PlainNamesAreFoldedAndQuoted) {
  EXPECT_EQ(parse_table_name("telemetry").quoted, "\"telemetry\"");
  EXPECT_EQ(parse_table_name("Device_Data2").quoted, "\"device_data2\"");
  EXPECT_EQ(parse_table_name("iot.telemetry").quoted, "\"iot\".\"telemetry\"");
  EXPECT_EQ(parse_table_name("_t$1").quoted, "\"_t$1\"");
}

TEST(PostgresqlTableName, QuotedNamesAreKeptExactly) {
  EXPECT_EQ(parse_table_name("\"Telemetry\"").quoted, "\"Telemetry\"");
  EXPECT_EQ(parse_table_name("iot.\"My Table\"").quoted, "\"iot\".\"My Table\"");
  EXPECT_EQ(parse_table_name("\"a\"\"b\"").quoted, "\"a\"\"b\"");
}

TEST(PostgresqlTableName, RefusesAnythingElse) {
  for (const std::string& bad : std::vector<std::string>{
           "", "1abc", "telemetry; DROP TABLE x", "a.b.c", "a.", ".a", "a b", "\"unterminated",
           "\"\"", "a-b", "t\"", "tele metry", std::string("a\0b", 3), std::string(64, 'a'), "a..b",
           "a.\"\"", "x)--"}) {
    const auto t = parse_table_name(bad);
    EXPECT_TRUE(t.quoted.empty()) << bad << " -> " << t.quoted;
    EXPECT_FALSE(t.error.empty()) << bad;
  }
  EXPECT_FALSE(parse_table_name(std::string(63, 'a')).quoted.empty());
}

TEST(PostgresqlBatch, InsertSqlNumbersParametersPerRow) {
  EXPECT_EQ(rd::postgresql::insert_sql("\"t\"", 1),
            "INSERT INTO \"t\" (tenant_id, topic, payload) VALUES ($1, $2, $3)");
  EXPECT_EQ(rd::postgresql::insert_sql("\"s\".\"t\"", 3),
            "INSERT INTO \"s\".\"t\" (tenant_id, topic, payload) VALUES ($1, $2, $3), "
            "($4, $5, $6), ($7, $8, $9)");
  EXPECT_NE(rd::postgresql::insert_sql("\"t\"", rd::postgresql::kMaxBatchRows).find("$3000)"),
            std::string::npos);
}

TEST(PostgresqlBatch, SqlstateClasses) {
  for (const char* s : {"08006", "08001", "40001", "40P01", "53300", "53100", "57P01", "57014"}) {
    EXPECT_EQ(rd::postgresql::classify_sqlstate(s), RD_OUTCOME_RETRY) << s;
  }
  for (const char* s : {"22P02", "22001", "23505", "23514", "23502", "42P01", "42501", "42703"}) {
    EXPECT_EQ(rd::postgresql::classify_sqlstate(s), RD_OUTCOME_PERMANENT) << s;
  }
  EXPECT_EQ(rd::postgresql::classify_sqlstate("XX000"), RD_OUTCOME_RETRY);
}

TEST(PostgresqlBatch, ConnectErrorsDeferUnlessTheServerRefusedUs) {
  // libpq 15's first lines for a connection that could not be opened.
  for (const char* unreachable :
       {"connection to server at \"127.0.0.1\", port 5999 failed: Connection refused",
        "could not translate host name \"nosuch\" to address: Name or service not known",
        "connection to server at \"10.0.0.1\", port 5432 failed: timeout expired",
        "connection to server at \"h\", port 5432 failed: FATAL:  the database system is "
        "starting up",
        "connection to server at \"h\", port 5432 failed: FATAL:  the database system is "
        "shutting down",
        "connection to server at \"h\", port 5432 failed: FATAL:  sorry, too many clients "
        "already",
        "connection to server at \"h\", port 5432 failed: FATAL:  remaining connection slots "
        "are reserved for non-replication superuser connections",
        "connection to server at \"h\", port 5432 failed: FATAL:  too many connections for "
        "role \"w\""}) {
    EXPECT_EQ(rd::postgresql::classify_connect_error(unreachable), RD_OUTCOME_DEFER) << unreachable;
  }
  for (const char* refused :
       {"connection to server at \"h\", port 5432 failed: FATAL:  password authentication "
        "failed for user \"w\"",
        "connection to server at \"h\", port 5432 failed: FATAL:  database \"missing_db\" "
        "does not exist",
        "connection to server at \"h\", port 5432 failed: FATAL:  role \"x\" does not exist",
        "connection to server at \"h\", port 5432 failed: FATAL:  no pg_hba.conf entry for "
        "host \"1.2.3.4\""}) {
    EXPECT_EQ(rd::postgresql::classify_connect_error(refused), RD_OUTCOME_RETRY) << refused;
  }
}

TEST(PostgresqlSettings, TargetNamesHostPortAndDatabaseButNoCredentials) {
  EXPECT_EQ(rd::postgresql::target_of("postgresql://u:hunter2@db.example.com:6543/iot"),
            "db.example.com:6543/iot");
  EXPECT_EQ(rd::postgresql::target_of("postgresql://u:hunter2@[::1]:5433/iot"), "[::1]:5433/iot");
  EXPECT_EQ(rd::postgresql::target_of("host=h port=7000 dbname=d user=u password=hunter2"),
            "h:7000/d");
  // Left out: libpq's defaults (port 5432, database named after the user).
  EXPECT_EQ(rd::postgresql::target_of("postgresql://writer@h"), "h:5432/writer");
}

TEST(PostgresqlSettings, DefaultsAndDatabaseUrlFallback) {
  auto s = rd::postgresql::parse_settings("{}", nullptr);
  EXPECT_FALSE(s.configured());
  EXPECT_EQ(s.pool_size, 2);
  EXPECT_EQ(s.batch_max, 100);
  s = rd::postgresql::parse_settings(R"({"url":""})", "postgresql://db/x");
  EXPECT_EQ(s.url, "postgresql://db/x");
  s = rd::postgresql::parse_settings(R"({"url":"postgresql://own/y"})", "postgresql://db/x");
  EXPECT_EQ(s.url, "postgresql://own/y");
  s = rd::postgresql::parse_settings(
      R"({"role":"pulse_app","pool_size":4,"batch_max":500,"statement_timeout":2500})", nullptr);
  EXPECT_EQ(s.role, "pulse_app");
  EXPECT_EQ(s.pool_size, 4);
  EXPECT_EQ(s.batch_max, 500);
  EXPECT_EQ(s.statement_timeout_ms, 2500);
}

TEST(PostgresqlSettings, BadValuesNameTheKeyButNeverTheUrl) {
  EXPECT_THROW(rd::postgresql::parse_settings(R"({"pool_size":0})", nullptr),
               std::invalid_argument);
  EXPECT_THROW(rd::postgresql::parse_settings(R"({"batch_max":5000})", nullptr),
               std::invalid_argument);
  EXPECT_THROW(rd::postgresql::parse_settings(R"({"role":5})", nullptr), std::invalid_argument);
  try {
    rd::postgresql::parse_settings(R"({"url":"postgresql://u:hunter2@h/db?nosuch=1"})", nullptr);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("plugins.postgresql.url"), std::string::npos);
    EXPECT_EQ(std::string(e.what()).find("hunter2"), std::string::npos);
  }
}

TEST(PostgresqlSettings, ConnectionStringAddsTheDefaultsTheUrlLeavesOut) {
  rd::postgresql::Settings s;
  s.url = "postgresql://u:p%40ss@h/db";
  EXPECT_EQ(rd::postgresql::connection_string(s),
            "postgresql://u:p%40ss@h/db?connect_timeout=5&application_name=route-delivery-"
            "postgresql&client_encoding=UTF8");
  s.url = "host=h connect_timeout=2";
  EXPECT_EQ(rd::postgresql::connection_string(s),
            "host=h connect_timeout=2 application_name=route-delivery-postgresql "
            "client_encoding=UTF8");
}

}  // namespace
