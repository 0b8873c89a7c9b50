#include "job.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "job_oracle.hpp"

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

TEST(Job, DuplicateKeysAndEscapedKeysReadLikeAnyJsonParser) {
  // The last of duplicate keys wins (a later `route` replaces all of the earlier one's members),
  // and keys are compared decoded.
  const auto p =
      parse(R"({"route":{"id":1,"destination_type":"mqtt_republish","destination_config":{"a":1}},)"
            R"("topic":"t","payload":1,"tenant\u005fid":"tenant-a",)"
            R"("route":{"id":2,"destination_type":"webhook"},"payload":{"b":[2]}})");
  ASSERT_TRUE(p.ok) << p.error;
  EXPECT_EQ(p.job.route_id, 2);
  EXPECT_EQ(p.job.destination_type, "webhook");
  EXPECT_EQ(p.job.destination_config_json, "{}");
  EXPECT_EQ(p.job.payload_json, R"({"b":[2]})");
}

TEST(Job, DecodesEscapesInTheFieldsItReads) {
  const auto p =
      parse(R"({"route":{"id":-9223372036854775808,"destination_type":"web\u0068ook"},)"
            R"("topic":"a\/b\n\u00e9\ud83d\ude00","payload":"x","tenant_id":"tenant-a"})");
  ASSERT_TRUE(p.ok) << p.error;
  EXPECT_EQ(p.job.route_id, INT64_MIN);
  EXPECT_EQ(p.job.destination_type, "webhook");
  EXPECT_EQ(p.job.topic, "a/b\n\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_EQ(p.job.payload_json, "\"x\"");
}

TEST(Job, AgreesWithNlohmannOnTrickyText) {
  const char* const cases[] = {
      kGood,
      "",
      " ",
      "{}",
      "\xEF\xBB\xBF{}",
      "{} {}",
      "{\"a\":1,}",
      "{\"a\" 1}",
      "[1,]",
      "[01]",
      "[-]",
      "[1.]",
      "[.5]",
      "[1e]",
      "[1e+]",
      "[-0, 0.0e-0, 1E+9, 12345678901234567890123]",
      "[1e400]",
      "[tru]",
      "[nul]",
      "[\"\\x\"]",
      "[\"\\u12G4\"]",
      "[\"\\ud800\"]",
      "[\"\\udc00\"]",
      "[\"\\ud800\\u0041\"]",
      "[\"\\ud83d\\ude00\"]",
      "[\"\t\"]",
      "[\"\x7f\"]",
      "[\"\xc0\x80\"]",
      "[\"\xe0\x80\x80\"]",
      "[\"\xed\xa0\x80\"]",
      "[\"\xf4\x90\x80\x80\"]",
      "[\"\xf0\x9f\x98\x80\"]",
      "[\"\xc3\"]",
      "\"unterminated",
      R"({"route":{"id":9223372036854775807,"destination_type":"w"},"topic":"t","payload":null,"tenant_id":"x"})",
      R"({"route":{"id":9223372036854775808,"destination_type":"w"},"topic":"t","payload":null,"tenant_id":"x"})",
      R"({"route":{"id":1.0,"destination_type":"w"},"topic":"t","payload":null,"tenant_id":"x"})",
      R"({"route":{"id":1,"destination_type":"w","destination_config":null},"topic":"t","payload":[],"tenant_id":"x"})",
      R"({"route":null,"topic":"t","payload":[],"tenant_id":"x"})",
  };
  for (const char* c : cases) {
    const std::string text(c);
    EXPECT_EQ(rd_test::job_oracle_mismatch(text), "") << text;
  }
}

TEST(Job, AgreesWithNlohmannOnMutatedJobs) {
  // A small deterministic fuzz: 40 000 mutations of a few jobs must read the same both ways
  // (tests/fuzz/fuzz_job.cpp runs the same check under libFuzzer).
  const std::string seeds[] = {
      kGood,
      R"({"tenant_id":"t\u00e9","route":{"id":-3,"destination_type":"x","destination_config":{"k":[1,{"a":"\ud83d\ude00"}]}},"topic":"a\"b","payload":[1.5e3,true,false,null,"\u0000"]})",
      "{\"tenant_id\":\"\xc3\xa9\",\"route\":{\"id\":7,\"destination_type\":\"y\"},\"topic\":"
      "\"\xf0\x9f\x98\x80\",\"payload\":{}}",
  };
  static const char kAlphabet[] =
      "{}[]\",:\\u0123456789eE.-+tfnlr /\x00\x1f\x7f\x80\xbf\xc3\xed\xf0\xf4\xff";
  const std::string alphabet(kAlphabet, sizeof kAlphabet - 1);
  uint64_t state = 0x9E3779B97F4A7C15ull;
  auto next = [&state](uint64_t n) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state % n;
  };
  int mismatches = 0;
  for (int i = 0; i < 40000 && mismatches < 5; ++i) {
    std::string text = seeds[next(3)];
    const int edits = 1 + static_cast<int>(next(3));
    for (int e = 0; e < edits && !text.empty(); ++e) {
      const size_t at = next(text.size());
      switch (next(4)) {
        case 0:
          text[at] = alphabet[next(alphabet.size())];
          break;
        case 1:
          text.insert(at, 1, alphabet[next(alphabet.size())]);
          break;
        case 2:
          text.erase(at, 1 + next(3));
          break;
        default:
          text.insert(at, text.substr(next(text.size()), 1 + next(8)));
          break;
      }
    }
    const std::string why = rd_test::job_oracle_mismatch(text);
    if (!why.empty()) {
      ++mismatches;
      ADD_FAILURE() << why << "\n  text: " << text;
    }
  }
}

// Strings are scanned eight plain bytes at a time: a quote, backslash, control character or
// non-ASCII byte at any offset from a block's start must still be seen, in every string the job
// holds (a key, the tenant, the payload's text).
TEST(Job, SpecialBytesAtEveryOffsetOfAStringReadLikeNlohmann) {
  const std::string specials[] = {
      "\\\"", "\\\\", "\\n",  "\\u00e9", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\x01",
      "\x1f", "\x7f", "\xc3", "\xff",    "\"",       "\\x",          "\xed\xa0\x80"};
  int checked = 0;
  for (const std::string& special : specials) {
    for (size_t before = 0; before <= 17; ++before) {
      const std::string text = std::string(before, 'a') + special + std::string(19 - before, 'b');
      for (
          const char* shape :
          {R"({"route":{"id":1,"destination_type":"webhook"},"topic":"%","payload":{"k":1},"tenant_id":"tenant-a"})",
           R"({"route":{"id":1,"destination_type":"webhook"},"topic":"t","payload":{"%":1},"tenant_id":"tenant-a"})",
           R"({"route":{"id":1,"destination_type":"webhook"},"topic":"t","payload":"%","tenant_id":"tenant-a"})"}) {
        std::string job = shape;
        job.replace(job.find('%'), 1, text);
        EXPECT_EQ(rd_test::job_oracle_mismatch(job), "") << job;
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, 15 * 18 * 3);
  // And the verdicts themselves, for one plain case and one that must fail at offset 9.
  EXPECT_TRUE(parse(std::string(R"({"route":{"id":1,"destination_type":"webhook"},"topic":")") +
                    std::string(30, 'x') + R"(","payload":1,"tenant_id":"tenant-a"})")
                  .ok);
  EXPECT_FALSE(parse(std::string(R"({"route":{"id":1,"destination_type":"webhook"},"topic":")") +
                     std::string(9, 'x') + "\x01" + std::string(20, 'x') +
                     R"(","payload":1,"tenant_id":"tenant-a"})")
                   .ok);
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
}

}  // namespace
