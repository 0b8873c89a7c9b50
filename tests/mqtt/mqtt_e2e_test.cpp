// End to end: nats-server (JetStream) -> route-delivery daemon -> mqtt_republish -> mosquitto.
// The host owns retry and dead-lettering; these tests check what an operator sees: jobs arrive on
// the broker, a wrong password ends in the ROUTES_DLQ stream with the reason after the retries, a
// broker restart shorter than the retry window loses nothing, a 30 s broker outage much longer
// than the retry window loses nothing either (its jobs are deferred, no attempt spent), and
// invalid topics are dead-lettered on the first attempt.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "mqtt_test_support.hpp"
#include "test_support.hpp"

using namespace rdtest;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

const std::string kUser = "rd-e2e";
const std::string kPass = "e2e-Secret-9";

std::string daemon_config(const NatsServer& nats, int max_deliver,
                          const std::string& mqtt_host = "127.0.0.1") {
  return "nats:\n"
         "  url: " +
         nats.url() +
         "\n"
         "  max_deliver: " +
         std::to_string(max_deliver) +
         "\n"
         "  backoff: [200ms]\n"
         "  ack_wait: 10s\n"
         "log:\n"
         "  level: debug\n"
         "plugins:\n"
         "  mqtt_republish:\n"
         "    host: \"" +
         mqtt_host +
         "\"\n"
         "    username: " +
         kUser +
         "\n"
         "    password: ${MQTT_PASSWORD}\n"
         "    publish_timeout: 3s\n";
}

// The broker port comes from the environment, as in a container (MQTT_PORT overrides the file).
std::map<std::string, std::string> daemon_env(int mqtt_port, const std::string& password) {
  return {{"MQTT_PORT", std::to_string(mqtt_port)}, {"MQTT_PASSWORD", password}};
}

std::string mqtt_job(const std::string& destination_config, const std::string& device,
                     int seq = 0) {
  return make_job("tenant-a", 7, "mqtt_republish", destination_config,
                  R"({"device_id":")" + device + R"(","seq":)" + std::to_string(seq) + "}",
                  "tenant-a/" + device + "/telemetry");
}

// The mqtt_republish entry of the daemon's /health "plugins" list (null when absent).
json plugin_health(const Daemon& daemon) {
  const HttpResponse r = daemon.get("/health");
  const json j = json::parse(r.body, nullptr, false);
  if (j.is_discarded() || !j.contains("plugins")) return nullptr;
  for (const json& p : j["plugins"]) {
    if (p.value("name", "") == "mqtt_republish") return p;
  }
  return nullptr;
}

std::vector<json> dead_letters(JsClient& js) {
  std::vector<json> out;
  for (const std::string& m : js.stream_messages("ROUTES_DLQ")) out.push_back(json::parse(m));
  return out;
}

class MqttE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::access(daemon_path().c_str(), X_OK), 0)
        << daemon_path() << " is missing: build the route-delivery target";
    js = std::make_unique<JsClient>(nats.url());
    js->ensure_routes_stream();
  }

  void start_daemon(const std::string& password, int max_deliver) {
    daemon = std::make_unique<Daemon>(daemon_config(nats, max_deliver),
                                      daemon_env(broker.port(), password));
    ASSERT_TRUE(daemon->wait_ready(20s)) << daemon->log();
  }

  void TearDown() override {
    if (HasFailure() && daemon) std::cerr << "---- daemon log ----\n" << daemon->log() << "\n";
    daemon.reset();
  }

  NatsServer nats;
  Mosquitto broker{kUser, kPass};
  std::unique_ptr<JsClient> js;
  std::unique_ptr<Daemon> daemon;
};

}  // namespace

TEST_F(MqttE2eTest, JobsArriveOnTheBrokerWithTheExactPayload) {
  MqttSubscriber sub(broker.port(), "out/#", kUser, kPass);
  start_daemon(kPass, 3);
  const std::string job = mqtt_job(R"({"topic":"out/{tenant_id}/{device_id}","qos":1})", "dev-7");
  js->publish("routes.tenant-a", job);
  auto msg = sub.next(15s);
  ASSERT_TRUE(msg.has_value()) << daemon->log();
  EXPECT_EQ(plugin_health(*daemon).value("available", false), true) << plugin_health(*daemon);
  EXPECT_EQ(msg->topic, "out/tenant-a/dev-7");
  EXPECT_EQ(json::parse(msg->payload), json::parse(job)["payload"]);
  EXPECT_EQ(msg->qos, 1);
  EXPECT_TRUE(wait_until([&] { return js->stream_msgs("ROUTES") == 0; }, 10s))
      << "the job was not acknowledged";
  EXPECT_TRUE(dead_letters(*js).empty());
  EXPECT_EQ(daemon->log().find(kPass), std::string::npos) << "password leaked into the log";
  daemon->stop();  // SIGTERM: the plugin disconnects and the daemon exits cleanly
  EXPECT_EQ(daemon->exit_code(), std::optional<int>(0)) << daemon->log();
}

TEST_F(MqttE2eTest, WrongPasswordIsRetriedThenDeadLetteredWithTheReason) {
  const std::string wrong = "Wrong-Password-1";
  start_daemon(wrong, 3);
  const json health = plugin_health(*daemon);
  EXPECT_EQ(health.value("available", true), false) << health;
  EXPECT_NE(health.value("detail", "").find("not authorized"), std::string::npos) << health;
  js->publish("routes.tenant-a", mqtt_job(R"({"topic":"out/{device_id}"})", "dev-1"));
  ASSERT_TRUE(wait_until([&] { return js->stream_msgs("ROUTES_DLQ") >= 1; }, 30s)) << daemon->log();
  const auto dl = dead_letters(*js);
  ASSERT_EQ(dl.size(), 1u);
  const std::string error = dl[0].value("error", "");
  EXPECT_NE(error.find("not authorized"), std::string::npos) << error;
  EXPECT_EQ(dl[0].value("attempts", 0), 3) << "retried up to max_deliver before dead-lettering";
  EXPECT_EQ(dl[0].value("destination_type", ""), "mqtt_republish");
  const std::string log = daemon->log();
  EXPECT_EQ(log.find(wrong), std::string::npos) << "password leaked into the log";
}

TEST_F(MqttE2eTest, InvalidTopicsAreDeadLetteredAtOnce) {
  MqttSubscriber sub(broker.port(), "#", kUser, kPass);
  start_daemon(kPass, 5);
  js->publish("routes.tenant-a", mqtt_job(R"({"topic":"out/{device_id}"})", "a/b"));
  js->publish("routes.tenant-a", mqtt_job(R"({"topic":"out/+/x"})", "d"));
  js->publish("routes.tenant-a", mqtt_job(R"({"topic":""})", "d"));
  js->publish("routes.tenant-a", mqtt_job(R"({"topic":"out/{device_id}"})", "#"));
  js->publish("routes.tenant-a", mqtt_job(R"({"topic":"out/{device_id}","qos":7})", "d"));
  ASSERT_TRUE(wait_until([&] { return js->stream_msgs("ROUTES_DLQ") >= 5; }, 20s)) << daemon->log();
  std::set<std::string> reasons;
  for (const json& d : dead_letters(*js)) {
    EXPECT_EQ(d.value("attempts", 0), 1) << d.dump() << ": permanent failures are not retried";
    reasons.insert(d.value("error", ""));
  }
  const auto has = [&](const std::string& part) {
    for (const auto& r : reasons)
      if (r.find(part) != std::string::npos) return true;
    return false;
  };
  EXPECT_TRUE(has("'/'")) << ::testing::PrintToString(reasons);
  EXPECT_TRUE(has("wildcard")) << ::testing::PrintToString(reasons);
  EXPECT_TRUE(has("empty")) << ::testing::PrintToString(reasons);
  EXPECT_TRUE(has("'#'")) << ::testing::PrintToString(reasons);
  EXPECT_TRUE(has("qos")) << ::testing::PrintToString(reasons);
  EXPECT_FALSE(sub.next(300ms).has_value()) << "nothing invalid may reach the broker";

  // The shared connection is still fine for valid jobs.
  js->publish("routes.tenant-a", mqtt_job(R"({"topic":"out/{device_id}"})", "ok-1"));
  auto msg = sub.next(15s);
  ASSERT_TRUE(msg.has_value());
  EXPECT_EQ(msg->topic, "out/ok-1");
}

TEST_F(MqttE2eTest, BrokerRestartMidStreamLosesNothing) {
  constexpr int kJobs = 150;
  std::set<std::string> seen;  // topics seen by a subscriber
  auto live = std::make_unique<MqttSubscriber>(broker.port(), "restart/#", kUser, kPass);
  start_daemon(kPass, 30);  // retry window (30 attempts, >= 1 s apart) >> the 2 s outage
  // Retained, one topic per job: after the restart a fresh subscriber sees every job the new broker
  // instance received, and the live subscriber covers those acknowledged before the stop.
  const std::string config = R"({"topic":"restart/{device_id}","qos":1,"retain":true})";

  std::atomic<int> published{0};
  std::thread producer([&] {
    for (int i = 0; i < kJobs; ++i) {
      js->publish("routes.tenant-a", mqtt_job(config, "d" + std::to_string(i), i));
      ++published;
      std::this_thread::sleep_for(40ms);  // about 6 s of traffic
    }
  });
  // Collects for `d` in total (traffic never pauses, so "until quiet" would wait for the end).
  const auto collect = [&](MqttSubscriber& s, std::chrono::milliseconds d) {
    const auto until = std::chrono::steady_clock::now() + d;
    while (std::chrono::steady_clock::now() < until) {
      if (auto m = s.next(50ms)) seen.insert(m->topic);
    }
  };
  ASSERT_TRUE(wait_until(
      [&] {
        collect(*live, 50ms);
        return seen.size() >= 10;
      },
      20s))
      << "traffic was not flowing before the stop\n"
      << daemon->log();
  broker.stop();  // mid-stream
  const int published_at_stop = published;
  collect(*live, 300ms);  // whatever reached the subscriber before the stop
  live.reset();
  std::this_thread::sleep_for(2s);
  broker.start();
  producer.join();
  EXPECT_LT(published_at_stop, kJobs - 40) << "the outage must fall inside the stream";

  ASSERT_TRUE(wait_until([&] { return js->stream_msgs("ROUTES") == 0; }, 60s))
      << "jobs still pending after the broker came back\n"
      << daemon->log();
  MqttSubscriber retained(broker.port(), "restart/#", kUser, kPass);
  collect(retained, 1500ms);
  std::vector<int> missing;
  for (int i = 0; i < kJobs; ++i) {
    if (seen.count("restart/d" + std::to_string(i)) == 0) missing.push_back(i);
  }
  EXPECT_TRUE(missing.empty()) << ::testing::PrintToString(missing);
  const auto dl = js->stream_messages("ROUTES_DLQ");
  EXPECT_TRUE(dl.empty()) << dl.size() << " dead-lettered, first: " << dl.front();
  const json health = json::parse(daemon->get("/health").body, nullptr, false);
  // Jobs that arrived during the outage are deferred (no attempt spent); publishes in flight at
  // the stop are retried.
  EXPECT_GT(health.value("retried", 0) + health.value("deferred", 0), 0)
      << "jobs during the outage were deferred or retried: " << health;
  EXPECT_EQ(health.value("dead_lettered", -1), 0) << health;
  EXPECT_NE(daemon->log().find("mqtt_reconnected"), std::string::npos);
}

// The issue's done-when: the broker is stopped for 30 s while jobs keep arriving (10 a second),
// then started again on the same port. max_deliver 5 with a 200 ms backoff is spent in about a
// second, so only jobs that are deferred (no attempt spent) while the broker is away survive the
// outage: every job reaches the broker, none is dead-lettered.
TEST_F(MqttE2eTest, BrokerStoppedThirtySecondsWithJobsArrivingIsDeliveredAfterItReturns) {
  constexpr auto kOutage = 30s;
  constexpr auto kEvery = 100ms;  // 10 jobs a second, before, during and after the outage
  std::set<std::string> seen;     // topics seen by a subscriber
  auto live = std::make_unique<MqttSubscriber>(broker.port(), "outage/#", kUser, kPass);
  start_daemon(kPass, 5);
  // Retained, one topic per job: the broker keeps no state across its restart (no persistence),
  // so a fresh subscriber after it sees every job published to the new instance, and the live one
  // covers those before the stop.
  const std::string config = R"({"topic":"outage/{device_id}","qos":1,"retain":true})";

  std::atomic<bool> producing{true};
  std::atomic<int> published{0};
  std::thread producer([&] {
    for (int i = 0; producing; ++i) {
      js->publish("routes.tenant-a", mqtt_job(config, "d" + std::to_string(i), i));
      ++published;
      std::this_thread::sleep_for(kEvery);
    }
  });
  struct StopProducer {  // also on a failed assertion
    std::atomic<bool>& flag;
    std::thread& t;
    ~StopProducer() {
      flag = false;
      if (t.joinable()) t.join();
    }
  } stop_producer{producing, producer};
  const auto collect = [&](MqttSubscriber& s, std::chrono::milliseconds d) {
    const auto until = std::chrono::steady_clock::now() + d;
    while (std::chrono::steady_clock::now() < until) {
      if (auto m = s.next(50ms)) seen.insert(m->topic);
    }
  };
  ASSERT_TRUE(wait_until(
      [&] {
        collect(*live, 50ms);
        return seen.size() >= 20;
      },
      20s))
      << "traffic was not flowing before the stop\n"
      << daemon->log();
  broker.stop();
  const int published_at_stop = published;
  collect(*live, 300ms);  // whatever reached the subscriber before the stop
  live.reset();
  std::this_thread::sleep_for(kOutage);
  const int published_in_outage = published - published_at_stop;
  const json during = json::parse(daemon->get("/health").body, nullptr, false);
  broker.start();  // same port
  const auto back = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(3s);  // jobs keep arriving after the broker is back
  producing = false;
  producer.join();
  const int total = published;
  EXPECT_GE(published_in_outage, 250) << "jobs must keep arriving during the outage";

  ASSERT_TRUE(wait_until([&] { return js->stream_msgs("ROUTES") == 0; }, 60s))
      << js->stream_msgs("ROUTES") << " jobs still pending 60 s after the broker came back\n"
      << daemon->log();
  const double drained_after =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - back).count();
  MqttSubscriber retained(broker.port(), "outage/#", kUser, kPass);
  collect(retained, 2s);
  std::vector<int> missing;
  for (int i = 0; i < total; ++i) {
    if (seen.count("outage/d" + std::to_string(i)) == 0) missing.push_back(i);
  }
  EXPECT_TRUE(missing.empty()) << missing.size() << " of " << total
                               << " jobs never reached the broker: "
                               << ::testing::PrintToString(missing);
  const auto dl = js->stream_messages("ROUTES_DLQ");
  EXPECT_TRUE(dl.empty()) << dl.size() << " dead-lettered, first: " << dl.front();
  const json health = json::parse(daemon->get("/health").body, nullptr, false);
  EXPECT_GT(health.value("deferred", 0), 0) << health;
  EXPECT_EQ(health.value("dead_lettered", -1), 0) << health;
  EXPECT_GE(health.value("delivered", 0), total) << health;
  // While the broker was away its destination was reported (circuit open or failing).
  bool reported = false;
  const json none = json::array();
  for (const json& d : during.is_object() ? during.value("destinations", none) : none) {
    reported |= d.value("destination", "").rfind("mqtt_republish|mqtt://", 0) == 0;
  }
  EXPECT_TRUE(reported) << "/health during the outage: " << during;
  EXPECT_NE(daemon->log().find("mqtt_reconnected"), std::string::npos);
  std::cout << total << " jobs (" << published_in_outage << " during the " << kOutage.count()
            << " s outage), all settled " << drained_after << " s after the broker came back; "
            << "/health deferred " << health.value("deferred", 0) << ", retried "
            << health.value("retried", 0) << "\n";
}

TEST_F(MqttE2eTest, EmptyHostIsUnavailableAndJobsAreDeadLetteredWithTheReason) {
  daemon = std::make_unique<Daemon>(daemon_config(nats, 2, ""),
                                    std::map<std::string, std::string>{{"MQTT_PASSWORD", "x"}});
  ASSERT_TRUE(daemon->wait_ready(20s)) << daemon->log();
  const json health = plugin_health(*daemon);
  ASSERT_FALSE(health.is_null()) << daemon->get("/health").body;
  EXPECT_EQ(health.value("available", true), false) << health;
  EXPECT_NE(health.value("detail", "").find("not configured"), std::string::npos) << health;
  js->publish("routes.tenant-a", mqtt_job(R"({"topic":"out/{device_id}"})", "d"));
  ASSERT_TRUE(wait_until([&] { return js->stream_msgs("ROUTES_DLQ") >= 1; }, 30s)) << daemon->log();
  const auto dl = dead_letters(*js);
  ASSERT_EQ(dl.size(), 1u);
  EXPECT_NE(dl[0].value("error", "").find("MQTT is not configured"), std::string::npos)
      << dl[0].dump();
  EXPECT_EQ(dl[0].value("attempts", 0), 2);
}

TEST_F(MqttE2eTest, TwoDaemonsShareTheBrokerWithoutKickingEachOtherOff) {
  MqttSubscriber sub(broker.port(), "pair/#", kUser, kPass);
  start_daemon(kPass, 5);
  Daemon second(daemon_config(nats, 5), daemon_env(broker.port(), kPass));
  ASSERT_TRUE(second.wait_ready(20s)) << second.log();
  constexpr int kJobs = 200;
  for (int i = 0; i < kJobs; ++i) {
    js->publish("routes.tenant-a",
                mqtt_job(R"({"topic":"pair/{device_id}"})", "d" + std::to_string(i), i));
  }
  std::set<std::string> topics;
  for (const auto& m : sub.wait_for(kJobs, 30s)) topics.insert(m.topic);
  EXPECT_EQ(topics.size(), static_cast<size_t>(kJobs));
  // Same broker, same credentials, both connected the whole time: distinct client ids.
  for (const std::string& log : {daemon->log(), second.log()}) {
    EXPECT_EQ(log.find("mqtt_connection_lost"), std::string::npos) << log;
  }
  EXPECT_EQ(plugin_health(*daemon).value("available", false), true);
  EXPECT_EQ(plugin_health(second).value("available", false), true);
}

TEST_F(MqttE2eTest, CheckConfigRedactsThePassword) {
  TempDir dir("rdtest-mqtt-check");
  write_file(dir.file("config.yaml"), daemon_config(nats, 3));
  const CommandResult r =
      run_command({daemon_path(), "--config", dir.file("config.yaml"), "--check-config"},
                  daemon_env(broker.port(), kPass));
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("mqtt_republish"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find(kPass), std::string::npos) << "password printed: " << r.output;
}
