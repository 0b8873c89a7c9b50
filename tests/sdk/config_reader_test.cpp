// rd::ConfigReader: reading the object the host passes to xCreate, by declared key and type.
#include <gtest/gtest.h>

#include <route_delivery/plugin.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

const rd_config_key kKeys[] = {
    rd::config_key(RD_CONFIG_STRING, "host", "", "X_HOST", "host"),
    rd::config_key(RD_CONFIG_SECRET, "password", "", nullptr, "password"),
    rd::config_key(RD_CONFIG_INT, "port", "1883", nullptr, "port"),
    rd::config_key(RD_CONFIG_BOOL, "tls", "false", nullptr, "tls"),
    rd::config_key(RD_CONFIG_DURATION, "timeout", "10s", nullptr, "timeout"),
    rd::config_key(RD_CONFIG_LIST, "networks", "", nullptr, "networks"),
};

rd::ConfigReader config(const char* json) {
  return rd::ConfigReader(json, "demo", kKeys);
}

// The message of the ConfigKeyError that `read` throws, or "<no error>".
template <typename Read>
std::string error_of(const char* json, Read read) {
  try {
    read(config(json));
  } catch (const rd::ConfigKeyError& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(SdkConfig, ReadsEveryTypeAsTheHostNormalisesIt) {
  // What the host's resolve_plugin_config produces: every key, durations in ms, lists as arrays.
  const rd::ConfigReader c =
      config(R"({"host":"mqtt.example.com","password":"p\"w\u00e9","port":8883,"tls":true,)"
             R"("timeout":2500,"networks":["10.0.0.0/8","fd00::/8"]})");
  EXPECT_EQ(c.string("host"), "mqtt.example.com");
  EXPECT_EQ(c.string("password"), "p\"w\xC3\xA9");  // a SECRET reads as a string
  EXPECT_EQ(c.integer("port", 1883, 1, 65535), 8883);
  EXPECT_TRUE(c.boolean("tls", false));
  EXPECT_EQ(c.duration_ms("timeout", 10000, 1), 2500);
  EXPECT_EQ(c.list("networks"), (std::vector<std::string>{"10.0.0.0/8", "fd00::/8"}));
}

TEST(SdkConfig, AbsentOrNullKeysGiveTheFallback) {
  for (const char* json : {"{}", R"({"host":null,"port":null,"tls":null,"timeout":null})"}) {
    const rd::ConfigReader c = config(json);
    EXPECT_EQ(c.string("host", "default.example"), "default.example") << json;
    EXPECT_EQ(c.integer("port", 1883), 1883) << json;
    EXPECT_FALSE(c.boolean("tls", false)) << json;
    EXPECT_EQ(c.duration_ms("timeout", 10000), 10000) << json;
    EXPECT_TRUE(c.list("networks").empty()) << json;
  }
  EXPECT_EQ(rd::ConfigReader(static_cast<const char*>(nullptr), "demo", kKeys).integer("port", 7),
            7);
}

TEST(SdkConfig, WrongKindsNameTheKeyAndWhatWasFound) {
  EXPECT_EQ(error_of(R"({"port":"1883"})", [](const rd::ConfigReader& c) { c.integer("port", 0); }),
            "plugins.demo.port: must be an integer, got a string");
  EXPECT_EQ(error_of(R"({"port":1.5})", [](const rd::ConfigReader& c) { c.integer("port", 0); }),
            "plugins.demo.port: must be an integer, got a number with a fraction or exponent");
  EXPECT_EQ(error_of(R"({"tls":1})", [](const rd::ConfigReader& c) { c.boolean("tls", false); }),
            "plugins.demo.tls: must be true or false, got the number 1");
  EXPECT_EQ(error_of(R"({"timeout":"10s"})",
                     [](const rd::ConfigReader& c) { c.duration_ms("timeout", 0); }),
            "plugins.demo.timeout: must be a duration in integer milliseconds, got a string");
  EXPECT_EQ(
      error_of(R"({"networks":["a",1]})", [](const rd::ConfigReader& c) { c.list("networks"); }),
      "plugins.demo.networks: must be a list of strings, got a list with an entry that is "
      "not a string");
  EXPECT_EQ(error_of(R"({"host":{"a":1}})", [](const rd::ConfigReader& c) { c.string("host"); }),
            "plugins.demo.host: must be a string, got an object");
}

TEST(SdkConfig, RangesAreCheckedWithTheirUnit) {
  EXPECT_EQ(
      error_of(R"({"port":0})", [](const rd::ConfigReader& c) { c.integer("port", 1, 1, 65535); }),
      "plugins.demo.port: must be between 1 and 65535, got 0");
  EXPECT_EQ(error_of(R"({"timeout":50})",
                     [](const rd::ConfigReader& c) { c.duration_ms("timeout", 1000, 100, 60000); }),
            "plugins.demo.timeout: must be between 100ms and 60000ms, got 50ms");
  EXPECT_EQ(error_of(R"({"timeout":0})",
                     [](const rd::ConfigReader& c) { c.duration_ms("timeout", 1, 1); }),
            "plugins.demo.timeout: must be at least 1ms, got 0ms");
  EXPECT_EQ(error_of(R"({"port":-9223372036854775808})",
                     [](const rd::ConfigReader& c) { EXPECT_EQ(c.integer("port", 0), INT64_MIN); }),
            "<no error>");
  EXPECT_NE(error_of(R"({"port":9223372036854775808})",
                     [](const rd::ConfigReader& c) { c.integer("port", 0); })
                .find("out of the 64-bit range"),
            std::string::npos);
}

TEST(SdkConfig, StringValuesAreNeverQuotedInErrors) {
  const std::string e = error_of(R"({"password":["hunter2"]})",
                                 [](const rd::ConfigReader& c) { c.string("password"); });
  EXPECT_NE(e.find("plugins.demo.password"), std::string::npos);
  EXPECT_EQ(e.find("hunter2"), std::string::npos);
}

TEST(SdkConfig, PluginChecksUseTheSameMessageForm) {
  const rd::ConfigReader c = config("{}");
  EXPECT_EQ(c.name("host"), "plugins.demo.host");
  try {
    c.fail("host", "must not contain a scheme");
    FAIL();
  } catch (const rd::ConfigKeyError& e) {
    EXPECT_STREQ(e.what(), "plugins.demo.host: must not contain a scheme");
  }
  // Callers that predate rd::ConfigKeyError catch std::invalid_argument.
  EXPECT_THROW(c.fail("host", "x"), std::invalid_argument);
}

TEST(SdkConfig, TextThatIsNotOneObjectIsRefused) {
  for (const char* json :
       {"", "[]", "[1]", "null", "{", R"({"port":1,})", R"({"port":01})", R"({"port":1} {})",
        R"({'port':1})", "{\"host\":\"a\nb\"}", R"({"host":"\ud800"})", R"({"host":"\x"})"}) {
    try {
      config(json);
      ADD_FAILURE() << "accepted: " << json;
    } catch (const rd::ConfigKeyError& e) {
      EXPECT_EQ(std::string(e.what()).rfind("plugins.demo: configuration is not a JSON object", 0),
                0u)
          << e.what();
    }
  }
  // Whitespace, escapes, surrogate pairs and members it does not read are fine.
  const rd::ConfigReader c = config(
      " {\n \"host\" : \"a\\/b\\t\\ud83d\\ude00\", \"extra\": {\"x\": [1, "
      "2.5e3, null, true]} } ");
  EXPECT_EQ(c.string("host"), "a/b\t\xF0\x9F\x98\x80");
}

TEST(SdkConfig, ReadingAnUndeclaredKeyOrAnotherTypeIsAPluginBug) {
  const rd::ConfigReader c = config(R"({"prot":1})");
  try {
    c.integer("prot", 0);
    FAIL();
  } catch (const std::logic_error& e) {
    EXPECT_STREQ(e.what(),
                 "plugins.demo.prot is read but not declared in the plugin's config keys");
  }
  try {
    c.integer("timeout", 0);
    FAIL();
  } catch (const std::logic_error& e) {
    EXPECT_STREQ(e.what(),
                 "plugins.demo.timeout is declared RD_CONFIG_DURATION but read as RD_CONFIG_INT");
  }
}

}  // namespace
