// A job's destination_config and payload -> what is published, or a permanent failure reason.
#include "publish_plan.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace mqtt_republish;

namespace {
const char* kPayload = R"({"device_id":"dev-7","temp":21.5})";

PublishPlan plan(const std::string& config, const std::string& payload = kPayload,
                 const std::string& tenant = "tenant-a", PlanDefaults defaults = {}) {
  return plan_publish(config, tenant, payload, defaults);
}
}  // namespace

TEST(MqttPublishPlan, DefaultsToQos1WithoutRetain) {
  const PublishPlan p = plan(R"({"topic":"out/{tenant_id}/{device_id}"})");
  ASSERT_TRUE(p.ok()) << p.error;
  EXPECT_EQ(p.topic, "out/tenant-a/dev-7");
  EXPECT_EQ(p.qos, 1);
  EXPECT_FALSE(p.retain);
}

TEST(MqttPublishPlan, PluginDefaultQosApplies) {
  PlanDefaults d;
  d.qos = 2;
  EXPECT_EQ(plan(R"({"topic":"x"})", kPayload, "a", d).qos, 2);
  EXPECT_EQ(plan(R"({"topic":"x","qos":0})", kPayload, "a", d).qos, 0);
}

TEST(MqttPublishPlan, RouteQosAndRetain) {
  const PublishPlan p = plan(R"({"topic":"x","qos":2,"retain":true})");
  ASSERT_TRUE(p.ok()) << p.error;
  EXPECT_EQ(p.qos, 2);
  EXPECT_TRUE(p.retain);
}

TEST(MqttPublishPlan, QosOutsideZeroToTwoIsPermanent) {
  for (const char* q : {"3", "-1", "1.5", "\"1\"", "true", "99999999999"}) {
    const PublishPlan p = plan(std::string(R"({"topic":"x","qos":)") + q + "}");
    EXPECT_FALSE(p.ok()) << "qos " << q;
    EXPECT_NE(p.error.find("qos"), std::string::npos) << p.error;
  }
}

TEST(MqttPublishPlan, RetainMustBeABool) {
  EXPECT_NE(plan(R"({"topic":"x","retain":"yes"})").error.find("retain"), std::string::npos);
}

TEST(MqttPublishPlan, MissingOrEmptyTopicIsPermanent) {
  EXPECT_NE(plan(R"({})").error.find("topic is missing"), std::string::npos);
  EXPECT_NE(plan(R"({"topic":""})").error.find("empty"), std::string::npos);
  EXPECT_NE(plan(R"({"topic":42})").error.find("string"), std::string::npos);
  EXPECT_NE(plan("not json").error.find("not a JSON object"), std::string::npos);
}

TEST(MqttPublishPlan, WildcardTopicsArePermanent) {
  EXPECT_NE(plan(R"({"topic":"out/+/x"})").error.find("wildcard"), std::string::npos);
  EXPECT_NE(plan(R"({"topic":"out/#"})").error.find("wildcard"), std::string::npos);
}

TEST(MqttPublishPlan, AbsentDeviceIdIsEmptyAndAnInvalidResultIsPermanent) {
  const PublishPlan p = plan(R"({"topic":"a/{device_id}/b"})", R"({"temp":1})");
  ASSERT_TRUE(p.ok()) << p.error;
  EXPECT_EQ(p.topic, "a//b");
  const PublishPlan empty = plan(R"({"topic":"{device_id}"})", R"({"temp":1})");
  EXPECT_NE(empty.error.find("empty"), std::string::npos) << empty.error;
  EXPECT_TRUE(plan(R"({"topic":"a/{device_id}"})", R"({"device_id":null})").ok());
  EXPECT_TRUE(plan(R"({"topic":"a/{device_id}"})", "[1,2]").ok()) << "non-object payload";
}

TEST(MqttPublishPlan, DeviceIdFromPayload) {
  EXPECT_EQ(plan(R"({"topic":"a/{device_id}"})", R"({"device_id":42})").topic, "a/42");
  EXPECT_NE(
      plan(R"({"topic":"a/{device_id}"})", R"({"device_id":{"x":1}})").error.find("device_id"),
      std::string::npos);
  EXPECT_NE(plan(R"({"topic":"a/{device_id}"})", R"({"device_id":"a/b"})").error.find("'/'"),
            std::string::npos);
  EXPECT_NE(plan(R"({"topic":"a/{device_id}"})", R"({"device_id":"#"})").error.find("'#'"),
            std::string::npos);
  EXPECT_NE(plan(R"({"topic":"a/{device_id}"})", R"({"device_id":"+"})").error.find("'+'"),
            std::string::npos);
  EXPECT_NE(plan(R"({"topic":"a/{device_id}"})", R"({"device_id":"x\u0000y"})").error.find("NUL"),
            std::string::npos);
  // The payload is not needed (nor parsed) when the template has no {device_id}.
  EXPECT_TRUE(plan(R"({"topic":"fixed"})", R"({"device_id":"a/b"})").ok());
}

TEST(MqttPublishPlan, VeryLongDeviceIdOverTheTopicLimitIsPermanent) {
  const std::string payload = R"({"device_id":")" + std::string(70000, 'd') + R"("})";
  const PublishPlan p = plan(R"({"topic":"a/{device_id}"})", payload);
  EXPECT_NE(p.error.find("over the MQTT limit"), std::string::npos) << p.error.substr(0, 200);
  EXPECT_LT(p.error.size(), 300u);
}

TEST(MqttPublishPlan, TenantPrefixIsolation) {
  PlanDefaults d;
  d.topic_prefix = "tenants/{tenant_id}/";
  EXPECT_TRUE(plan(R"({"topic":"tenants/{tenant_id}/{device_id}"})", kPayload, "a", d).ok());
  const PublishPlan other = plan(R"({"topic":"tenants/b/{device_id}"})", kPayload, "a", d);
  EXPECT_NE(other.error.find("outside this tenant's tree"), std::string::npos) << other.error;
  const PublishPlan climb =
      plan(R"({"topic":"tenants/{device_id}"})", R"({"device_id":"b"})", "a", d);
  EXPECT_FALSE(climb.ok()) << "a device id cannot stand in for the tenant level";
}
