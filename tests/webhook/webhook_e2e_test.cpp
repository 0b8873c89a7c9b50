// End to end: jobs published to JetStream, consumed by the real daemon (build/bin/route-delivery),
// delivered by the bundled webhook plugin to a local HTTP receiver; retries, back-off and
// dead-lettering (to the ROUTES_DLQ stream) are the host's, outcomes and reasons the plugin's.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

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

// The plugin's in-flight gauge follows a drain at once: an idle daemon must not show webhook
// requests in flight (a dashboard reads them as stuck). It was published at most every 250 ms and,
// once the loop was idle, only at its next wake-up, up to a second later: 8 requests answered
// 400 ms after they were sent read 8 in flight for most of a second after their answers.
TEST(WebhookE2E, InFlightGaugeReadsZeroAsSoonAsTheRequestsAreAnswered) {
  Env env;
  HttpReceiver rx(answer_after(400ms));
  Daemon d(config_yaml(env.nats, kAllowLoopback));
  start_daemon(d);
  const auto in_flight = [&] {
    const HttpResponse m = d.get("/metrics");
    return m.status == 200 ? metric(m.body, "route_delivery_plugin_webhook_in_flight") : -2.0;
  };
  for (int i = 0; i < 8; ++i) env.js.publish("routes.tenant-a", webhook_job(rx.url()));
  EXPECT_TRUE(wait_until([&] { return in_flight() > 0; }, 5s, 5ms))
      << "the requests held by the receiver were never seen in flight";
  ASSERT_TRUE(rx.wait_for_requests(8, 10s)) << d.log();
  ASSERT_TRUE(settled(env.js, 10s)) << d.log();
  EXPECT_TRUE(wait_until([&] { return in_flight() == 0; }, 200ms, 5ms))
      << "webhook_in_flight still reads " << in_flight() << " after every request was answered";
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

// ---- the webhook plugin in its own process (plugins.webhook.isolation: process) ----

struct WebhookRun {
  std::map<std::string, int> requests_by_path;
  bool ids_stable = true;  // one webhook-id per job across its retries
  bool all_signed = true;  // every request carries webhook-signature
  std::vector<std::string> dead_letter_errors;
  double m2xx = -1, m4xx = -1, m5xx = -1;
  std::string isolation;  // as /health shows it
};

// Ten jobs answered 200, one answered 500 twice then 200, one answered 400 (dead-lettered).
void run_webhook_scenario(bool isolated, WebhookRun& out) {
  Env env;
  std::atomic<int> flaky{0};
  HttpReceiver rx([&](const ReceivedRequest& r, size_t) {
    ReceiverResponse resp;
    if (r.target == "/bad") resp.status = 400;
    if (r.target == "/flaky" && flaky.fetch_add(1) < 2) resp.status = 500;
    return resp;
  });
  Daemon d(config_yaml(env.nats, kAllowLoopback + (isolated ? "    isolation: process\n" : "")));
  start_daemon(d);
  const json secret = {{"secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}};
  for (int i = 0; i < 10; ++i)
    env.js.publish("routes.tenant-a", webhook_job(rx.url("/ok"), secret));
  env.js.publish("routes.tenant-a", webhook_job(rx.url("/flaky"), secret));
  env.js.publish("routes.tenant-a", webhook_job(rx.url("/bad"), secret));
  ASSERT_TRUE(rx.wait_for_requests(14, 20s)) << d.log();
  ASSERT_TRUE(settled(env.js, 10s)) << d.log();
  std::this_thread::sleep_for(300ms);  // nothing more may arrive
  std::map<std::string, std::set<std::string>> ids_by_path;
  for (const auto& r : rx.requests()) {
    out.requests_by_path[r.target]++;
    ids_by_path[r.target].insert(r.header("webhook-id"));
    if (r.header("webhook-signature").rfind("v1,", 0) != 0) out.all_signed = false;
  }
  out.ids_stable = ids_by_path["/flaky"].size() == 1 && ids_by_path["/ok"].size() == 10;
  // The receiver's port differs between the runs: the rest of the reason must not.
  const std::string port = ":" + std::to_string(rx.port());
  for (const auto& dl : dead_letters(env.js)) {
    std::string error = dl.value("error", std::string());
    for (size_t at; (at = error.find(port)) != std::string::npos;)
      error.replace(at, port.size(), ":PORT");
    out.dead_letter_errors.push_back(error);
  }
  const HttpResponse m = d.get("/metrics");
  out.m2xx = metric(m.body, R"(route_delivery_plugin_webhook_requests_total{class="2xx"})");
  out.m4xx = metric(m.body, R"(route_delivery_plugin_webhook_requests_total{class="4xx"})");
  out.m5xx = metric(m.body, R"(route_delivery_plugin_webhook_requests_total{class="5xx"})");
  const json h = json::parse(d.get("/health").body, nullptr, false);
  if (h.is_object() && h["plugins"].is_array()) {
    for (const auto& p : h["plugins"]) {
      if (p.value("name", "") == "webhook") out.isolation = p.value("isolation", "");
    }
  }
  d.stop();
  EXPECT_EQ(d.exit_code(), 0) << d.log();
  EXPECT_EQ(d.log().find("plugin_crashed"), std::string::npos) << d.log();
}

TEST(WebhookE2E, IsolatedWebhookDeliversWhatInProcessDelivers) {
  WebhookRun in_process, isolated;
  run_webhook_scenario(false, in_process);
  ASSERT_FALSE(HasFatalFailure());
  run_webhook_scenario(true, isolated);
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_EQ(in_process.isolation, "in_process");
  EXPECT_EQ(isolated.isolation, "process");
  const std::map<std::string, int> expected{{"/ok", 10}, {"/flaky", 3}, {"/bad", 1}};
  EXPECT_EQ(in_process.requests_by_path, expected);
  EXPECT_EQ(isolated.requests_by_path, expected);
  EXPECT_TRUE(isolated.ids_stable);
  EXPECT_TRUE(isolated.all_signed);
  EXPECT_EQ(isolated.dead_letter_errors, in_process.dead_letter_errors);
  ASSERT_EQ(isolated.dead_letter_errors.size(), 1u);
  // The plugin's own metrics cross the process boundary.
  EXPECT_EQ(isolated.m2xx, in_process.m2xx);
  EXPECT_EQ(isolated.m4xx, in_process.m4xx);
  EXPECT_EQ(isolated.m5xx, in_process.m5xx);
  EXPECT_EQ(isolated.m2xx, 11.0);
  EXPECT_EQ(isolated.m5xx, 2.0);
}

}  // namespace
}  // namespace rdtest
