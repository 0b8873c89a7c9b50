// End to end: jobs published to JetStream, consumed by the real daemon (build/bin/route-delivery),
// delivered by the bundled webhook plugin to a local HTTP receiver; retries, back-off and
// dead-lettering (to the ROUTES_DLQ stream) are the host's, outcomes and reasons the plugin's.
#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "http_receiver.hpp"
#include "test_support.hpp"

namespace rdtest {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

const std::string kPayload = R"({"device_id":"dev-7","temp":21.5})";

// Small back-off so retries happen within the test; the receiver on loopback is allowed unless
// the test says otherwise.
std::string config_yaml(const NatsServer& nats, const std::string& webhook_section) {
  return "nats:\n"
         "  url: " +
         nats.url() +
         "\n"
         "  max_deliver: 3\n"
         "  backoff: [100ms]\n"
         "  ack_wait: 30s\n"
         "plugins:\n"
         "  webhook:\n" +
         webhook_section +
         "log:\n"
         "  level: debug\n";
}

const std::string kAllowLoopback =
    "    timeout: 5s\n"
    "    allowed_networks: [127.0.0.0/8]\n";

std::string webhook_job(const std::string& url, json extra = json::object()) {
  extra["url"] = url;
  return make_job("tenant-a", 42, "webhook", extra.dump(), kPayload, "tenant-a/dev-7/telemetry");
}

// Waits until the daemon's consumer has nothing pending or unacknowledged.
bool settled(JsClient& js, std::chrono::milliseconds timeout) {
  return wait_until(
      [&] {
        auto c = js.consumer("ROUTES", "route-delivery");
        return c && c->pending == 0 && c->ack_pending == 0 && c->delivered_stream_seq > 0;
      },
      timeout, 50ms);
}

std::vector<json> dead_letters(JsClient& js) {
  std::vector<json> out;
  for (const std::string& m : js.stream_messages("ROUTES_DLQ")) out.push_back(json::parse(m));
  return out;
}

struct Env {
  NatsServer nats;
  JsClient js{nats.url()};
  Env() { js.ensure_routes_stream(); }
};

// Value of the sample `series` (name{labels}) in Prometheus text, or -1 when absent.
double metric(const std::string& text, const std::string& series) {
  const size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

void start_daemon(Daemon& d) {
  ASSERT_TRUE(d.wait_ready(20s)) << "daemon not ready:\n" << d.log();
}

TEST(WebhookE2E, RetriedTwiceThenDeliveredOnAttemptThreeWithSameWebhookId) {
  Env env;
  HttpReceiver rx([](const ReceivedRequest&, size_t index) {
    ReceiverResponse r;
    r.status = index < 2 ? 500 : 200;
    return r;
  });
  Daemon d(config_yaml(env.nats, kAllowLoopback));
  start_daemon(d);
  env.js.publish("routes.tenant-a",
                 webhook_job(rx.url(), {{"secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}));

  ASSERT_TRUE(rx.wait_for_requests(3, 20s)) << d.log();
  ASSERT_TRUE(settled(env.js, 10s)) << d.log();
  std::this_thread::sleep_for(300ms);  // nothing more may arrive
  const auto reqs = rx.requests();
  ASSERT_EQ(reqs.size(), 3u);
  const std::string id = reqs[0].header("webhook-id");
  EXPECT_FALSE(id.empty());
  for (const auto& r : reqs) {
    EXPECT_EQ(r.header("webhook-id"), id);
    EXPECT_EQ(json::parse(r.body), json::parse(kPayload));
    EXPECT_EQ(r.header("webhook-signature").rfind("v1,", 0), 0u);
  }
  EXPECT_TRUE(dead_letters(env.js).empty()) << "a job delivered on attempt 3 is not dead-lettered";

  // The plugin's own metrics reach the daemon's /metrics.
  const HttpResponse m = d.get("/metrics");
  ASSERT_EQ(m.status, 200);
  EXPECT_EQ(metric(m.body, R"(route_delivery_plugin_webhook_requests_total{class="5xx"})"), 2.0)
      << m.body;
  EXPECT_EQ(metric(m.body, R"(route_delivery_plugin_webhook_requests_total{class="2xx"})"), 1.0);
}

TEST(WebhookE2E, AlwaysFailingReceiverIsDeadLetteredAfterMaxDeliverWithTheStatus) {
  Env env;
  HttpReceiver rx([](const ReceivedRequest&, size_t) {
    ReceiverResponse r;
    r.status = 500;
    r.body = "storage offline";
    return r;
  });
  Daemon d(config_yaml(env.nats, kAllowLoopback));
  start_daemon(d);
  env.js.publish("routes.tenant-a", webhook_job(rx.url()));

  ASSERT_TRUE(wait_until([&] { return env.js.stream_msgs("ROUTES_DLQ") == 1; }, 20s)) << d.log();
  ASSERT_TRUE(settled(env.js, 10s)) << d.log();
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(rx.request_count(), 3u)
      << "max_deliver is 3: three attempts, then the dead-letter queue";
  const auto dl = dead_letters(env.js);
  ASSERT_EQ(dl.size(), 1u);
  const std::string error = dl[0].value("error", "");
  EXPECT_NE(error.find("HTTP 500"), std::string::npos) << dl[0].dump();
  EXPECT_NE(error.find("storage offline"), std::string::npos) << dl[0].dump();
  EXPECT_EQ(dl[0].value("attempts", 0), 3) << dl[0].dump();
  EXPECT_EQ(dl[0].value("destination_type", ""), "webhook");
  EXPECT_EQ(dl[0]["payload"], json::parse(kPayload));
}

TEST(WebhookE2E, ClientErrorIsDeadLetteredAfterOneAttempt) {
  Env env;
  HttpReceiver rx([](const ReceivedRequest&, size_t) {
    ReceiverResponse r;
    r.status = 400;
    r.body = R"({"error":"unknown device"})";
    return r;
  });
  Daemon d(config_yaml(env.nats, kAllowLoopback));
  start_daemon(d);
  env.js.publish("routes.tenant-a", webhook_job(rx.url()));

  ASSERT_TRUE(wait_until([&] { return env.js.stream_msgs("ROUTES_DLQ") == 1; }, 20s)) << d.log();
  ASSERT_TRUE(settled(env.js, 10s)) << d.log();
  std::this_thread::sleep_for(500ms);  // longer than the back-off: a retry would have arrived
  EXPECT_EQ(rx.request_count(), 1u);
  const auto dl = dead_letters(env.js);
  ASSERT_EQ(dl.size(), 1u);
  EXPECT_NE(dl[0].value("error", "").find("HTTP 400"), std::string::npos) << dl[0].dump();
  EXPECT_EQ(dl[0].value("attempts", 0), 1) << dl[0].dump();
}

TEST(WebhookE2E, RetryAfterFromTheReceiverDelaysTheNextAttempt) {
  Env env;
  HttpReceiver rx([](const ReceivedRequest&, size_t index) {
    ReceiverResponse r;
    if (index == 0) {
      r.status = 429;
      r.headers = {{"Retry-After", "1"}};
    }
    return r;
  });
  Daemon d(config_yaml(env.nats, kAllowLoopback));
  start_daemon(d);
  env.js.publish("routes.tenant-a", webhook_job(rx.url()));
  ASSERT_TRUE(rx.wait_for_requests(2, 20s)) << d.log();
  const auto reqs = rx.requests();
  const auto gap = reqs[1].at - reqs[0].at;
  EXPECT_GE(gap, 900ms) << "the 1 s Retry-After must win over the 100 ms back-off";
  ASSERT_TRUE(settled(env.js, 10s)) << d.log();
  EXPECT_TRUE(dead_letters(env.js).empty());
}

TEST(WebhookE2E, LoopbackRefusedUnlessAllowedThroughTheEnvironment) {
  Env env;
  HttpReceiver rx;
  {
    Daemon d(config_yaml(env.nats, "    timeout: 5s\n"));
    start_daemon(d);
    env.js.publish("routes.tenant-a", webhook_job(rx.url()));
    ASSERT_TRUE(wait_until([&] { return env.js.stream_msgs("ROUTES_DLQ") == 1; }, 20s)) << d.log();
    const auto dl = dead_letters(env.js);
    ASSERT_EQ(dl.size(), 1u);
    const std::string error = dl[0].value("error", "");
    EXPECT_NE(error.find("loopback"), std::string::npos) << error;
    EXPECT_NE(error.find("WEBHOOK_ALLOWED_NETWORKS"), std::string::npos) << error;
    EXPECT_EQ(dl[0].value("attempts", 0), 1);
    EXPECT_EQ(rx.connections(), 0);
    d.stop();
  }
  Daemon d(config_yaml(env.nats, "    timeout: 5s\n"),
           {{"WEBHOOK_ALLOWED_NETWORKS", "127.0.0.1/32"}});
  start_daemon(d);
  env.js.publish("routes.tenant-a", webhook_job(rx.url()));
  ASSERT_TRUE(rx.wait_for_requests(1, 20s)) << d.log();
  ASSERT_TRUE(settled(env.js, 10s)) << d.log();
  EXPECT_EQ(env.js.stream_msgs("ROUTES_DLQ"), 1u) << "only the first job was dead-lettered";
}

TEST(WebhookE2E, SlowReceiverPastWebhookTimeoutSecondsIsRetried) {
  Env env;
  HttpReceiver rx([](const ReceivedRequest&, size_t index) {
    ReceiverResponse r;
    if (index == 0) r.delay = 4s;
    return r;
  });
  Daemon d(config_yaml(env.nats, "    allowed_networks: [127.0.0.0/8]\n"),
           {{"WEBHOOK_TIMEOUT_SECONDS", "1"}});
  start_daemon(d);
  env.js.publish("routes.tenant-a", webhook_job(rx.url()));
  ASSERT_TRUE(rx.wait_for_requests(2, 20s)) << d.log();
  const auto reqs = rx.requests();
  EXPECT_LT(reqs[1].at - reqs[0].at, 3s) << "the first attempt must be cut at 1 s, not wait 4 s";
  ASSERT_TRUE(settled(env.js, 10s)) << d.log();
  EXPECT_TRUE(dead_letters(env.js).empty());
}

}  // namespace
}  // namespace rdtest
