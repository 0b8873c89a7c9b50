// Topic templating and validation: the rules that keep a device id from escaping its topic tree.
#include "topic_template.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace rd::mqtt_republish;

namespace {

std::string render_ok(const std::string& tmpl, const std::string& tenant,
                      const std::string& device) {
  std::string out;
  Check c = render(tmpl, tenant, device, true, out);
  EXPECT_TRUE(c.ok()) << c.error;
  return out;
}

std::string render_error(const std::string& tmpl, const std::string& tenant,
                         const std::string& device) {
  std::string out;
  Check c = render(tmpl, tenant, device, true, out);
  EXPECT_FALSE(c.ok()) << "rendered " << out;
  return c.error;
}

}  // namespace

TEST(MqttTopicTemplate, SubstitutesTenantAndDeviceEverywhere) {
  EXPECT_EQ(render_ok("out/{tenant_id}/{device_id}/t", "tenant-a", "dev-7"),
            "out/tenant-a/dev-7/t");
  EXPECT_EQ(render_ok("{tenant_id}/{device_id}/{device_id}", "a", "d"), "a/d/d");
  EXPECT_EQ(render_ok("fixed/topic", "a", "d"), "fixed/topic");
  EXPECT_EQ(render_ok("dev-{device_id}-x", "a", "7"), "dev-7-x");
}

TEST(MqttTopicTemplate, LoneBracesAreLiteral) {
  EXPECT_EQ(render_ok("a/{/b}/{", "t", "d"), "a/{/b}/{");
  EXPECT_EQ(render_ok("a/{}/b", "t", "d"), "a/{}/b");
}

TEST(MqttTopicTemplate, UnknownPlaceholderIsAnError) {
  const std::string e = render_error("out/{deviceid}/t", "a", "d");
  EXPECT_NE(e.find("{deviceid}"), std::string::npos) << e;
  EXPECT_NE(e.find("{device_id}"), std::string::npos) << e;
}

TEST(MqttTopicTemplate, HostileDeviceIdsAreRefusedWithTheReason) {
  EXPECT_NE(render_error("t/{device_id}/x", "a", "a/b").find("'/'"), std::string::npos);
  EXPECT_NE(render_error("t/{device_id}/x", "a", "+").find("'+'"), std::string::npos);
  EXPECT_NE(render_error("t/{device_id}/x", "a", "#").find("'#'"), std::string::npos);
  EXPECT_NE(render_error("t/{device_id}/x", "a", "../../other-tenant/x").find("'/'"),
            std::string::npos);
  const std::string nul = render_error("t/{device_id}/x", "a", std::string("ab\0cd", 5));
  EXPECT_NE(nul.find("NUL"), std::string::npos) << nul;
  EXPECT_NE(nul.find("\\u0000"), std::string::npos) << "reason shows the NUL escaped: " << nul;
  EXPECT_NE(render_error("t/{device_id}", "a", "bad\xff").find("UTF-8"), std::string::npos);
  EXPECT_NE(render_error("t/{device_id}", "a", "tab\there").find("control"), std::string::npos);
}

TEST(MqttTopicTemplate, HostileTenantIdsAreRefused) {
  EXPECT_NE(render_error("t/{tenant_id}", "a/b", "d").find("tenant_id"), std::string::npos);
  EXPECT_NE(render_error("t/{tenant_id}", "#", "d").find("'#'"), std::string::npos);
  EXPECT_NE(render_error("t/{tenant_id}", "", "d").find("empty"), std::string::npos);
}

TEST(MqttTopicTemplate, ReasonTruncatesVeryLongValues) {
  const std::string id = std::string(100000, 'x') + "/";
  const std::string e = render_error("t/{device_id}", "a", id);
  EXPECT_LT(e.size(), 300u) << "reason must stay short";
  EXPECT_NE(e.find("100001 bytes"), std::string::npos) << e;
}

TEST(MqttTopicTemplate, DeviceIdIsNotSubstitutedInAPrefix) {
  std::string out;
  EXPECT_FALSE(render("p/{device_id}/", "a", "d", false, out).ok());
}

TEST(MqttTopicName, ValidNamesPass) {
  EXPECT_TRUE(validate_topic_name("a").ok());
  EXPECT_TRUE(validate_topic_name("a/b/c").ok());
  EXPECT_TRUE(validate_topic_name("a//c/").ok()) << "empty levels are legal MQTT";
  EXPECT_TRUE(validate_topic_name("/leading").ok());
  EXPECT_TRUE(validate_topic_name("caf\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac/\xf0\x9f\x98\x80").ok());
  EXPECT_TRUE(validate_topic_name(std::string(kMaxTopicBytes, 'a')).ok());
}

TEST(MqttTopicName, InvalidNamesFailWithAReason) {
  EXPECT_NE(validate_topic_name("").error.find("empty"), std::string::npos);
  EXPECT_NE(validate_topic_name("a/+/b").error.find("wildcard"), std::string::npos);
  EXPECT_NE(validate_topic_name("a/#").error.find("wildcard"), std::string::npos);
  EXPECT_NE(validate_topic_name("a+b").error.find("wildcard"), std::string::npos);
  EXPECT_NE(validate_topic_name("$SYS/x").error.find("'$'"), std::string::npos);
  EXPECT_NE(validate_topic_name(std::string(kMaxTopicBytes + 1, 'a')).error.find("65535"),
            std::string::npos);
  EXPECT_FALSE(validate_topic_name(std::string("a\0b", 3)).ok());
  EXPECT_FALSE(validate_topic_name("a\x01").ok());
  EXPECT_FALSE(validate_topic_name("a\x7f").ok());
  EXPECT_FALSE(validate_topic_name("\xc2\x85").ok()) << "C1 control U+0085";
}

TEST(MqttUtf8, RejectsMalformedSequences) {
  EXPECT_TRUE(is_clean_utf8("plain"));
  EXPECT_FALSE(is_clean_utf8("\xc0\xaf")) << "overlong '/'";
  EXPECT_FALSE(is_clean_utf8("\xe0\x80\xaf")) << "overlong '/'";
  EXPECT_FALSE(is_clean_utf8("\xed\xa0\x80")) << "surrogate";
  EXPECT_FALSE(is_clean_utf8("\xf4\x90\x80\x80")) << "above U+10FFFF";
  EXPECT_FALSE(is_clean_utf8("\xe2\x82")) << "truncated";
  EXPECT_FALSE(is_clean_utf8("\x80")) << "lone continuation";
  EXPECT_FALSE(is_clean_utf8("\xef\xbf\xbf")) << "non-character U+FFFF";
  EXPECT_FALSE(is_clean_utf8("\xef\xb7\x90")) << "non-character U+FDD0";
}

TEST(MqttTopicPrefix, TopicsInsideTheTenantTreePass) {
  EXPECT_TRUE(check_prefix("", "a", "anything/at/all").ok());
  EXPECT_TRUE(check_prefix("tenants/{tenant_id}/", "a", "tenants/a/dev/t").ok());
  EXPECT_TRUE(check_prefix("tenants/{tenant_id}", "a", "tenants/a").ok());
  EXPECT_TRUE(check_prefix("tenants/{tenant_id}", "a", "tenants/a/x").ok());
  EXPECT_TRUE(check_prefix("shared/", "a", "shared/x").ok());
}

TEST(MqttTopicPrefix, TopicsOutsideTheTenantTreeFail) {
  const Check c = check_prefix("tenants/{tenant_id}/", "a", "tenants/b/dev/t");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error.find("tenants/a/"), std::string::npos) << c.error;
  EXPECT_FALSE(check_prefix("tenants/{tenant_id}", "a", "tenants/ab/x").ok())
      << "a prefix matches whole levels only";
  EXPECT_FALSE(check_prefix("tenants/{tenant_id}/", "a", "tenants/a").ok());
  EXPECT_FALSE(check_prefix("tenants/{tenant_id}/", "a", "other/tenants/a/x").ok());
  EXPECT_FALSE(check_prefix("tenants/{tenant_id}/", "a/b", "tenants/a/b/x").ok())
      << "a tenant id with '/' cannot widen its own prefix";
}
