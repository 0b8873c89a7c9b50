// 5 000 hostile jobs through the real daemon and nats-server: every one is dead-lettered with a
// reason, nothing is delivered, the daemon stays healthy and its memory stays bounded.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "measure.hpp"
#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;

std::string good_prefix() {
  return R"({"route":{"id":1,"destination_type":"test","destination_config":{}},"topic":"t",)";
}

// One hostile job of kind `i % 8`.
std::string hostile(int i, std::mt19937& rng) {
  const std::string valid = good_prefix() + R"("payload":{"device_id":"dev","n":)" +
                            std::to_string(i) + R"(},"tenant_id":"tenant-a"})";
  switch (i % 8) {
    case 0: {  // truncated JSON
      std::uniform_int_distribution<size_t> cut(1, valid.size() - 2);
      return valid.substr(0, cut(rng));
    }
    case 1:  // huge string in a field that must be short
      return R"({"route":{"id":1,"destination_type":")" + std::string(200'000, 'x') +
             R"(","destination_config":{}},"topic":"t","payload":{},"tenant_id":"tenant-a"})";
    case 2:  // deep nesting
      return good_prefix() + R"("tenant_id":"tenant-a","payload":)" + std::string(5000, '[') +
             std::string(5000, ']') + "}";
    case 3: {  // wrong types
      static const char* variants[] = {
          R"({"route":{"id":"one","destination_type":"test"},"topic":"t","payload":{},"tenant_id":"tenant-a"})",
          R"({"route":[],"topic":"t","payload":{},"tenant_id":"tenant-a"})",
          R"({"route":{"id":1,"destination_type":7},"topic":"t","payload":{},"tenant_id":"tenant-a"})",
          R"({"route":{"id":1,"destination_type":"test"},"topic":{},"payload":{},"tenant_id":"tenant-a"})",
          R"({"route":{"id":1,"destination_type":"test"},"topic":"t","payload":{},"tenant_id":null})",
          R"("just a string")",
          R"(12345)",
      };
      return variants[(i / 8) % 7];
    }
    case 4:  // invalid UTF-8
      return good_prefix() + "\"payload\":{\"s\":\"\xff\xfe\xc3\x28\"},\"tenant_id\":\"tenant-a\"}";
    case 5:  // NUL bytes
      return std::string("{\"route\":{\"id\":1,\0\"destination_type\":\"test\"}}", 41) +
             std::string(10, '\0');
    case 6:  // oversized job (1 MiB payload, over delivery.max_job_bytes)
      if ((i / 8) % 25 == 0) {
        return good_prefix() + R"("payload":{"blob":")" + std::string(1 << 20, 'a') +
               R"("},"tenant_id":"tenant-a"})";
      }
      return "\x01\x02\x03 binary garbage";
    default:  // valid JSON, but a job for a type nobody serves
      return R"({"route":{"id":1,"destination_type":"no_such_plugin"},"topic":"t","payload":{},"tenant_id":"tenant-a"})";
  }
}

TEST(HostileJobs, EveryOneIsDeadLetteredWithAReasonAndMemoryStaysBounded) {
  rdtest::TempDir dir;
  rdtest::write_file(dir.file("nats.conf"), "max_payload: 4MB\n");
  rdtest::NatsServer nats({"-c", dir.file("nats.conf")});
  rdtest::JsClient js(nats.url());
  js.ensure_routes_stream();
  rdtest::Daemon daemon(
      "nats:\n  url: " + nats.url() +
          "\n  backoff: [100ms]\ndelivery:\n  max_in_flight: 512\nplugins:\n  dir: " +
          rdtest::test_plugin_dir() + "/scripted\nlog:\n  level: error\n",
      {});
  ASSERT_TRUE(daemon.wait_ready()) << daemon.log();

  constexpr int kJobs = 5000;
  std::mt19937 rng(42);
  for (int i = 0; i < kJobs; ++i) js.publish("routes.tenant-a", hostile(i, rng));

  double peak_mib = 0;
  const bool drained = rdtest::wait_until(
      [&] {
        if (auto stats = rdtest::proc_stats(daemon.process().pid()))
          peak_mib = std::max(peak_mib, stats->rss_mib);
        return js.stream_msgs("ROUTES_DLQ") >= kJobs && js.stream_msgs("ROUTES") == 0;
      },
      240s, 100ms);
  ASSERT_TRUE(drained) << "DLQ=" << js.stream_msgs("ROUTES_DLQ")
                       << " ROUTES=" << js.stream_msgs("ROUTES") << "\n"
                       << daemon.log().substr(0, 4000);

  // Exactly one record per job, each with a reason; nothing was delivered.
  const auto records = js.stream_messages("ROUTES_DLQ");
  EXPECT_EQ(records.size(), static_cast<size_t>(kJobs));
  std::set<std::string> ids;
  for (const auto& text : records) {
    const auto r = nlohmann::json::parse(text, nullptr, false);
    ASSERT_FALSE(r.is_discarded()) << text.substr(0, 200);
    ASSERT_TRUE(r.contains("error") && r["error"].is_string() &&
                !r["error"].get<std::string>().empty())
        << text.substr(0, 300);
    EXPECT_EQ(r.value("attempts", 0), 1)
        << text.substr(0, 300);  // dead-lettered at once, not retried
    ids.insert(r.value("message_id", ""));
  }
  EXPECT_EQ(ids.size(), static_cast<size_t>(kJobs));

  const auto health = nlohmann::json::parse(daemon.get("/health").body);
  EXPECT_EQ(health["status"], "ok");
  EXPECT_EQ(health["delivered"], 0);
  EXPECT_EQ(health["dead_lettered"], kJobs);
  // Bounded memory: the 1 MiB jobs pass through, but nothing accumulates.
  EXPECT_LT(peak_mib, 256.0) << "peak RSS " << peak_mib << " MiB";
  RecordProperty("peak_rss_kib", std::to_string(static_cast<long>(peak_mib * 1024)));

  // Still working: a good job for the scripted plugin is delivered.
  rdtest::TempDir rec;
  js.publish("routes.tenant-a",
             rdtest::make_job("tenant-a", 2, "test",
                              R"({"script":["ok"],"record":")" + rec.file("r") + "\"}", "{}"));
  EXPECT_TRUE(
      rdtest::wait_until([&] { return rdtest::read_lines(rec.file("r")).size() == 1; }, 10s));
  EXPECT_TRUE(rdtest::wait_until([&] { return js.stream_msgs("ROUTES") == 0; }, 10s));
  daemon.stop();
  EXPECT_EQ(daemon.exit_code(), 0);
}

}  // namespace
