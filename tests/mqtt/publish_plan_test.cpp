// A job's destination_config and payload -> what is published, or a permanent failure reason.
#include "publish_plan.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

using namespace rd::mqtt_republish;

namespace {
const char* kPayload = R"({"device_id":"dev-7","temp":21.5})";

PublishPlan plan(const std::string& config, const std::string& payload = kPayload,
                 const std::string& tenant = "tenant-a", PlanDefaults defaults = {}) {
  // As the plugin does it: the route's config parsed (once, cached), then applied to the job.
  return plan_job(parse_route_plan(config, defaults), tenant, payload, defaults);
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

namespace {
// The reference: payload.device_id through a full parse (what the plugin did for every job).
std::string reference_device_id(const std::string& payload, std::string& device_id) {
  device_id.clear();
  const auto doc = nlohmann::json::parse(payload, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return {};
  const auto it = doc.find("device_id");
  if (it == doc.end() || it->is_null()) return {};
  if (it->is_string()) {
    device_id = it->get<std::string>();
  } else if (it->is_number_integer()) {
    device_id = it->dump();
  } else {
    return "payload.device_id is a " + std::string(it->type_name()) +
           ", expected a string or an integer";
  }
  return {};
}
}  // namespace

TEST(MqttPublishPlan, DeviceIdScanAgreesWithAFullParse) {
  const std::vector<std::string> payloads = {
      R"({"device_id":"dev-1","temp":21.5})",
      R"({"temp":21.5,"device_id":"dev-1"})",
      R"(  { "device_id" : "dev-1" , "x" : [1, {"device_id":"inner"}] }  )",
      R"({"nested":{"device_id":"inner"},"device_id":"outer"})",
      R"({"nested":{"device_id":"inner"}})",
      R"({"s":"a \"device_id\": \"fake\" }","device_id":"real"})",
      R"({"s":"}{][\\","device_id":"after-backslash"})",
      R"({"device_id":"first","device_id":"last"})",
      R"({"device_id":"a\/b"})",
      R"({"device_id":"esc\"aped"})",
      R"({"device_id":"\u0064ev"})",
      R"({"device_\u0069d":"escaped-key"})",
      R"({"device_id":"ü-dev"})",
      R"({"device_id":42})",
      R"({"device_id":-7})",
      R"({"device_id":-0})",
      R"({"device_id":18446744073709551615})",
      R"({"device_id":18446744073709551616})",
      R"({"device_id":1.5})",
      R"({"device_id":1e3})",
      R"({"device_id":null})",
      R"({"device_id":true})",
      R"({"device_id":{"id":1}})",
      R"({"device_id":[1]})",
      R"({"device_id":""})",
      R"({})",
      R"({"a":{},"b":[],"c":[[],[{}]],"device_id":"x"})",
      "[1,2]",
      R"("just a string")",
      "42",
      "null",
      "{\n\t\"device_id\"\r\n:\t\"ws\"\n}",
      // Not valid JSON (the host never passes such a payload): still the reference's answer.
      R"({"device_id":"x")",
      R"({"device_id":tru})",
      R"({"device_id":"x"} trailing)",
      "",
  };
  for (const std::string& payload : payloads) {
    SCOPED_TRACE(payload);
    std::string expected_id, got_id;
    const std::string expected_error = reference_device_id(payload, expected_id);
    const std::string got_error = device_id_from_payload(payload, got_id);
    EXPECT_EQ(got_error, expected_error);
    EXPECT_EQ(got_id, expected_id);
  }
}

TEST(MqttPublishPlan, RoutePlanIsParsedOncePerConfigAndAppliedPerJob) {
  RoutePlanCache cache(2);
  const PlanDefaults d;
  const std::string config = R"({"topic":"out/{tenant_id}/{device_id}","qos":2,"retain":true})";
  const auto first = cached_route_plan(cache, config, d);
  const auto again = cached_route_plan(cache, std::string(config), d);  // other bytes, same text
  EXPECT_EQ(first, again) << "the second job of a route must not parse its config again";
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(first->qos, 2);
  EXPECT_TRUE(first->retain);
  EXPECT_TRUE(first->uses_device_id);

  // Per job: tenant and device differ, the plan is the job's own.
  PublishPlan a = plan_job(*first, "tenant-a", R"({"device_id":"d1"})", d);
  PublishPlan b = plan_job(*first, "tenant-b", R"({"device_id":"d2"})", d);
  EXPECT_EQ(a.topic, "out/tenant-a/d1");
  EXPECT_EQ(b.topic, "out/tenant-b/d2");
  EXPECT_EQ(b.qos, 2);
  EXPECT_FALSE(plan_job(*first, "t", R"({"device_id":"a/b"})", d).ok());

  // A bad config is remembered as bad.
  const auto bad = cached_route_plan(cache, R"({"topic":"x","qos":7})", d);
  EXPECT_NE(plan_job(*bad, "t", "{}", d).error.find("qos"), std::string::npos);
  EXPECT_EQ(cached_route_plan(cache, R"({"topic":"x","qos":7})", d), bad);
  EXPECT_EQ(cache.size(), 2u);

  // Bounded: a third distinct config drops the least recently used one (the good config); a plan
  // handed out before stays valid.
  cached_route_plan(cache, R"({"topic":"y"})", d);
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(first->topic_template, "out/{tenant_id}/{device_id}");
  EXPECT_EQ(plan_job(*cached_route_plan(cache, config, d), "t", R"({"device_id":"z"})", d).topic,
            "out/t/z");
}
