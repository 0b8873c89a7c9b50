// Pure logic of the PostgreSQL dead-letter code: no server needed.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "dead_letter_postgres.hpp"

namespace {

TEST(PgConninfo, AddsTimeoutsNameAndEncodingToUris) {
  EXPECT_EQ(rd::pgdl::normalize_conninfo("postgresql://iot:pw@db:5432/iotcloud"),
            "postgresql://iot:pw@db:5432/iotcloud?connect_timeout=5&application_name=route-delivery"
            "&client_encoding=UTF8");
  EXPECT_EQ(rd::pgdl::normalize_conninfo("postgres://db/x?sslmode=require&connect_timeout=2"),
            "postgres://db/x?sslmode=require&connect_timeout=2&application_name=route-delivery"
            "&client_encoding=UTF8");
}

TEST(PgConninfo, AddsTimeoutsToKeywordForm) {
  EXPECT_EQ(rd::pgdl::normalize_conninfo("host=db dbname=iotcloud application_name=me"),
            "host=db dbname=iotcloud application_name=me connect_timeout=5 client_encoding=UTF8");
}

TEST(PgConninfo, FindsPasswordsToScrub) {
  using V = std::vector<std::string>;
  EXPECT_EQ(rd::pgdl::conninfo_secrets("postgresql://u:hunter2@h/db"), V{"hunter2"});
  EXPECT_EQ(rd::pgdl::conninfo_secrets("postgresql://u:p%40ss@h:5432/db"), (V{"p@ss", "p%40ss"}));
  EXPECT_EQ(rd::pgdl::conninfo_secrets("postgresql://u@h/db?password=qp&sslmode=disable"), V{"qp"});
  EXPECT_EQ(rd::pgdl::conninfo_secrets("host=h password='p w' user=u"), V{"p w"});
  EXPECT_EQ(rd::pgdl::conninfo_secrets("host=h password = pw2"), V{"pw2"});
  EXPECT_TRUE(rd::pgdl::conninfo_secrets("postgresql://u@h/db").empty());
}

TEST(PgErrors, ShortErrorKeepsFirstLineAndMasksSecret) {
  EXPECT_EQ(rd::pgdl::short_error("ERROR:  invalid input syntax for type json\nDETAIL:  Token "
                                  "\"whsec_x\" is invalid.\nCONTEXT:  JSON data, line 1: {...\n",
                                  {}),
            "invalid input syntax for type json");
  EXPECT_EQ(rd::pgdl::short_error("FATAL:  password hunter2 rejected", {"hunter2"}),
            "password *** rejected");
}

TEST(PgText, ToValidUtf8ReplacesBadBytesAndNul) {
  EXPECT_EQ(rd::pgdl::to_valid_utf8("plain ascii"), "plain ascii");
  EXPECT_EQ(rd::pgdl::to_valid_utf8("gr\xC3\xBC\xC3\x9F \xE2\x82\xAC \xF0\x9F\x98\x80"),
            "gr\xC3\xBC\xC3\x9F \xE2\x82\xAC \xF0\x9F\x98\x80");
  EXPECT_EQ(rd::pgdl::to_valid_utf8(std::string("a\0b", 3)),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(rd::pgdl::to_valid_utf8("\xff"), "\xEF\xBF\xBD");
  EXPECT_EQ(rd::pgdl::to_valid_utf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong '/'
  EXPECT_EQ(rd::pgdl::to_valid_utf8("\xED\xA0\x80"),
            "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");                               // surrogate
  EXPECT_EQ(rd::pgdl::to_valid_utf8("ab\xE2\x82"), "ab\xEF\xBF\xBD\xEF\xBF\xBD");  // truncated
}

}  // namespace
