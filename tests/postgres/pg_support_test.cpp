// The PostgreSQL helpers the dead-letter sink and the postgresql plugin share (libs/pg_support):
// no server needed.
#include "pg_support.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace {

TEST(PgConninfo, AddsTimeoutsNameAndEncodingToUris) {
  EXPECT_EQ(
      rd::pg::with_connection_defaults("postgresql://iot:pw@db:5432/iotcloud", 5, "route-delivery"),
      "postgresql://iot:pw@db:5432/iotcloud?connect_timeout=5&application_name=route-delivery"
      "&client_encoding=UTF8");
  EXPECT_EQ(rd::pg::with_connection_defaults("postgres://db/x?sslmode=require&connect_timeout=2", 5,
                                             "route-delivery"),
            "postgres://db/x?sslmode=require&connect_timeout=2&application_name=route-delivery"
            "&client_encoding=UTF8");
}

TEST(PgConninfo, AddsTimeoutsToKeywordForm) {
  EXPECT_EQ(rd::pg::with_connection_defaults("host=db dbname=iotcloud application_name=me", 5,
                                             "route-delivery"),
            "host=db dbname=iotcloud application_name=me connect_timeout=5 client_encoding=UTF8");
}

TEST(PgConninfo, FindsPasswordsToScrub) {
  using V = std::vector<std::string>;
  EXPECT_EQ(rd::pg::conninfo_secrets("postgresql://u:hunter2@h/db"), V{"hunter2"});
  EXPECT_EQ(rd::pg::conninfo_secrets("postgresql://u:p%40ss@h:5432/db"), (V{"p@ss", "p%40ss"}));
  EXPECT_EQ(rd::pg::conninfo_secrets("postgresql://u@h/db?password=qp&sslmode=disable"), V{"qp"});
  EXPECT_EQ(rd::pg::conninfo_secrets("host=h password='p w' user=u"), V{"p w"});
  EXPECT_EQ(rd::pg::conninfo_secrets("host=h password = pw2"), V{"pw2"});
  EXPECT_TRUE(rd::pg::conninfo_secrets("postgresql://u@h/db").empty());
}

TEST(PgErrors, ShortErrorKeepsFirstLineAndMasksSecret) {
  EXPECT_EQ(rd::pg::short_error("ERROR:  invalid input syntax for type json\nDETAIL:  Token "
                                "\"whsec_x\" is invalid.\nCONTEXT:  JSON data, line 1: {...\n",
                                {}),
            "invalid input syntax for type json");
  EXPECT_EQ(rd::pg::short_error("FATAL:  password hunter2 rejected", {"hunter2"}),
            "password *** rejected");
}

TEST(PgErrors, SqlstateFilledInWhereLibpqxxLeavesItOut) {
  // What classify_sqlstate (plugin) and the sink's messages see for errors libpqxx 6.4 reports
  // without a SQLSTATE: permission denied must read as 42501 (permanent), not as unknown (retry).
  EXPECT_EQ(rd::pg::sqlstate_of(pqxx::insufficient_privilege("permission denied for table t")),
            "42501");
  EXPECT_EQ(rd::pg::sqlstate_of(pqxx::undefined_table("relation \"t\" does not exist")), "42P01");
  EXPECT_EQ(rd::pg::sqlstate_of(pqxx::sql_error("boom", "SELECT 1", "57P01")), "57P01");
  EXPECT_EQ(rd::pg::sqlstate_of(pqxx::sql_error("boom")), "");
  EXPECT_EQ(rd::pg::rollback_sqlstate(pqxx::deadlock_detected("deadlock detected")), "40P01");
  EXPECT_EQ(rd::pg::rollback_sqlstate(pqxx::serialization_failure("could not serialize")), "40001");
}

TEST(PgText, ToValidUtf8ReplacesBadBytesAndNul) {
  EXPECT_EQ(rd::pg::to_valid_utf8("plain ascii"), "plain ascii");
  EXPECT_EQ(rd::pg::to_valid_utf8("gr\xC3\xBC\xC3\x9F \xE2\x82\xAC \xF0\x9F\x98\x80"),
            "gr\xC3\xBC\xC3\x9F \xE2\x82\xAC \xF0\x9F\x98\x80");
  EXPECT_EQ(rd::pg::to_valid_utf8(std::string("a\0b", 3)),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(rd::pg::to_valid_utf8("\xff"), "\xEF\xBF\xBD");
  EXPECT_EQ(rd::pg::to_valid_utf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong '/'
  EXPECT_EQ(rd::pg::to_valid_utf8("\xED\xA0\x80"),
            "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");                             // surrogate
  EXPECT_EQ(rd::pg::to_valid_utf8("ab\xE2\x82"), "ab\xEF\xBF\xBD\xEF\xBF\xBD");  // truncated
}

}  // namespace
