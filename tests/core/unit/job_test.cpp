#include "job.hpp"

#include <gtest/gtest.h>

#include <string>

namespace {

rd::JobParse parse(const std::string& text, const std::string& tenant = "tenant-a") {
  rd::JobParse p;
  rd::parse_job(text, tenant, 1 << 20, p);
  return p;
}

const char* kGood =
    R"({"route": {"id": 1, "destination_type": "webhook", "destination_config": {"url": "https://example.com/hook"}},)"
    R"( "topic": "tenant-a/dev-7/telemetry", "payload": {"device_id": "dev-7", "temp": 21.5}, "tenant_id": "tenant-a"})";

TEST(Job, ParsesTheContractExample) {
  const auto p = parse(kGood);
  ASSERT_TRUE(p.ok) << p.error;
  EXPECT_EQ(p.job.tenant_id, "tenant-a");
  EXPECT_EQ(p.job.route_id, 1);
  EXPECT_EQ(p.job.destination_type, "webhook");
  EXPECT_EQ(p.job.destination_config_json, R"({"url": "https://example.com/hook"})");  // as written
  EXPECT_EQ(p.job.topic, "tenant-a/dev-7/telemetry");
  EXPECT_EQ(p.job.payload_json, R"({"device_id": "dev-7", "temp": 21.5})");
}

TEST(Job, PayloadAndConfigKeepTheirOriginalBytes) {
  // Key order, number spelling and spacing survive: the webhook body is what ingest wrote.
  const auto p = parse(
      R"({"tenant_id":"tenant-a","payload": {"z": 1.50, "a": [1, {"s": "}{\"]"}], "m": 1e3},)"
      R"("route":{"id":3,"destination_config":{"url":"u","b":true},"destination_type":"webhook"},"topic":"t"})");
  ASSERT_TRUE(p.ok) << p.error;
  EXPECT_EQ(p.job.payload_json, R"({"z": 1.50, "a": [1, {"s": "}{\"]"}], "m": 1e3})");
  EXPECT_EQ(p.job.destination_config_json, R"({"url":"u","b":true})");
}

TEST(Job, MemberSpan) {
  EXPECT_EQ(rd::member_span(R"( { "a" : [1,2] , "b":"x,}" ,"a":3 } )", "a"), "3");  // last wins
  EXPECT_EQ(rd::member_span(R"({"a":{"b":{}},"c":null})", "c"), "null");
  EXPECT_FALSE(rd::member_span(R"({"a":1})", "b"));
  EXPECT_FALSE(rd::member_span("[1]", "a"));
}

TEST(Job, MissingConfigIsEmptyObject) {
  const auto p = parse(
      R"({"route":{"id":2,"destination_type":"postgresql"},"topic":"t","payload":1,"tenant_id":"tenant-a"})");
  ASSERT_TRUE(p.ok) << p.error;
  EXPECT_EQ(p.job.destination_config_json, "{}");
}

struct BadCase {
  const char* json;
  const char* error_fragment;
};

TEST(Job, RejectsInvalidJobsNamingTheField) {
  const BadCase cases[] = {
      {"not json", "not valid JSON"},
      {"[1,2]", "must be a JSON object"},
      {R"({"route":{"id":1,"destination_type":"webhook"},"topic":"t","payload":{}})",
       "no 'tenant_id'"},
      {R"({"route":{"id":1,"destination_type":"webhook"},"topic":"t","payload":{},"tenant_id":7})",
       "'tenant_id' must be a string"},
      {R"({"topic":"t","payload":{},"tenant_id":"tenant-a"})", "no 'route'"},
      {R"({"route":"x","topic":"t","payload":{},"tenant_id":"tenant-a"})",
       "'route' must be an object"},
      {R"({"route":{"destination_type":"webhook"},"topic":"t","payload":{},"tenant_id":"tenant-a"})",
       "no 'route.id'"},
      {R"({"route":{"id":"1","destination_type":"webhook"},"topic":"t","payload":{},"tenant_id":"tenant-a"})",
       "'route.id' must be an integer"},
      {R"({"route":{"id":1},"topic":"t","payload":{},"tenant_id":"tenant-a"})",
       "no 'route.destination_type'"},
      {R"({"route":{"id":1,"destination_type":""},"topic":"t","payload":{},"tenant_id":"tenant-a"})",
       "non-empty string"},
      {R"({"route":{"id":1,"destination_type":"webhook","destination_config":[1]},"topic":"t","payload":{},"tenant_id":"tenant-a"})",
       "'route.destination_config' must be an object"},
      {R"({"route":{"id":1,"destination_type":"webhook"},"payload":{},"tenant_id":"tenant-a"})",
       "no 'topic'"},
      {R"({"route":{"id":1,"destination_type":"webhook"},"topic":5,"payload":{},"tenant_id":"tenant-a"})",
       "'topic' must be a string"},
      {R"({"route":{"id":1,"destination_type":"webhook"},"topic":"t","tenant_id":"tenant-a"})",
       "no 'payload'"},
      {R"({"route":{"id":1,"destination_type":"webhook"},"topic":"t","payload":{},"tenant_id":"tenant-b"})",
       "does not match the subject"},
      {R"({"route":{"id":1,"destination_type":"webhook"},"topic":"t","payload":{},"tenant_id":"a.b"})",
       "without spaces"},
      {"{\"route\":{\"id\":1,\"destination_type\":\"webhook\"},\"topic\":\"\xff\xfe\",\"payload\":{"
       "},\"tenant_id\":\"tenant-a\"}",
       "not valid JSON"},
  };
  for (const auto& c : cases) {
    const auto p = parse(c.json);
    EXPECT_FALSE(p.ok) << c.json;
    EXPECT_NE(p.error.find(c.error_fragment), std::string::npos) << c.json << " -> " << p.error;
  }
}

TEST(Job, KeepsWhatItCouldReadForTheDeadLetterRecord) {
  const auto p = parse(
      R"({"route":{"id":9,"destination_type":"webhook"},"topic":"dev/1","payload":{"x":1},"tenant_id":7})");
  ASSERT_FALSE(p.ok);
  EXPECT_EQ(p.job.tenant_id, "tenant-a");  // from the subject
  EXPECT_TRUE(p.job.has_route_id);
  EXPECT_EQ(p.job.route_id, 9);
  EXPECT_EQ(p.job.topic, "dev/1");
  EXPECT_EQ(p.job.payload_json, R"({"x":1})");
}

TEST(Job, RejectsDeepNestingAndOversizedJobs) {
  std::string deep =
      R"({"route":{"id":1,"destination_type":"w"},"topic":"t","tenant_id":"tenant-a","payload":)";
  deep += std::string(100000, '[') + std::string(100000, ']') + "}";
  auto p = parse(deep);
  EXPECT_FALSE(p.ok);
  EXPECT_NE(p.error.find("nested deeper"), std::string::npos) << p.error;

  rd::JobParse small;
  rd::parse_job(kGood, "tenant-a", 16, small);
  EXPECT_FALSE(small.ok);
  EXPECT_NE(small.error.find("max_job_bytes"), std::string::npos);
}

TEST(Job, SubjectTenant) {
  EXPECT_EQ(rd::subject_tenant("routes.tenant-a", "routes"), "tenant-a");
  EXPECT_EQ(rd::subject_tenant("routes.", "routes"), "");
  EXPECT_EQ(rd::subject_tenant("other.tenant-a", "routes"), "");
  EXPECT_EQ(rd::json_depth(R"({"a":"[[[[","b":[{}]})", 10), 3);
}

}  // namespace
