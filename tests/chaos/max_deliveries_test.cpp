// The max-deliveries safety net: a job whose every attempt is cut short by a crash (the daemon
// never settles it) is given up by JetStream after the consumer's max_deliver deliveries. (The
// consumer the daemon creates leaves room for thousands of deferrals; an operator's consumer may
// not, and either way a job that crashes the daemon every time ends here.) The host captures the
// server's MAX_DELIVERIES advisory in a stream, and the next daemon to run dead-letters the job
// by its sequence and removes it from ROUTES, so even this path loses nothing.
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "chaos_support.hpp"
#include "test_support.hpp"

using namespace rdtest;
using namespace rdtest::chaos;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

size_t attempts_seen(const std::string& record) {
  return read_attempts(record).size();
}

TEST(MaxDeliveries, JobAbandonedByCrashesOnEveryAttemptIsDeadLetteredOnce) {
  ASSERT_EQ(::access(daemon_path().c_str(), X_OK), 0) << daemon_path() << " is missing";
  NatsServer nats;
  JsClient js(nats.url());
  js.ensure_routes_stream();
  PluginFolder plugins({scripted_plugin()});
  TempDir tmp("rdtest-maxdeliver");
  const std::string record = tmp.file("attempts.txt");

  // An operator's consumer with JetStream max_deliver 2 (the daemon names it as too low at
  // start-up, and uses it as it is).
  {
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = "route-delivery";
    cc.AckPolicy = js_AckExplicit;
    cc.DeliverPolicy = js_DeliverAll;
    cc.AckWait = 2'000'000'000;
    cc.MaxDeliver = 2;
    jsConsumerInfo* ci = nullptr;
    jsErrCode err = static_cast<jsErrCode>(0);
    ASSERT_EQ(js_AddConsumer(&ci, js.js(), "ROUTES", &cc, nullptr, &err), NATS_OK) << err;
    jsConsumerInfo_Destroy(ci);
  }
  // delivery.timeout stays at its default (5m): the host itself never gives up on the "never"
  // job and keeps it alive with in-progress acks, so only a crash ends an attempt.
  const std::string config = "nats:\n  url: " + nats.url() +
                             "\n  max_deliver: 2\n  ack_wait: 2s\n  backoff: [100ms]\n"
                             "plugins:\n  dir: " +
                             plugins.path() + "\n";
  Daemon daemon(config);
  ASSERT_TRUE(daemon.wait_ready(20s)) << daemon.log();

  const std::string job =
      make_job("tenant-a", 17, "test", json{{"script", {"never"}}, {"record", record}}.dump(),
               R"({"device_id":"dev-3","id":"abandoned-1"})", "tenant-a/dev-3/telemetry");
  js.publish("routes.tenant-a", job);

  // Attempt 1 starts, and the daemon dies in the middle of it.
  ASSERT_TRUE(wait_until([&] { return attempts_seen(record) >= 1; }, 15s)) << daemon.log();
  daemon.kill_hard();

  // A new daemon gets attempt 2 once ack_wait has run out, and dies too.
  daemon.start();
  ASSERT_TRUE(daemon.wait_ready(20s)) << daemon.log();
  ASSERT_TRUE(wait_until([&] { return attempts_seen(record) >= 2; }, 15s)) << daemon.log();
  daemon.kill_hard();
  auto attempts = read_attempts(record);
  ASSERT_EQ(attempts.size(), 2u);
  EXPECT_EQ(attempts[0].attempt, 1);
  EXPECT_EQ(attempts[1].attempt, 1);  // the crash did not spend the first attempt

  // No daemon runs while the last ack_wait runs out: JetStream gives up on the job.
  std::this_thread::sleep_for(4s);
  EXPECT_EQ(js.stream_msgs("ROUTES_DLQ"), 0u) << "nothing can have dead-lettered it yet";

  daemon.start();
  ASSERT_TRUE(daemon.wait_ready(20s)) << daemon.log();
  ASSERT_TRUE(wait_until([&] { return js.stream_msgs("ROUTES_DLQ") >= 1; }, 30s))
      << "the abandoned job was never dead-lettered\n"
      << daemon.log();
  EXPECT_TRUE(wait_until([&] { return js.stream_msgs("ROUTES") == 0; }, 10s))
      << "ROUTES still holds the abandoned job";
  std::this_thread::sleep_for(1s);  // a second (duplicate) record would show up by now

  const auto dl = dead_letters(js);
  ASSERT_EQ(dl.size(), 1u) << "exactly one dead-letter record";
  const json& r = dl[0];
  const std::string error = r.value("error", "");
  EXPECT_NE(error.find("max_deliver"), std::string::npos) << r.dump();
  EXPECT_EQ(r.value("attempts", 0), 2) << r.dump();
  EXPECT_EQ(r.value("message_id", ""), "ROUTES:1");
  EXPECT_EQ(r.value("tenant_id", ""), "tenant-a");
  EXPECT_EQ(r.value("route_id", 0), 17);
  EXPECT_EQ(r.value("destination_type", ""), "test");
  EXPECT_EQ(r["payload"], json::parse(job)["payload"]);
  EXPECT_EQ(r["job"], json::parse(job)) << "the original job, so it can be replayed";
  EXPECT_EQ(attempts_seen(record), 2u) << "the job was delivered a third time";
  EXPECT_NE(daemon.log().find("dead_lettered_abandoned"), std::string::npos) << daemon.log();
  EXPECT_EQ(health(daemon).value("dead_lettered", -1), 1);
}

}  // namespace
