// mqtt_republish through the public C ABI (PluginHarness) against a real mosquitto started here,
// with a password file. What a user notices: the exact payload on the substituted topic with the
// requested QoS and retain flag, deferrals (no attempt spent) while the broker is unreachable or
// the window is full, retries for publishes that were sent and not acknowledged, permanent failures
// for topics that can never work, and recovery after the broker comes back.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <set>
#include <string>
#include <thread>

#include "mqtt_test_support.hpp"
#include "plugin_harness.hpp"
#include "test_support.hpp"

using namespace rdtest;
using namespace std::chrono_literals;

namespace {

const std::string kUser = "rd-user";
const std::string kPass = "s3cret-Pass";

JobSpec job(const std::string& destination_config,
            const std::string& payload = R"({"device_id":"dev-1","temp":21.5})") {
  JobSpec j;
  j.destination_config_json = destination_config;
  j.payload_json = payload;
  return j;
}

std::string outcome_name(int32_t o) {
  return o == RD_OUTCOME_OK          ? "OK"
         : o == RD_OUTCOME_RETRY     ? "RETRY"
         : o == RD_OUTCOME_PERMANENT ? "PERMANENT"
         : o == RD_OUTCOME_DEFER     ? "DEFER"
                                     : "?";
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Evaluates `result` once (it may be a deliver_sync call).
#define EXPECT_OUTCOME(result, expected)                                        \
  do {                                                                          \
    const std::optional<PluginResult> r_ = (result);                            \
    ASSERT_TRUE(r_.has_value()) << "no completion";                             \
    EXPECT_EQ(outcome_name(r_->outcome), outcome_name(expected)) << r_->reason; \
    EXPECT_EQ(r_->completions, 1);                                              \
  } while (0)

void expect_no_secret(const PluginHarness& h, const std::string& secret) {
  for (const std::string& line : h.logs()) EXPECT_EQ(line.find(secret), std::string::npos) << line;
}

}  // namespace

class MqttPluginTest : public ::testing::Test {
 protected:
  Mosquitto broker{kUser, kPass};
};

TEST_F(MqttPluginTest, DescriptorDeclaresTheContractKeys) {
  PluginHarness h(mqtt_plugin_path(), mqtt_plugin_config(broker.port(), kUser, kPass));
  const rd_plugin_descriptor& d = h.descriptor();
  EXPECT_STREQ(d.name, "mqtt_republish");
  EXPECT_STREQ(d.destination_type, "mqtt_republish");
  std::map<std::string, const rd_config_key*> keys;
  for (uint32_t i = 0; i < d.config_key_count; ++i) keys[d.config_keys[i].name] = &d.config_keys[i];
  ASSERT_TRUE(keys.count("host") && keys.count("port") && keys.count("username") &&
              keys.count("password") && keys.count("qos") && keys.count("topic_prefix") &&
              keys.count("ca_file") && keys.count("tls") && keys.count("max_inflight") &&
              keys.count("publish_timeout") && keys.count("client_id_prefix"));
  EXPECT_STREQ(keys["host"]->env, "MQTT_HOST");
  EXPECT_STREQ(keys["port"]->env, "MQTT_PORT");
  EXPECT_STREQ(keys["port"]->default_value, "1883");
  EXPECT_STREQ(keys["username"]->env, "MQTT_USERNAME");
  EXPECT_STREQ(keys["password"]->env, "MQTT_PASSWORD");
  EXPECT_EQ(keys["password"]->type, RD_CONFIG_SECRET);
  EXPECT_STREQ(keys["qos"]->default_value, "1");
  EXPECT_STREQ(keys["max_inflight"]->default_value, "1000");
  EXPECT_EQ(keys["publish_timeout"]->type, RD_CONFIG_DURATION);
  EXPECT_EQ(keys["tls"]->type, RD_CONFIG_BOOL);
}

TEST_F(MqttPluginTest, PublishesExactPayloadOnSubstitutedTopicAtEachQos) {
  MqttSubscriber sub(broker.port(), "out/#", kUser, kPass);
  PluginHarness h(mqtt_plugin_path(), mqtt_plugin_config(broker.port(), kUser, kPass));
  std::string detail;
  EXPECT_TRUE(h.health(detail)) << detail;

  for (int qos = 0; qos <= 2; ++qos) {
    SCOPED_TRACE("qos " + std::to_string(qos));
    const std::string payload =
        R"({"device_id":"dev-7","temp":21.5,"q":)" + std::to_string(qos) + R"(,"s":"ü \"x\""})";
    JobSpec j = job(
        R"({"topic":"out/{tenant_id}/{device_id}/telemetry","qos":)" + std::to_string(qos) + "}",
        payload);
    EXPECT_OUTCOME(h.deliver_sync(j, 10s), RD_OUTCOME_OK);
    auto msg = sub.next(5s);
    ASSERT_TRUE(msg.has_value()) << "subscriber received nothing";
    EXPECT_EQ(msg->topic, "out/tenant-a/dev-7/telemetry");
    EXPECT_EQ(msg->payload, payload);
    EXPECT_EQ(msg->qos, qos);
    EXPECT_FALSE(msg->retained);
  }
  const auto m = h.metrics();
  EXPECT_EQ(m.at("mqtt_republish_published_total{}"), 3);
  EXPECT_EQ(m.at("mqtt_republish_acked_total{}"), 3);
  EXPECT_EQ(m.at("mqtt_republish_connected{}"), 1);
  expect_no_secret(h, kPass);
}

TEST_F(MqttPluginTest, PluginDefaultQosIsUsedWhenTheRouteHasNone) {
  MqttSubscriber sub(broker.port(), "out/#", kUser, kPass);
  PluginHarness h(mqtt_plugin_path(),
                  mqtt_plugin_config(broker.port(), kUser, kPass, R"("qos":2)"));
  EXPECT_OUTCOME(h.deliver_sync(job(R"({"topic":"out/default"})"), 10s), RD_OUTCOME_OK);
  auto msg = sub.next(5s);
  ASSERT_TRUE(msg.has_value());
  EXPECT_EQ(msg->qos, 2);
}

TEST_F(MqttPluginTest, RetainFlagIsHonoured) {
  PluginHarness h(mqtt_plugin_path(), mqtt_plugin_config(broker.port(), kUser, kPass));
  EXPECT_OUTCOME(h.deliver_sync(job(R"({"topic":"keep/{device_id}","retain":true})"), 10s),
                 RD_OUTCOME_OK);
  EXPECT_OUTCOME(h.deliver_sync(job(R"({"topic":"nokeep/{device_id}"})"), 10s), RD_OUTCOME_OK);

  // Subscribers that arrive later get the retained message only, flagged as retained.
  MqttSubscriber late(broker.port(), "keep/#", kUser, kPass);
  auto msg = late.next(5s);
  ASSERT_TRUE(msg.has_value()) << "retained message not kept by the broker";
  EXPECT_EQ(msg->topic, "keep/dev-1");
  EXPECT_TRUE(msg->retained);
  EXPECT_EQ(msg->payload, R"({"device_id":"dev-1","temp":21.5})");

  MqttSubscriber late2(broker.port(), "nokeep/#", kUser, kPass);
  EXPECT_FALSE(late2.next(500ms).has_value()) << "retain defaults to false";
}

TEST_F(MqttPluginTest, ManyPublishesInFlightAllAcknowledged) {
  MqttSubscriber sub(broker.port(), "bulk/#", kUser, kPass);
  PluginHarness h(mqtt_plugin_path(),
                  mqtt_plugin_config(broker.port(), kUser, kPass, R"("max_inflight":100)"));
  constexpr int kJobs = 2000;
  std::vector<uint64_t> ids;
  for (int i = 0; i < kJobs; ++i) {
    ids.push_back(h.deliver(job(R"({"topic":"bulk/{device_id}"})",
                                R"({"device_id":"d","seq":)" + std::to_string(i) + "}")));
  }
  for (uint64_t id : ids) EXPECT_OUTCOME(h.wait(id, 30s), RD_OUTCOME_OK);
  const auto got = sub.wait_for(kJobs, 30s);
  std::set<std::string> payloads;
  for (const auto& m : got) payloads.insert(m.payload);
  EXPECT_EQ(payloads.size(), static_cast<size_t>(kJobs));
}

TEST_F(MqttPluginTest, WindowOf1000AtQos1And2LosesNothing) {
  // The broker runs with mosquitto's defaults (max_inflight_messages 20, max_queued_messages
  // 1000): a window of 1000 must still get every publish through at QoS 1 and 2, each one
  // acknowledged and received exactly as published.
  for (int qos = 1; qos <= 2; ++qos) {
    SCOPED_TRACE("qos " + std::to_string(qos));
    const std::string prefix = "wide" + std::to_string(qos);
    MqttSubscriber sub(broker.port(), prefix + "/#", kUser, kPass);
    PluginHarness h(mqtt_plugin_path(),
                    mqtt_plugin_config(broker.port(), kUser, kPass, R"("max_inflight":1000)"));
    constexpr int kJobs = 3000;
    std::vector<uint64_t> ids;
    for (int i = 0; i < kJobs; ++i) {
      ids.push_back(h.deliver(
          job(R"({"topic":")" + prefix + R"(/{device_id}","qos":)" + std::to_string(qos) + "}",
              R"({"device_id":"d","seq":)" + std::to_string(i) + "}")));
    }
    for (uint64_t id : ids) EXPECT_OUTCOME(h.wait(id, 60s), RD_OUTCOME_OK);
    const auto got = sub.wait_for(kJobs, 60s);
    std::set<std::string> payloads;
    for (const auto& m : got) payloads.insert(m.payload);
    EXPECT_EQ(payloads.size(), static_cast<size_t>(kJobs));
  }
}

TEST_F(MqttPluginTest, SmallInflightWindowKeepsFlowing) {
  // Publishes beyond the window wait in the plugin and go out as acknowledgements come back.
  PluginHarness h(mqtt_plugin_path(),
                  mqtt_plugin_config(broker.port(), kUser, kPass, R"("max_inflight":5)"));
  const auto start = std::chrono::steady_clock::now();
  std::vector<uint64_t> ids;
  for (int i = 0; i < 500; ++i) ids.push_back(h.deliver(job(R"({"topic":"small/{device_id}"})")));
  for (uint64_t id : ids) EXPECT_OUTCOME(h.wait(id, 30s), RD_OUTCOME_OK);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
}

TEST_F(MqttPluginTest, InvalidTopicsArePermanentAndTheConnectionSurvives) {
  MqttSubscriber sub(broker.port(), "ok/#", kUser, kPass);
  PluginHarness h(mqtt_plugin_path(),
                  mqtt_plugin_config(broker.port(), kUser, kPass, R"("topic_prefix":"")"));
  struct Case {
    std::string config, payload, reason;
  };
  const std::vector<Case> cases = {
      {R"({"topic":""})", R"({"device_id":"d"})", "empty"},
      {R"({})", R"({"device_id":"d"})", "topic is missing"},
      {R"({"topic":"a/+/b"})", R"({"device_id":"d"})", "wildcard"},
      {R"({"topic":"a/#"})", R"({"device_id":"d"})", "wildcard"},
      {R"({"topic":"a/{device_id}"})", R"({"device_id":"x/y"})", "'/'"},
      {R"({"topic":"a/{device_id}"})", R"({"device_id":"+"})", "'+'"},
      {R"({"topic":"a/{device_id}"})", R"({"device_id":"#"})", "'#'"},
      {R"({"topic":"a/{device_id}"})", R"({"device_id":"x\u0000y"})", "NUL"},
      {R"({"topic":"{device_id}"})", R"({"temp":1})", "empty"},
      {R"({"topic":"a/{device_id}"})", R"({"device_id":")" + std::string(70000, 'x') + R"("})",
       "MQTT limit"},
      {R"({"topic":"a","qos":3})", R"({"device_id":"d"})", "qos"},
      {R"({"topic":"a","qos":-1})", R"({"device_id":"d"})", "qos"},
      {R"({"topic":"$SYS/x"})", R"({"device_id":"d"})", "'$'"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.config + " " + c.payload.substr(0, 60));
    auto r = h.deliver_sync(job(c.config, c.payload), 5s);
    EXPECT_OUTCOME(r, RD_OUTCOME_PERMANENT);
    EXPECT_NE(r->reason.find(c.reason), std::string::npos) << r->reason;
    EXPECT_LT(r->reason.size(), 400u);
  }
  // None of that reached the broker or cost the shared connection.
  EXPECT_OUTCOME(h.deliver_sync(job(R"({"topic":"ok/{device_id}"})"), 10s), RD_OUTCOME_OK);
  auto msg = sub.next(5s);
  ASSERT_TRUE(msg.has_value());
  EXPECT_EQ(msg->topic, "ok/dev-1");
  EXPECT_EQ(h.metrics().at("mqtt_republish_reconnects_total{}"), 0);
  EXPECT_EQ(h.metrics().at("mqtt_republish_failed_total{outcome=\"permanent\"}"),
            static_cast<double>(cases.size()));
}

TEST_F(MqttPluginTest, TopicPrefixKeepsEachTenantInItsTree) {
  MqttSubscriber sub(broker.port(), "#", kUser, kPass);
  PluginHarness h(
      mqtt_plugin_path(),
      mqtt_plugin_config(broker.port(), kUser, kPass, R"("topic_prefix":"tenants/{tenant_id}/")"));
  JobSpec own = job(R"({"topic":"tenants/{tenant_id}/{device_id}"})");
  EXPECT_OUTCOME(h.deliver_sync(own, 10s), RD_OUTCOME_OK);
  JobSpec other = job(R"({"topic":"tenants/tenant-b/{device_id}"})");
  auto r = h.deliver_sync(other, 10s);
  EXPECT_OUTCOME(r, RD_OUTCOME_PERMANENT);
  EXPECT_NE(r->reason.find("outside this tenant's tree"), std::string::npos) << r->reason;

  auto msg = sub.next(5s);
  ASSERT_TRUE(msg.has_value());
  EXPECT_EQ(msg->topic, "tenants/tenant-a/dev-1");
  EXPECT_FALSE(sub.next(500ms).has_value()) << "nothing may reach tenant-b's tree";
}

TEST_F(MqttPluginTest, WrongPasswordRetriesWithReasonAndNoSecretInLogs) {
  const std::string wrong = "definitely-Wrong-pw";
  PluginHarness h(mqtt_plugin_path(), mqtt_plugin_config(broker.port(), kUser, wrong));
  std::string detail;
  EXPECT_FALSE(h.health(detail));
  EXPECT_NE(detail.find("not authorized"), std::string::npos) << detail;
  // The broker answered and refused us: a real try (attempts run out, then the dead-letter queue
  // shows why), not a deferral.
  auto r = h.deliver_sync(job(R"({"topic":"x/{device_id}"})"), 10s);
  EXPECT_OUTCOME(r, RD_OUTCOME_RETRY);
  EXPECT_NE(r->reason.find("not authorized"), std::string::npos) << r->reason;
  EXPECT_GT(r->retry_after_ms, 0) << "suggests a delay while disconnected";
  expect_no_secret(h, wrong);
}

TEST(MqttPluginNoBroker, BrokerUnreachableFailsFastAsDefer) {
  const int port = free_port();  // nothing listens here
  PluginHarness h(mqtt_plugin_path(), mqtt_plugin_config(port, "", "", R"("connect_timeout":500)"));
  std::string detail;
  EXPECT_FALSE(h.health(detail));
  const auto start = std::chrono::steady_clock::now();
  auto r = h.deliver_sync(job(R"({"topic":"x"})"), 10s);
  // The broker could not be tried: no attempt is spent.
  EXPECT_OUTCOME(r, RD_OUTCOME_DEFER);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 200ms) << "must not pile up or wait";
  const std::string endpoint = "127.0.0.1:" + std::to_string(port);
  EXPECT_TRUE(contains(r->reason, "MQTT broker " + endpoint + " not connected since "))
      << r->reason;
  EXPECT_TRUE(contains(r->reason, "Connection refused")) << "the last connect error: " << r->reason;
  EXPECT_EQ(r->retry_after_ms, -1) << "the host's growing deferral delay applies";
  EXPECT_EQ(h.metrics().at("mqtt_republish_failed_total{outcome=\"defer\"}"), 1);
  EXPECT_EQ(h.metrics().at("mqtt_republish_failed_total{outcome=\"retry\"}"), 0);
}

TEST(MqttPluginNoBroker, DestinationKeyIsTheBroker) {
  const int port = free_port();
  PluginHarness h(mqtt_plugin_path(), mqtt_plugin_config(port, "", "", R"("connect_timeout":0)"));
  ASSERT_NE(h.descriptor().xDestination, nullptr);
  // Every route shares the one broker, so one key (one breaker for a broker outage).
  const std::string key = "mqtt://127.0.0.1:" + std::to_string(port);
  EXPECT_EQ(h.destination(job(R"({"topic":"a/{device_id}"})")), key);
  JobSpec other = job(R"({"topic":"b","qos":2})");
  other.tenant_id = "tenant-b";
  other.route_id = 99;
  EXPECT_EQ(h.destination(other), key);

  PluginHarness unconfigured(mqtt_plugin_path(), R"({"host":"","port":1883})");
  EXPECT_EQ(unconfigured.destination(job(R"({"topic":"x"})")), "") << "no broker, no key";
}

TEST(MqttPluginNoBroker, EmptyHostLoadsButIsUnavailableAndRetries) {
  PluginHarness h(mqtt_plugin_path(), R"({"host":"","port":1883,"username":"","password":""})");
  std::string detail;
  EXPECT_FALSE(h.health(detail));
  EXPECT_NE(detail.find("not configured"), std::string::npos) << detail;
  auto r = h.deliver_sync(job(R"({"topic":"x"})"), 5s);
  EXPECT_OUTCOME(r, RD_OUTCOME_RETRY);
  EXPECT_NE(r->reason.find("MQTT is not configured"), std::string::npos) << r->reason;
}

TEST(MqttPluginNoBroker, BadConfigIsACreateErrorNamingTheKey) {
  try {
    PluginHarness h(mqtt_plugin_path(), R"({"host":"127.0.0.1","qos":5})");
    FAIL() << "created with qos 5";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("plugins.mqtt_republish.qos"), std::string::npos)
        << e.what();
  }
}

TEST(MqttPluginNoBroker, JobsWaitingForAFullWindowAreDeferredNotRetried) {
  // One publish fills the window and is never acknowledged; the next job waits in the plugin's
  // queue and is never sent: when its time is up it is deferred (saturated), not a spent attempt.
  SilentBroker silent;
  PluginHarness h(
      mqtt_plugin_path(),
      mqtt_plugin_config(silent.port(), "", "", R"("publish_timeout":700,"max_inflight":1)"));
  std::string detail;
  ASSERT_TRUE(h.health(detail)) << detail;
  const uint64_t sent = h.deliver(job(R"({"topic":"x","qos":1})"));
  const uint64_t queued = h.deliver(job(R"({"topic":"x","qos":1})"));
  auto r = h.wait(sent, 10s);
  EXPECT_OUTCOME(r, RD_OUTCOME_RETRY);
  EXPECT_TRUE(contains(r->reason, "no acknowledgement")) << r->reason;
  r = h.wait(queued, 10s);
  EXPECT_OUTCOME(r, RD_OUTCOME_DEFER);
  EXPECT_TRUE(contains(r->reason, "127.0.0.1:" + std::to_string(silent.port()) + " saturated"))
      << r->reason;
  EXPECT_TRUE(contains(r->reason, "max_inflight 1")) << r->reason;
  EXPECT_EQ(h.metrics().at("mqtt_republish_published_total{}"), 1) << "the queued job was sent";
}

TEST(MqttPluginNoBroker, ConnectionLossRetriesWhatWasSentAndDefersWhatWasNot) {
  auto silent = std::make_unique<SilentBroker>();
  const int port = silent->port();
  PluginHarness h(mqtt_plugin_path(), mqtt_plugin_config(port, "", "",
                                                         R"("publish_timeout":20000,)"
                                                         R"("max_inflight":1,"reconnect_min":5000,)"
                                                         R"("reconnect_max":5000)"));
  std::string detail;
  ASSERT_TRUE(h.health(detail)) << detail;
  const size_t connect_bytes = silent->bytes_received();  // CONNECT: read before CONNACK
  const uint64_t sent = h.deliver(job(R"({"topic":"x","qos":1})"));
  const uint64_t queued = h.deliver(job(R"({"topic":"x","qos":1})"));
  ASSERT_TRUE(wait_until([&] { return silent->bytes_received() > connect_bytes; }, 5s))
      << "the first publish never reached the broker";
  silent.reset();  // closes the connection with the publish unacknowledged

  auto r = h.wait(sent, 10s);
  EXPECT_OUTCOME(r, RD_OUTCOME_RETRY);  // sent: the broker may have it (clean session, no resend)
  EXPECT_TRUE(contains(r->reason, "lost before acknowledgement")) << r->reason;
  r = h.wait(queued, 10s);
  EXPECT_OUTCOME(r, RD_OUTCOME_DEFER);  // never left the plugin
  EXPECT_TRUE(
      contains(r->reason, "MQTT broker 127.0.0.1:" + std::to_string(port) + " not connected since"))
      << r->reason;
  EXPECT_TRUE(contains(r->reason, "connection lost")) << r->reason;
  // And while it stays away, new jobs are deferred at once.
  EXPECT_OUTCOME(h.deliver_sync(job(R"({"topic":"x"})"), 5s), RD_OUTCOME_DEFER);
}

TEST(MqttPluginNoBroker, Qos1IsOkOnlyAfterTheBrokerAcknowledges) {
  // The broker accepts the connection and the bytes but never sends PUBACK.
  SilentBroker silent;
  PluginHarness h(mqtt_plugin_path(),
                  mqtt_plugin_config(silent.port(), "", "", R"("publish_timeout":700)"));
  std::string detail;
  ASSERT_TRUE(h.health(detail)) << detail;
  const auto start = std::chrono::steady_clock::now();
  auto r = h.deliver_sync(job(R"({"topic":"x","qos":1})"), 10s);
  EXPECT_OUTCOME(r, RD_OUTCOME_RETRY);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 600ms);
  EXPECT_NE(r->reason.find("no acknowledgement"), std::string::npos) << r->reason;
  EXPECT_GT(silent.bytes_received(), 0u);

  // QoS 0 has no acknowledgement: ok once written.
  EXPECT_OUTCOME(h.deliver_sync(job(R"({"topic":"x","qos":0})"), 5s), RD_OUTCOME_OK);
}

TEST_F(MqttPluginTest, BrokerRestartRecoversAndEveryJobArrives) {
  auto sub = std::make_unique<MqttSubscriber>(broker.port(), "restart/#", kUser, kPass);
  PluginHarness h(mqtt_plugin_path(), mqtt_plugin_config(broker.port(), kUser, kPass));
  constexpr int kJobs = 60;
  std::set<std::string> received;
  const auto drain = [&](MqttSubscriber& s, std::chrono::milliseconds t) {
    while (auto m = s.next(t)) received.insert(m->payload);
  };
  const auto payload = [](int i) { return R"({"device_id":"d","seq":)" + std::to_string(i) + "}"; };

  // Phase 1: the first third goes through normally.
  for (int i = 0; i < kJobs / 3; ++i) {
    EXPECT_OUTCOME(h.deliver_sync(job(R"({"topic":"restart/{device_id}"})", payload(i)), 10s),
                   RD_OUTCOME_OK);
  }
  drain(*sub, 300ms);

  // Phase 2: broker stops. Jobs fail fast as DEFER; a host-like loop redelivers each until ok.
  broker.stop();
  ASSERT_TRUE(wait_until(
      [&] {
        std::string d;
        return !h.health(d);
      },
      5s))
      << "health must report the lost connection";
  std::atomic<bool> subscriber_ready{false};
  std::atomic<int> retries{0}, deferred{0};
  std::thread host([&] {
    for (int i = kJobs / 3; i < kJobs; ++i) {
      const auto deadline = std::chrono::steady_clock::now() + 60s;
      while (std::chrono::steady_clock::now() < deadline) {
        auto r = h.deliver_sync(job(R"({"topic":"restart/{device_id}"})", payload(i)), 15s);
        if (r && r->outcome == RD_OUTCOME_OK) break;
        ++(r && r->outcome == RD_OUTCOME_DEFER ? deferred : retries);
        // Redelivery waits for the new subscriber so it can see every acknowledged job.
        std::this_thread::sleep_for(200ms);
        while (!subscriber_ready) std::this_thread::sleep_for(20ms);
      }
    }
  });
  std::this_thread::sleep_for(1500ms);
  broker.start();
  sub = std::make_unique<MqttSubscriber>(broker.port(), "restart/#", kUser, kPass);
  subscriber_ready = true;
  host.join();
  drain(*sub, 1000ms);

  EXPECT_GT(deferred.load(), 0) << "jobs during the outage must have been deferred";
  EXPECT_EQ(retries.load(), 0) << "no attempt may be spent while the broker is down";
  for (int i = 0; i < kJobs; ++i) EXPECT_TRUE(received.count(payload(i))) << "missing " << i;
  std::string detail;
  EXPECT_TRUE(h.health(detail)) << detail;
  EXPECT_GE(h.metrics().at("mqtt_republish_reconnects_total{}"), 1);
}

TEST_F(MqttPluginTest, BrokerDownAtStartConnectsOnceItIsUp) {
  // As in a compose file where route-delivery starts before the broker.
  broker.stop();
  PluginHarness h(mqtt_plugin_path(),
                  mqtt_plugin_config(broker.port(), kUser, kPass, R"("connect_timeout":1000)"));
  std::string detail;
  EXPECT_FALSE(h.health(detail));
  auto r = h.deliver_sync(job(R"({"topic":"late/{device_id}"})"), 5s);
  EXPECT_OUTCOME(r, RD_OUTCOME_DEFER);
  EXPECT_TRUE(contains(
      r->reason, "MQTT broker 127.0.0.1:" + std::to_string(broker.port()) + " not connected since"))
      << r->reason;
  EXPECT_TRUE(contains(r->reason, "cannot connect")) << r->reason;
  EXPECT_EQ(h.destination(job(R"({"topic":"late/x"})")),
            "mqtt://127.0.0.1:" + std::to_string(broker.port()));

  broker.start();
  MqttSubscriber sub(broker.port(), "late/#", kUser, kPass);
  ASSERT_TRUE(wait_until([&] { return h.health(detail); }, 20s)) << detail;
  EXPECT_OUTCOME(h.deliver_sync(job(R"({"topic":"late/{device_id}"})"), 10s), RD_OUTCOME_OK);
  auto msg = sub.next(5s);
  ASSERT_TRUE(msg.has_value());
  EXPECT_EQ(msg->topic, "late/dev-1");
}

TEST_F(MqttPluginTest, TwoInstancesDoNotKickEachOtherOff) {
  MqttSubscriber sub(broker.port(), "two/#", kUser, kPass);
  PluginHarness a(mqtt_plugin_path(), mqtt_plugin_config(broker.port(), kUser, kPass));
  PluginHarness b(mqtt_plugin_path(), mqtt_plugin_config(broker.port(), kUser, kPass));
  for (int i = 0; i < 20; ++i) {
    EXPECT_OUTCOME(a.deliver_sync(job(R"({"topic":"two/a"})"), 10s), RD_OUTCOME_OK);
    EXPECT_OUTCOME(b.deliver_sync(job(R"({"topic":"two/b"})"), 10s), RD_OUTCOME_OK);
  }
  EXPECT_EQ(sub.wait_for(40, 10s).size(), 40u);
  EXPECT_EQ(a.metrics().at("mqtt_republish_reconnects_total{}"), 0);
  EXPECT_EQ(b.metrics().at("mqtt_republish_reconnects_total{}"), 0);
}

TEST(MqttPluginTls, CaFileTurnsOnTlsAndVerifiesTheBroker) {
  TlsMosquitto broker;
  MqttSubscriber sub(broker.plain_port(), "tls/#");
  PluginHarness h(
      mqtt_plugin_path(),
      mqtt_plugin_config(broker.tls_port(), "", "", R"("ca_file":")" + broker.ca_file() + R"(")"));
  std::string detail;
  ASSERT_TRUE(h.health(detail)) << detail << "\n" << broker.log();
  EXPECT_OUTCOME(h.deliver_sync(job(R"({"topic":"tls/{device_id}"})"), 10s), RD_OUTCOME_OK);
  auto msg = sub.next(5s);
  ASSERT_TRUE(msg.has_value());
  EXPECT_EQ(msg->topic, "tls/dev-1");
  EXPECT_EQ(msg->payload, R"({"device_id":"dev-1","temp":21.5})");
}

TEST(MqttPluginTls, BrokerSignedByAnotherCaIsRefused) {
  TlsMosquitto broker;
  PluginHarness h(mqtt_plugin_path(), mqtt_plugin_config(broker.tls_port(), "", "",
                                                         R"("connect_timeout":2000,"ca_file":")" +
                                                             broker.other_ca_file() + R"(")"));
  std::string detail;
  EXPECT_FALSE(h.health(detail));
  auto r = h.deliver_sync(job(R"({"topic":"tls/{device_id}"})"), 5s);
  EXPECT_OUTCOME(r, RD_OUTCOME_DEFER);  // no TLS session: nothing was published
  EXPECT_NE(r->reason.find("not connected"), std::string::npos) << r->reason;
}

TEST(MqttPluginTls, PlainTcpClientCannotTalkToTheTlsListener) {
  // Without tls/ca_file the plugin speaks plain MQTT; it must not report success.
  TlsMosquitto broker;
  PluginHarness h(mqtt_plugin_path(),
                  mqtt_plugin_config(broker.tls_port(), "", "", R"("connect_timeout":1000)"));
  std::string detail;
  EXPECT_FALSE(h.health(detail));
  EXPECT_OUTCOME(h.deliver_sync(job(R"({"topic":"tls/x"})"), 5s), RD_OUTCOME_DEFER);
}

TEST(MqttPluginTls, CaFileThatDisappearsNeverFallsBackToPlainText) {
  // A plain-TCP broker: a TLS client cannot talk to it. The client is set up again before every
  // connection attempt; once ca_file is gone that fails, and it must not then try without TLS.
  Mosquitto plain;
  TlsMosquitto tls;  // for a valid CA file
  TempDir dir("rdtest-mqtt-ca");
  const std::string ca = dir.file("ca.pem");
  std::filesystem::copy_file(tls.ca_file(), ca);
  PluginHarness h(mqtt_plugin_path(),
                  mqtt_plugin_config(plain.port(), "", "",
                                     R"("connect_timeout":1000,"reconnect_min":1000,)"
                                     R"("reconnect_max":1000,"ca_file":")" +
                                         ca + R"(")"));
  std::string detail;
  EXPECT_FALSE(h.health(detail)) << detail;
  std::filesystem::remove(ca);
  ASSERT_TRUE(wait_until(
      [&] {
        h.health(detail);
        return detail.find("ca_file") != std::string::npos;
      },
      20s))
      << detail;
  EXPECT_FALSE(h.health(detail)) << "connected without TLS: " << detail;
  EXPECT_NE(detail.find("not connected"), std::string::npos) << detail;
  // The client cannot be set up: the broker cannot be tried.
  auto r = h.deliver_sync(job(R"({"topic":"x"})"), 5s);
  EXPECT_OUTCOME(r, RD_OUTCOME_DEFER);
  EXPECT_TRUE(contains(r->reason, "ca_file")) << r->reason;
}

TEST(MqttPluginTls, UnreadableCaFileIsACreateError) {
  try {
    PluginHarness h(mqtt_plugin_path(), R"({"host":"127.0.0.1","ca_file":"/nonexistent/ca.pem"})");
    FAIL() << "created with a missing ca_file";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("plugins.mqtt_republish.ca_file"), std::string::npos)
        << e.what();
  }
}
