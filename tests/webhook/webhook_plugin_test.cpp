// The real webhook.so, loaded through the C ABI with a recording fake host (PluginHarness), against
// a real HTTP receiver on 127.0.0.1 started by each test.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "h2_early_answer_server.hpp"
#include "http_receiver.hpp"
#include "plugin_harness.hpp"
#include "test_support.hpp"
#include "tls_cert.hpp"

namespace rdtest {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

// Loopback is private: every test that talks to the local receiver must allow it explicitly.
const std::string kAllowLoopback = R"({"timeout": 5000, "allowed_networks": ["127.0.0.0/8"]})";

std::string so_path() {
  return plugin_dir() + "/webhook.so";
}

std::string route(const std::string& url, json extra = json::object()) {
  extra["url"] = url;
  return extra.dump();
}

JobSpec job_for(const std::string& destination_config, const std::string& message_id = "ROUTES:1") {
  JobSpec j;
  j.destination_config_json = destination_config;
  j.message_id = message_id;
  return j;
}

// Independent of the plugin's code: OpenSSL's HMAC and base64 directly.
std::string b64(const unsigned char* data, size_t len) {
  std::string out(4 * ((len + 2) / 3), '\0');
  const int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(len));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string unb64(const std::string& text) {
  std::string out(text.size(), '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  size_t len = static_cast<size_t>(n);
  for (size_t i = text.size(); i > 0 && text[i - 1] == '='; --i)
    --len;  // DecodeBlock keeps padding
  out.resize(len);
  return out;
}

std::string hmac(const std::string& key, const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len);
  return std::string(reinterpret_cast<char*>(md), len);
}

std::string hex(const std::string& bytes) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += d[c >> 4];
    out += d[c & 15];
  }
  return out;
}

TEST(WebhookPlugin, DescriptorDeclaresConfigKeys) {
  PluginHarness h(so_path(), kAllowLoopback);
  const rd_plugin_descriptor& d = h.descriptor();
  EXPECT_STREQ(d.name, "webhook");
  EXPECT_STREQ(d.destination_type, "webhook");
  std::map<std::string, const rd_config_key*> keys;
  for (uint32_t i = 0; i < d.config_key_count; ++i) keys[d.config_keys[i].name] = &d.config_keys[i];
  ASSERT_TRUE(keys.count("timeout"));
  EXPECT_EQ(keys["timeout"]->type, RD_CONFIG_DURATION);
  EXPECT_STREQ(keys["timeout"]->default_value, "10s");
  EXPECT_STREQ(keys["timeout"]->env, "WEBHOOK_TIMEOUT_SECONDS");
  ASSERT_TRUE(keys.count("allowed_networks"));
  EXPECT_EQ(keys["allowed_networks"]->type, RD_CONFIG_LIST);
  EXPECT_STREQ(keys["allowed_networks"]->env, "WEBHOOK_ALLOWED_NETWORKS");
  EXPECT_TRUE(keys.count("ca_file"));
  EXPECT_TRUE(keys.count("max_connections_per_host"));
  ASSERT_TRUE(keys.count("max_queued_per_host"));
  EXPECT_STREQ(keys["max_queued_per_host"]->default_value, "4096");
}

// 1.1 for DEFER and xDestination, 1.2 for the checked config key table.
TEST(WebhookPlugin, DescriptorSpeaksAbi12) {
  PluginHarness h(so_path(), kAllowLoopback);
  const rd_plugin_descriptor& d = h.descriptor();
  EXPECT_EQ(d.abi_minor, 2u);
  ASSERT_TRUE(RD_HAS_FIELD(&d, rd_plugin_descriptor, xDestination));
  EXPECT_TRUE(d.flags & RD_PLUGIN_REPORTS_STARTED) << "jobs wait in per-host queues";
  EXPECT_NE(d.xDestination, nullptr);
}

// Jobs of every route and tenant that reach one server share one key (one fairness share, one
// circuit breaker in the host); scheme and host are lowercased and the default port spelled out.
TEST(WebhookPlugin, DestinationKeyIsSchemeHostAndPort) {
  PluginHarness h(so_path(), kAllowLoopback);
  JobSpec a = job_for(route("http://127.0.0.1:8080/a?x=1"));
  JobSpec b = job_for(route("HTTP://127.0.0.1:8080/b", {{"method", "PUT"}, {"secret", "s"}}));
  b.tenant_id = "tenant-b";
  b.route_id = 2;
  EXPECT_EQ(h.destination(a), "http://127.0.0.1:8080");
  EXPECT_EQ(h.destination(b), "http://127.0.0.1:8080");
  EXPECT_EQ(h.destination(job_for(route("http://127.0.0.1:8081/a"))), "http://127.0.0.1:8081");
  EXPECT_EQ(h.destination(job_for(route("https://Hooks.Example.COM/in"))),
            "https://hooks.example.com:443");
  EXPECT_EQ(h.destination(job_for(route("http://hooks.example.com/in"))),
            "http://hooks.example.com:80");
  EXPECT_EQ(h.destination(job_for(route("https://hooks.example.com:443/"))),
            "https://hooks.example.com:443");
  EXPECT_EQ(h.destination(job_for(route("http://[::1]:9000/"))), "http://[::1]:9000");
  // No key for a route that can never be delivered (the host falls back to the route).
  EXPECT_EQ(h.destination(job_for(route("ftp://example.com/"))), "");
  EXPECT_EQ(h.destination(job_for(R"({"method": "PUT"})")), "");
  EXPECT_EQ(h.destination(job_for("not json")), "");
}

TEST(WebhookPlugin, BadPluginConfigFailsCreateNamingTheKey) {
  try {
    PluginHarness h(so_path(), R"({"allowed_networks": ["10.0.0.0/99"]})");
    FAIL() << "create should fail";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("plugins.webhook.allowed_networks"), std::string::npos)
        << e.what();
  }
  try {
    PluginHarness h(so_path(), R"({"ca_file": "/nonexistent/ca.pem"})");
    FAIL() << "create should fail";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("plugins.webhook.ca_file"), std::string::npos) << e.what();
  }
}

TEST(WebhookPlugin, DeliversStandardWebhooksSignedPayloadThatVerifies) {
  HttpReceiver rx;
  PluginHarness h(so_path(), kAllowLoopback);
  const std::string secret_b64 = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  JobSpec job = job_for(route(
      rx.url("/in?x=1"), {{"secret", "whsec_" + secret_b64}, {"headers", {{"X-Tenant", "acme"}}}}));
  job.payload_json = R"({"device_id":"dev-1","temp":21.5,"note":"caf\u00e9 \"q\""})";
  const auto before = std::chrono::system_clock::now();
  const auto res = h.deliver_sync(job, 10s);
  ASSERT_TRUE(res.has_value());
  EXPECT_EQ(res->outcome, RD_OUTCOME_OK) << res->reason;
  EXPECT_EQ(res->completions, 1);

  const auto reqs = rx.requests();
  ASSERT_EQ(reqs.size(), 1u);
  const ReceivedRequest& r = reqs[0];
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/in?x=1");
  EXPECT_EQ(r.body, job.payload_json);  // the exact bytes
  EXPECT_EQ(r.header("Content-Type"), "application/json");
  EXPECT_EQ(r.header("User-Agent").rfind("route-delivery/", 0), 0u) << r.header("User-Agent");
  EXPECT_EQ(r.header("X-Tenant"), "acme");
  EXPECT_FALSE(r.has_header("X-Signature-256"));

  const std::string id = r.header("webhook-id");
  const std::string ts = r.header("webhook-timestamp");
  ASSERT_FALSE(id.empty());
  ASSERT_FALSE(ts.empty());
  const int64_t now_s =
      std::chrono::duration_cast<std::chrono::seconds>(before.time_since_epoch()).count();
  EXPECT_LE(std::abs(std::stoll(ts) - now_s), 5);
  const std::string expected = hmac(unb64(secret_b64), id + "." + ts + "." + r.body);
  const std::string expected_header =
      "v1," + b64(reinterpret_cast<const unsigned char*>(expected.data()), expected.size());
  EXPECT_EQ(r.header("webhook-signature"), expected_header);
}

TEST(WebhookPlugin, PlainSecretSignsBodyWithXSignature256AndUsesMethod) {
  HttpReceiver rx;
  PluginHarness h(so_path(), kAllowLoopback);
  JobSpec job = job_for(route(rx.url("/put"), {{"secret", "my-secret"}, {"method", "PUT"}}));
  const auto res = h.deliver_sync(job, 10s);
  ASSERT_TRUE(res.has_value());
  EXPECT_EQ(res->outcome, RD_OUTCOME_OK) << res->reason;
  const auto reqs = rx.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].method, "PUT");
  EXPECT_EQ(reqs[0].header("X-Signature-256"), "sha256=" + hex(hmac("my-secret", reqs[0].body)));
  EXPECT_FALSE(reqs[0].has_header("webhook-signature"));
}

// Easy handles (and their connection) are reused from request to request with only the
// per-request options set again: nothing of one route's request (method, headers, signature,
// target) may leak into the next route's request on the same handle.
TEST(WebhookPlugin, RoutesTakingTurnsOnOneConnectionEachGetTheirOwnRequest) {
  HttpReceiver rx;
  PluginHarness h(so_path(),
                  R"({"allowed_networks": ["127.0.0.0/8"], "max_connections_per_host": 1})");
  const std::string whsec_key = "0123456789abcdef0123456789abcdef";
  const std::string routes[] = {
      route(rx.url("/a"), {{"secret", "secret-a"}, {"method", "PUT"}, {"headers", {{"X-A", "1"}}}}),
      route(rx.url("/b")),
      route(rx.url("/c"),
            {{"secret", "whsec_" + b64(reinterpret_cast<const unsigned char*>(whsec_key.data()),
                                       whsec_key.size())},
             {"method", "PATCH"},
             {"headers", {{"Content-Type", "text/plain"}}}}),
  };
  const int kJobs = 30;
  for (int i = 0; i < kJobs; ++i) {
    JobSpec job = job_for(routes[i % 3], "ROUTES:" + std::to_string(i + 1));
    job.payload_json = R"({"n":)" + std::to_string(i) + "}";
    const auto res = h.deliver_sync(job, 10s);
    ASSERT_TRUE(res.has_value());
    ASSERT_EQ(res->outcome, RD_OUTCOME_OK) << res->reason;
  }
  const auto reqs = rx.requests();
  ASSERT_EQ(reqs.size(), static_cast<size_t>(kJobs));
  EXPECT_EQ(rx.connections(), 1);
  for (int i = 0; i < kJobs; ++i) {
    const ReceivedRequest& r = reqs[static_cast<size_t>(i)];
    SCOPED_TRACE("request " + std::to_string(i));
    EXPECT_EQ(r.body, R"({"n":)" + std::to_string(i) + "}");
    EXPECT_TRUE(r.has_header("webhook-id"));
    EXPECT_TRUE(r.has_header("webhook-timestamp"));
    switch (i % 3) {
      case 0:
        EXPECT_EQ(r.method, "PUT");
        EXPECT_EQ(r.target, "/a");
        EXPECT_EQ(r.header("X-A"), "1");
        EXPECT_EQ(r.header("Content-Type"), "application/json");
        EXPECT_EQ(r.header("X-Signature-256"), "sha256=" + hex(hmac("secret-a", r.body)));
        EXPECT_FALSE(r.has_header("webhook-signature"));
        break;
      case 1:
        EXPECT_EQ(r.method, "POST");
        EXPECT_EQ(r.target, "/b");
        EXPECT_FALSE(r.has_header("X-A"));
        EXPECT_EQ(r.header("Content-Type"), "application/json");
        EXPECT_FALSE(r.has_header("X-Signature-256"));
        EXPECT_FALSE(r.has_header("webhook-signature"));
        break;
      case 2:
        EXPECT_EQ(r.method, "PATCH");
        EXPECT_EQ(r.target, "/c");
        EXPECT_FALSE(r.has_header("X-A"));
        EXPECT_EQ(r.header("Content-Type"), "text/plain");
        EXPECT_FALSE(r.has_header("X-Signature-256"));
        const std::string mac = hmac(
            whsec_key, r.header("webhook-id") + "." + r.header("webhook-timestamp") + "." + r.body);
        EXPECT_EQ(r.header("webhook-signature"),
                  "v1," + b64(reinterpret_cast<const unsigned char*>(mac.data()), mac.size()));
        break;
    }
  }
}

TEST(WebhookPlugin, ClassifiesReceiverAnswers) {
  HttpReceiver rx([](const ReceivedRequest& r, size_t) {
    ReceiverResponse resp;
    if (r.target == "/500") {
      resp.status = 500;
      resp.body = "database\nis down";
    } else if (r.target == "/400") {
      resp.status = 400;
      resp.body = R"({"error":"unknown device"})";
    } else if (r.target == "/429") {
      resp.status = 429;
      resp.headers = {{"Retry-After", "7"}};
    } else if (r.target == "/503-date") {
      resp.status = 503;
      const auto at = std::chrono::system_clock::now() + std::chrono::seconds(120);
      const std::time_t t = std::chrono::system_clock::to_time_t(at);
      char buf[64];
      std::tm tm{};
      gmtime_r(&t, &tm);
      std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
      resp.headers = {{"Retry-After", buf}};
    } else if (r.target == "/302") {
      resp.status = 302;
      resp.headers = {{"Location", "/elsewhere"}};
    } else if (r.target == "/big") {
      resp.status = 500;
      resp.body = std::string(100000, 'x');
    }
    return resp;
  });
  PluginHarness h(so_path(), kAllowLoopback);
  auto run = [&](const std::string& path) {
    auto res = h.deliver_sync(job_for(route(rx.url(path))), 10s);
    EXPECT_TRUE(res.has_value()) << path;
    return res.value_or(PluginResult{});
  };

  const PluginResult ok = run("/ok");
  EXPECT_EQ(ok.outcome, RD_OUTCOME_OK);

  const PluginResult r500 = run("/500");
  EXPECT_EQ(r500.outcome, RD_OUTCOME_RETRY);
  EXPECT_NE(r500.reason.find("HTTP 500"), std::string::npos) << r500.reason;
  EXPECT_NE(r500.reason.find("database is down"), std::string::npos) << r500.reason;
  EXPECT_EQ(r500.retry_after_ms, -1);

  const PluginResult r400 = run("/400");
  EXPECT_EQ(r400.outcome, RD_OUTCOME_PERMANENT);
  EXPECT_NE(r400.reason.find("HTTP 400"), std::string::npos) << r400.reason;
  EXPECT_NE(r400.reason.find("unknown device"), std::string::npos) << r400.reason;

  const PluginResult r429 = run("/429");
  EXPECT_EQ(r429.outcome, RD_OUTCOME_RETRY);
  EXPECT_EQ(r429.retry_after_ms, 7000);

  const PluginResult r503 = run("/503-date");
  EXPECT_EQ(r503.outcome, RD_OUTCOME_RETRY);
  EXPECT_GE(r503.retry_after_ms, 115000);
  EXPECT_LE(r503.retry_after_ms, 121000);

  const size_t before_redirect = rx.request_count();
  const PluginResult r302 = run("/302");
  EXPECT_EQ(r302.outcome, RD_OUTCOME_PERMANENT);
  EXPECT_NE(r302.reason.find("HTTP 302"), std::string::npos) << r302.reason;
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(rx.request_count(), before_redirect + 1) << "the redirect must not be followed";

  const PluginResult big = run("/big");
  EXPECT_EQ(big.outcome, RD_OUTCOME_RETRY);
  EXPECT_LT(big.reason.size(), 400u) << "only a short excerpt of the body goes into the reason";
}

TEST(WebhookPlugin, SameWebhookIdOnEveryAttemptOfOneJob) {
  HttpReceiver rx([](const ReceivedRequest&, size_t index) {
    ReceiverResponse resp;
    resp.status = index < 2 ? 500 : 200;
    return resp;
  });
  PluginHarness h(so_path(), kAllowLoopback);
  JobSpec job = job_for(route(rx.url()), "ROUTES:77");
  std::vector<int32_t> outcomes;
  for (uint32_t attempt = 1; attempt <= 3; ++attempt) {
    job.attempt = attempt;
    auto res = h.deliver_sync(job, 10s);
    ASSERT_TRUE(res.has_value());
    outcomes.push_back(res->outcome);
  }
  EXPECT_EQ(outcomes, (std::vector<int32_t>{RD_OUTCOME_RETRY, RD_OUTCOME_RETRY, RD_OUTCOME_OK}));
  const auto reqs = rx.requests();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_FALSE(reqs[0].header("webhook-id").empty());
  EXPECT_EQ(reqs[1].header("webhook-id"), reqs[0].header("webhook-id"));
  EXPECT_EQ(reqs[2].header("webhook-id"), reqs[0].header("webhook-id"));

  // A different job gets a different id.
  ASSERT_TRUE(h.deliver_sync(job_for(route(rx.url()), "ROUTES:78"), 10s).has_value());
  ASSERT_EQ(rx.request_count(), 4u);
  EXPECT_NE(rx.requests()[3].header("webhook-id"), reqs[0].header("webhook-id"));
}

TEST(WebhookPlugin, SlowReceiverPastTimeoutIsRetried) {
  HttpReceiver rx([](const ReceivedRequest&, size_t) {
    ReceiverResponse resp;
    resp.delay = 3s;
    return resp;
  });
  PluginHarness h(so_path(), R"({"timeout": 400, "allowed_networks": ["127.0.0.0/8"]})");
  const auto start = std::chrono::steady_clock::now();
  const auto res = h.deliver_sync(job_for(route(rx.url())), 10s);
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(res.has_value());
  EXPECT_EQ(res->outcome, RD_OUTCOME_RETRY);
  EXPECT_NE(res->reason.find("timed out after 400 ms"), std::string::npos) << res->reason;
  EXPECT_GE(took, 350ms);
  EXPECT_LT(took, 2s);
}

// A request that went out on a kept-alive connection and got no answer in time was tried: retry.
TEST(WebhookPlugin, TimeoutAfterSendingOnAReusedConnectionIsRetried) {
  HttpReceiver rx([](const ReceivedRequest&, size_t index) {
    ReceiverResponse resp;
    if (index == 1) resp.delay = 3s;
    return resp;
  });
  PluginHarness h(so_path(), R"({"timeout": 500, "allowed_networks": ["127.0.0.0/8"]})");
  const auto first = h.deliver_sync(job_for(route(rx.url())), 10s);
  ASSERT_TRUE(first.has_value());
  ASSERT_EQ(first->outcome, RD_OUTCOME_OK) << first->reason;
  const auto res = h.deliver_sync(job_for(route(rx.url()), "ROUTES:2"), 10s);
  ASSERT_TRUE(res.has_value());
  EXPECT_EQ(res->outcome, RD_OUTCOME_RETRY) << res->reason;
  EXPECT_NE(res->reason.find("timed out after 500 ms"), std::string::npos) << res->reason;
  EXPECT_EQ(rx.connections(), 1) << "the second request should have reused the connection";
}

// Answers that say "try again" or "never" still spend an attempt (they are not deferrals).
TEST(WebhookPlugin, AnswersAreRetriedOrPermanentNotDeferred) {
  HttpReceiver rx([](const ReceivedRequest& r, size_t) {
    ReceiverResponse resp;
    resp.status = r.target == "/503" ? 503 : 404;
    return resp;
  });
  PluginHarness h(so_path(), kAllowLoopback);
  const uint64_t unavailable = h.deliver(job_for(route(rx.url("/503"))));
  const auto r503 = h.wait(unavailable, 10s);
  ASSERT_TRUE(r503.has_value());
  EXPECT_EQ(r503->outcome, RD_OUTCOME_RETRY) << r503->reason;
  EXPECT_NE(r503->reason.find("HTTP 503"), std::string::npos) << r503->reason;
  EXPECT_TRUE(h.started(unavailable));

  const uint64_t missing = h.deliver(job_for(route(rx.url("/404"))));
  const auto r404 = h.wait(missing, 10s);
  ASSERT_TRUE(r404.has_value());
  EXPECT_EQ(r404->outcome, RD_OUTCOME_PERMANENT) << r404->reason;
  EXPECT_NE(r404->reason.find("HTTP 404"), std::string::npos) << r404->reason;
  EXPECT_TRUE(h.started(missing));
}

TEST(WebhookPlugin, RouteTimeoutIsBoundedByPluginTimeout) {
  HttpReceiver rx([](const ReceivedRequest&, size_t) {
    ReceiverResponse resp;
    resp.delay = 3s;
    return resp;
  });
  PluginHarness h(so_path(), kAllowLoopback);  // 5 s
  // A shorter per-route limit applies...
  const auto start = std::chrono::steady_clock::now();
  auto res = h.deliver_sync(job_for(route(rx.url(), {{"timeout_ms", 300}})), 10s);
  ASSERT_TRUE(res.has_value());
  EXPECT_EQ(res->outcome, RD_OUTCOME_RETRY);
  EXPECT_NE(res->reason.find("timed out after 300 ms"), std::string::npos) << res->reason;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);

  // ...a longer one cannot exceed the plugin's.
  PluginHarness tight(so_path(), R"({"timeout": 500, "allowed_networks": ["127.0.0.0/8"]})");
  res = tight.deliver_sync(job_for(route(rx.url(), {{"timeout_ms", 60000}})), 10s);
  ASSERT_TRUE(res.has_value());
  EXPECT_NE(res->reason.find("timed out after 500 ms"), std::string::npos) << res->reason;
}

TEST(WebhookPlugin, LoopbackRefusedWithoutAllowedNetworksDeliveredWithIt) {
  HttpReceiver rx;
  const std::string port = std::to_string(rx.port());
  {
    PluginHarness h(so_path(), R"({"timeout": 5000})");
    for (const std::string& url :
         {rx.url(), "http://2130706433:" + port + "/", "http://0x7f.1:" + port + "/",
          "http://[::ffff:127.0.0.1]:" + port + "/"}) {
      const auto res = h.deliver_sync(job_for(route(url)), 10s);
      ASSERT_TRUE(res.has_value()) << url;
      EXPECT_EQ(res->outcome, RD_OUTCOME_PERMANENT) << url << ": " << res->reason;
      EXPECT_NE(res->reason.find("loopback"), std::string::npos) << res->reason;
      EXPECT_NE(res->reason.find("allowed_networks"), std::string::npos) << res->reason;
    }
    // A DNS name is judged on the address actually connected to.
    const auto named = h.deliver_sync(job_for(route("http://localhost:" + port + "/")), 10s);
    ASSERT_TRUE(named.has_value());
    EXPECT_EQ(named->outcome, RD_OUTCOME_PERMANENT) << named->reason;
    EXPECT_NE(named->reason.find("loopback"), std::string::npos) << named->reason;
    EXPECT_GE(h.metrics()["webhook_ssrf_refused_total{}"], 5.0);
  }
  EXPECT_EQ(rx.connections(), 0) << "a refused destination must not even be connected to";
  EXPECT_EQ(rx.request_count(), 0u);

  PluginHarness allowed(so_path(), kAllowLoopback);
  for (const std::string& url :
       {rx.url(), "http://localhost:" + port + "/named", "http://0x7f.1:" + port + "/odd"}) {
    const auto res = allowed.deliver_sync(job_for(route(url)), 10s);
    ASSERT_TRUE(res.has_value());
    EXPECT_EQ(res->outcome, RD_OUTCOME_OK) << url << ": " << res->reason;
  }
  EXPECT_EQ(rx.request_count(), 3u);
}

TEST(WebhookPlugin, PrivateAndMetadataAddressesRefusedWithoutNetworkAccess) {
  PluginHarness h(so_path(), R"({"timeout": 2000})");
  for (const char* url :
       {"http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "http://192.168.1.1:8080/",
        "http://100.64.0.1/", "http://[fd00::1]/", "http://[::1]:80/", "http://0.0.0.0/"}) {
    const auto start = std::chrono::steady_clock::now();
    const auto res = h.deliver_sync(job_for(route(url)), 10s);
    ASSERT_TRUE(res.has_value());
    EXPECT_EQ(res->outcome, RD_OUTCOME_PERMANENT) << url << ": " << res->reason;
    EXPECT_NE(res->reason.find("allowed_networks"), std::string::npos) << res->reason;
    EXPECT_LT(std::chrono::steady_clock::now() - start, 500ms) << url;
  }
}

TEST(WebhookPlugin, BadRouteConfigIsPermanentAndNamesTheField) {
  PluginHarness h(so_path(), kAllowLoopback);
  struct Case {
    std::string config, mentions;
  };
  for (const Case& c : std::vector<Case>{
           {R"({"url": "http://127.0.0.1:9/", "method": "GET"})", "config.method"},
           {R"({"url": "ftp://127.0.0.1/"})", "config.url"},
           {R"({})", "config.url"},
           {R"({"url": "http://127.0.0.1:9/", "headers": {"webhook-id": "x"}})", "webhook-id"}}) {
    const auto res = h.deliver_sync(job_for(c.config), 10s);
    ASSERT_TRUE(res.has_value());
    EXPECT_EQ(res->outcome, RD_OUTCOME_PERMANENT) << c.config;
    EXPECT_NE(res->reason.find(c.mentions), std::string::npos) << res->reason;
  }
}

// Nothing listening: the destination could not be tried, so the job is deferred (no attempt
// spent), with a reason naming the destination and libcurl's error.
TEST(WebhookPlugin, ConnectionRefusedIsDeferred) {
  int port;
  {
    HttpReceiver gone;  // take a port, then close it
    port = gone.port();
  }
  PluginHarness h(so_path(), kAllowLoopback);
  const auto res =
      h.deliver_sync(job_for(route("http://127.0.0.1:" + std::to_string(port) + "/")), 10s);
  ASSERT_TRUE(res.has_value());
  EXPECT_EQ(res->outcome, RD_OUTCOME_DEFER) << res->reason;
  EXPECT_NE(res->reason.find("http://127.0.0.1:" + std::to_string(port)), std::string::npos)
      << res->reason;
  EXPECT_NE(res->reason.find("Couldn't connect"), std::string::npos) << res->reason;
}

// A server that takes no connections (its accept queue is full, so the kernel drops the SYN):
// the connect phase times out before anything is sent, which is a deferral, not a failed try.
TEST(WebhookPlugin, ConnectTimeoutBeforeSendingIsDeferred) {
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 0), 0);  // never accepted
  socklen_t len = sizeof addr;
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const int port = ntohs(addr.sin_port);
  // Fill the accept queue: once a connect no longer completes at once, SYNs are being dropped.
  std::vector<int> fillers;
  for (int i = 0; i < 16; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    fillers.push_back(fd);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      pollfd p{fd, POLLOUT, 0};
      if (::poll(&p, 1, 50) == 0) break;  // still in SYN_SENT: the queue is full
    }
  }
  PluginHarness h(so_path(), R"({"timeout": 500, "allowed_networks": ["127.0.0.0/8"]})");
  const auto start = std::chrono::steady_clock::now();
  const auto res =
      h.deliver_sync(job_for(route("http://127.0.0.1:" + std::to_string(port) + "/")), 10s);
  const auto took = std::chrono::steady_clock::now() - start;
  for (int fd : fillers) ::close(fd);
  ::close(listener);
  ASSERT_TRUE(res.has_value());
  EXPECT_EQ(res->outcome, RD_OUTCOME_DEFER) << res->reason;
  EXPECT_NE(res->reason.find("no connection to http://127.0.0.1:" + std::to_string(port) +
                             " within 500 ms"),
            std::string::npos)
      << res->reason;
  EXPECT_GE(took, 450ms);
  EXPECT_LT(took, 2s);
}

TEST(WebhookPlugin, KeepAliveReusesConnections) {
  HttpReceiver rx;
  PluginHarness h(so_path(),
                  R"({"allowed_networks": ["127.0.0.0/8"], "max_connections_per_host": 4})");
  const int kJobs = 300;
  std::vector<uint64_t> ids;
  for (int i = 0; i < kJobs; ++i) {
    ids.push_back(h.deliver(job_for(route(rx.url()), "ROUTES:" + std::to_string(i + 1))));
  }
  for (uint64_t id : ids) {
    const auto res = h.wait(id, 20s);
    ASSERT_TRUE(res.has_value());
    ASSERT_EQ(res->outcome, RD_OUTCOME_OK) << res->reason;
  }
  EXPECT_EQ(rx.request_count(), static_cast<size_t>(kJobs));
  EXPECT_GE(rx.connections(), 1);
  EXPECT_LE(rx.connections(), 4) << "connections must be reused, at most max_connections_per_host";
  EXPECT_LE(rx.max_concurrent(), 4);
  const auto m = h.metrics();
  EXPECT_EQ(m.at("webhook_requests_total{class=\"2xx\"}"), kJobs);
  EXPECT_EQ(m.at("webhook_request_duration_seconds{}"), kJobs);
}

TEST(WebhookPlugin, SeveralEventThreadsServeManyHosts) {
  std::vector<std::unique_ptr<HttpReceiver>> hosts;
  for (int i = 0; i < 5; ++i) hosts.push_back(std::make_unique<HttpReceiver>());
  PluginHarness h(so_path(), R"({"allowed_networks": ["127.0.0.0/8"], "threads": 3,
                               "max_connections_per_host": 2})");
  std::vector<uint64_t> ids;
  for (int i = 0; i < 200; ++i) {
    const auto& rx = hosts[static_cast<size_t>(i) % hosts.size()];
    ids.push_back(h.deliver(job_for(route(rx->url()), "ROUTES:" + std::to_string(i + 1))));
  }
  for (uint64_t id : ids) {
    const auto res = h.wait(id, 20s);
    ASSERT_TRUE(res.has_value());
    ASSERT_EQ(res->outcome, RD_OUTCOME_OK) << res->reason;
  }
  for (const auto& rx : hosts) {
    EXPECT_EQ(rx->request_count(), 40u);
    EXPECT_LE(rx->connections(), 2) << "each host is served by one thread's pool, within its cap";
  }
  // The event threads carry names an operator sees in top -H and ps -L.
  std::set<std::string> names;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::ifstream comm(task.path() / "comm");
    std::string name;
    std::getline(comm, name);
    names.insert(name);
  }
  for (const char* want : {"rd-webhook-0", "rd-webhook-1", "rd-webhook-2"}) {
    EXPECT_TRUE(names.count(want)) << want;
  }
  std::string detail;
  EXPECT_TRUE(h.health(detail));
  EXPECT_EQ(detail, "in_flight=0 queued=0");
}

TEST(WebhookPlugin, SlowHostDoesNotStarveOtherHosts) {
  HttpReceiver slow([](const ReceivedRequest&, size_t) {
    ReceiverResponse resp;
    resp.delay = 1500ms;
    return resp;
  });
  HttpReceiver fast;
  PluginHarness h(so_path(), R"({"allowed_networks": ["127.0.0.0/8"], "max_connections_per_host": 2,
                               "timeout": 10000})");
  std::vector<uint64_t> slow_ids;
  for (int i = 0; i < 20; ++i) {
    slow_ids.push_back(h.deliver(job_for(route(slow.url()), "ROUTES:" + std::to_string(i + 1))));
  }
  ASSERT_TRUE(slow.wait_for_requests(2, 5s));
  const auto start = std::chrono::steady_clock::now();
  const auto res = h.deliver_sync(job_for(route(fast.url()), "ROUTES:999"), 5s);
  ASSERT_TRUE(res.has_value());
  EXPECT_EQ(res->outcome, RD_OUTCOME_OK) << res->reason;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s)
      << "the fast host waited behind the slow one";
  EXPECT_EQ(slow.max_concurrent(), 2) << "requests to one host run in parallel up to the cap";
  EXPECT_EQ(slow.request_count(), 2u);
  std::string detail;
  EXPECT_TRUE(wait_until([&] { return h.health(detail) && detail == "in_flight=2 queued=18"; }, 2s))
      << detail;
}

// The issue's case: with one connection per host, jobs queue up behind each other; each request
// gets the whole timeout from when it is sent, whatever it waited before. 10 jobs × 300 ms take
// 3 s in all, past the 1 s timeout, yet every one is delivered. Fails when the queue wait counts.
TEST(WebhookPlugin, WaitForAFreeConnectionDoesNotCountAgainstTheTimeout) {
  HttpReceiver rx([](const ReceivedRequest&, size_t) {
    ReceiverResponse resp;
    resp.delay = 300ms;
    return resp;
  });
  PluginHarness h(so_path(), R"({"allowed_networks": ["127.0.0.0/8"], "max_connections_per_host": 1,
                               "timeout": 1000})");
  const int kJobs = 10;
  std::vector<uint64_t> ids;
  for (int i = 0; i < kJobs; ++i) {
    ids.push_back(h.deliver(job_for(route(rx.url()), "ROUTES:" + std::to_string(i + 1))));
  }
  ASSERT_TRUE(rx.wait_for_requests(1, 5s));
  EXPECT_TRUE(h.started(ids.front()));
  EXPECT_FALSE(h.started(ids.back())) << "a job still waiting for a connection was not sent";
  for (uint64_t id : ids) {
    const auto res = h.wait(id, 20s);
    ASSERT_TRUE(res.has_value());
    EXPECT_EQ(res->outcome, RD_OUTCOME_OK) << res->reason;
    EXPECT_TRUE(h.started(id)) << "services->started must be called when the job is sent";
  }
  EXPECT_EQ(rx.request_count(), static_cast<size_t>(kJobs));
  EXPECT_EQ(rx.max_concurrent(), 1);
}

// A full per-host queue means the destination is saturated: the job is deferred unsent.
TEST(WebhookPlugin, FullHostQueueDefersJobsAtOnce) {
  HttpReceiver slow([](const ReceivedRequest&, size_t) {
    ReceiverResponse resp;
    resp.delay = 2s;
    return resp;
  });
  PluginHarness h(so_path(), R"({"allowed_networks": ["127.0.0.0/8"], "max_connections_per_host": 1,
                               "max_queued_per_host": 2})");
  std::vector<uint64_t> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(h.deliver(job_for(route(slow.url()))));
  // Jobs 4 and 5 find one in flight and two waiting.
  for (int i = 3; i < 5; ++i) {
    const uint64_t id = ids[static_cast<size_t>(i)];
    const auto res = h.wait(id, 1s);
    ASSERT_TRUE(res.has_value()) << "job " << i << " should have been answered at once";
    EXPECT_EQ(res->outcome, RD_OUTCOME_DEFER) << res->reason;
    EXPECT_NE(res->reason.find("max_queued_per_host=2"), std::string::npos) << res->reason;
    EXPECT_NE(res->reason.find("http://127.0.0.1:" + std::to_string(slow.port()) + " is saturated"),
              std::string::npos)
        << res->reason;
    EXPECT_GT(res->retry_after_ms, 0);
    EXPECT_FALSE(h.started(id));
  }
  EXPECT_EQ(h.metrics()["webhook_queue_rejected_total{}"], 2.0);
}

// With the default max_queued_per_host, as many jobs as the host's default delivery.max_in_flight
// (1024) can wait for one busy host: none is sent back for retry because the queue is full.
TEST(WebhookPlugin, DefaultHostQueueHoldsTheHostsDefaultInFlight) {
  HttpReceiver rx([](const ReceivedRequest&, size_t index) {
    ReceiverResponse resp;
    if (index == 0) resp.delay = 300ms;  // every other job queues up behind the first
    return resp;
  });
  PluginHarness h(so_path(), R"({"allowed_networks": ["127.0.0.0/8"], "max_connections_per_host": 1,
                               "timeout": 30000})");
  const int kJobs = 1024;
  std::vector<uint64_t> ids;
  for (int i = 0; i < kJobs; ++i) {
    ids.push_back(h.deliver(job_for(route(rx.url()), "ROUTES:" + std::to_string(i + 1))));
  }
  for (uint64_t id : ids) {
    const auto res = h.wait(id, 30s);
    ASSERT_TRUE(res.has_value());
    ASSERT_EQ(res->outcome, RD_OUTCOME_OK) << res->reason;
  }
  EXPECT_EQ(rx.request_count(), static_cast<size_t>(kJobs));
  const auto m = h.metrics();
  EXPECT_EQ(m.count("webhook_queue_rejected_total{}") ? m.at("webhook_queue_rejected_total{}") : 0,
            0);
}

TEST(WebhookPlugin, ShutdownWithRequestsInFlightIsPrompt) {
  HttpReceiver slow([](const ReceivedRequest&, size_t) {
    ReceiverResponse resp;
    resp.delay = 5s;
    return resp;
  });
  auto h = std::make_unique<PluginHarness>(so_path(), kAllowLoopback);
  for (int i = 0; i < 3; ++i) h->deliver(job_for(route(slow.url())));
  ASSERT_TRUE(slow.wait_for_requests(3, 5s));
  const auto start = std::chrono::steady_clock::now();
  h.reset();  // xDestroy with three requests held by the receiver
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s)
      << "xDestroy must not wait for the slow host";
}

// An HTTPS receiver (cpp-httplib over OpenSSL) with a self-signed certificate for 127.0.0.1 made
// by the test; stopped in its destructor.
class TlsReceiver {
 public:
  explicit TlsReceiver(const TempDir& dir) {
    cert_ = dir.file("cert.pem");
    const std::string key = dir.file("key.pem");
    write_self_signed_cert(cert_, key);
    server_ = std::make_unique<httplib::SSLServer>(cert_.c_str(), key.c_str());
    server_->Post("/hook", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard<std::mutex> lock(mu_);
      bodies_.push_back(req.body);
      res.status = 200;
    });
    port_ = server_->bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_->listen_after_bind(); });
    wait_until([this] { return server_->is_running(); }, 5s);
  }
  ~TlsReceiver() {
    server_->stop();
    thread_.join();
  }
  std::string url() const { return "https://127.0.0.1:" + std::to_string(port_) + "/hook"; }
  const std::string& cert() const { return cert_; }
  std::vector<std::string> bodies() {
    std::lock_guard<std::mutex> lock(mu_);
    return bodies_;
  }

 private:
  std::string cert_;
  int port_ = 0;
  std::unique_ptr<httplib::SSLServer> server_;
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> bodies_;
};

TEST(WebhookPlugin, HttpsVerifiesTheServerAndAcceptsACustomCaFile) {
  TempDir dir("rdtest-webhook-tls");
  TlsReceiver rx(dir);
  {
    // The system store does not know the test's self-signed certificate: refused, permanently.
    PluginHarness h(so_path(), kAllowLoopback);
    const auto res = h.deliver_sync(job_for(route(rx.url())), 10s);
    ASSERT_TRUE(res.has_value());
    EXPECT_EQ(res->outcome, RD_OUTCOME_PERMANENT) << res->reason;
    EXPECT_NE(res->reason.find("certificate"), std::string::npos) << res->reason;
  }
  EXPECT_TRUE(rx.bodies().empty());

  const json cfg = {{"allowed_networks", {"127.0.0.0/8"}}, {"ca_file", rx.cert()}};
  PluginHarness h(so_path(), cfg.dump());
  JobSpec job = job_for(route(rx.url()));
  const auto res = h.deliver_sync(job, 10s);
  ASSERT_TRUE(res.has_value());
  EXPECT_EQ(res->outcome, RD_OUTCOME_OK) << res->reason;
  ASSERT_EQ(rx.bodies().size(), 1u);
  EXPECT_EQ(rx.bodies()[0], job.payload_json);
}

// nginx (scripts/setup installs it) over TLS with HTTP/2, `return 200` for every request, logging
// the protocol and connection number of each request.
class NginxH2Sink {
 public:
  explicit NginxH2Sink(const TempDir& dir) : port_(free_port()) {
    cert_ = dir.file("cert.pem");
    log_ = dir.file("access.log");
    const std::string key = dir.file("key.pem");
    write_self_signed_cert(cert_, key);
    const std::string conf = dir.file("nginx.conf");
    write_file(conf, "worker_processes 1;\ndaemon off;\npid " + dir.file("nginx.pid") +
                         ";\nerror_log " + dir.file("error.log") +
                         ";\nevents { worker_connections 256; }\nhttp {\n"
                         "  log_format proto '$server_protocol $connection';\n"
                         "  access_log " +
                         log_ +
                         " proto;\n"
                         "  client_body_temp_path " +
                         dir.file("body") +
                         ";\n"
                         "  server {\n    listen 127.0.0.1:" +
                         std::to_string(port_) + " ssl http2;\n    ssl_certificate " + cert_ +
                         ";\n    ssl_certificate_key " + key +
                         ";\n    location / { return 200; }\n  }\n}\n");
    proc_ = Process({"/usr/sbin/nginx", "-c", conf, "-p", dir.path()}, {}, dir.file("nginx.out"));
    // Ready once it accepts TCP (an HTTP probe would show up in the access log).
    const bool up =
        wait_until([&] { return loopback_port_accepts(port_) || !proc_.running(); }, 10s);
    if (!up || !proc_.running()) throw std::runtime_error("nginx did not start: " + proc_.log());
  }
  ~NginxH2Sink() {
    proc_.signal(SIGQUIT);  // graceful: flushes the access log
    if (!proc_.wait(5s)) proc_.kill_hard();
  }
  std::string url() const { return "https://127.0.0.1:" + std::to_string(port_) + "/hook"; }
  const std::string& cert() const { return cert_; }

 private:
  int port_;
  std::string cert_, log_;
  Process proc_;
};

TEST(WebhookPlugin, Http2IsUsedWhereTheServerOffersItAndConnectionsAreShared) {
  if (::access("/usr/sbin/nginx", X_OK) != 0) GTEST_SKIP() << "nginx not installed (scripts/setup)";
  TempDir dir("rdtest-webhook-h2");
  std::optional<NginxH2Sink> nginx;
  nginx.emplace(dir);
  const json cfg = {{"allowed_networks", {"127.0.0.0/8"}},
                    {"ca_file", nginx->cert()},
                    {"max_connections_per_host", 8}};
  {
    PluginHarness h(so_path(), cfg.dump());
    std::vector<uint64_t> ids;
    for (int i = 0; i < 400; ++i) {
      ids.push_back(h.deliver(job_for(route(nginx->url()), "ROUTES:" + std::to_string(i + 1))));
    }
    for (uint64_t id : ids) {
      const auto res = h.wait(id, 20s);
      ASSERT_TRUE(res.has_value());
      // nginx answers before reading the body and resets the stream: still a delivery.
      ASSERT_EQ(res->outcome, RD_OUTCOME_OK) << res->reason;
    }
  }
  nginx.reset();  // flushes the access log
  const auto final_lines = read_lines(dir.file("access.log"));
  ASSERT_EQ(final_lines.size(), 400u);
  std::set<std::string> connections;
  for (const std::string& line : final_lines) {
    EXPECT_EQ(line.rfind("HTTP/2.0 ", 0), 0u) << line;
    connections.insert(line.substr(line.find(' ') + 1));
  }
  EXPECT_LE(connections.size(), 8u);
}

// An HTTP/2 server that answers on the request head and only then lets the body come
// (H2EarlyAnswerServer), as nginx's `return 200` often does by the time the body is sent: libcurl
// reads the whole answer, then sends the body, whose END_STREAM closes the stream inside that
// transfer's own send. libcurl 7.88 then waits for the socket to become readable, which it never
// does, so the delivery ended at its time limit (5 s here) as an OK, since it had seen the 200;
// at the end of a benchmark run that was the HTTPS drain tail (docs/performance.md, issue 14).
// Eight deliveries at once on the connection that a first one opened: before the fix most of the
// eight waited for the time limit on every run.
TEST(WebhookPlugin, Http2AnswerBeforeTheRequestBodyCompletesAtOnce) {
  TempDir dir("rdtest-webhook-h2-early");
  H2EarlyAnswerServer server(dir);
  const json cfg = {{"allowed_networks", {"127.0.0.0/8"}},
                    {"ca_file", server.cert()},
                    {"timeout", 5000},
                    {"max_connections_per_host", 8}};
  PluginHarness h(so_path(), cfg.dump());
  const auto first = h.deliver_sync(job_for(route(server.url()), "ROUTES:1"), 10s);
  ASSERT_TRUE(first.has_value());
  ASSERT_EQ(first->outcome, RD_OUTCOME_OK) << first->reason;

  const auto start = std::chrono::steady_clock::now();
  std::vector<uint64_t> ids;
  for (int i = 0; i < 8; ++i) {
    ids.push_back(h.deliver(job_for(route(server.url()), "ROUTES:" + std::to_string(i + 2))));
  }
  for (uint64_t id : ids) {
    const auto res = h.wait(id, 10s);
    ASSERT_TRUE(res.has_value());
    EXPECT_EQ(res->outcome, RD_OUTCOME_OK) << res->reason;
  }
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_LT(took, 1s) << "eight deliveries at once took "
                      << std::chrono::duration<double>(took).count()
                      << " s: answered transfers were left waiting for their time limit";
  // Every body did arrive (the last ones may still be on their way when their deliveries end).
  EXPECT_TRUE(wait_until([&] { return server.bodies().size() == 9; }, 5s))
      << server.bodies().size() << " bodies";
  EXPECT_EQ(server.connections(), 1);  // all on one HTTP/2 connection
}

// nginx over TLS (`protocols`) with HTTP/2 that closes a connection idle for 1 s and logs one line
// per connection that carried a request: "<connection> <$ssl_session_reused: r or .> <protocol>".
// Its session tickets are encrypted with a key file of the test's, so a restart keeps resuming
// sessions unless the test writes a new key first (a plain nginx restart makes new keys).
class NginxIdleTlsSink {
 public:
  NginxIdleTlsSink(const TempDir& dir, const std::string& protocols)
      : dir_(dir), port_(free_port()), cert_(dir.file("cert.pem")), log_(dir.file("conn.log")) {
    const std::string key = dir.file("key.pem");
    write_self_signed_cert(cert_, key);
    new_ticket_key();
    write_file(dir.file("nginx.conf"),
               "worker_processes 1;\ndaemon off;\npid " + dir.file("nginx.pid") + ";\nerror_log " +
                   dir.file("error.log") +
                   ";\nevents { worker_connections 64; }\nhttp {\n"
                   "  client_body_temp_path " +
                   dir.file("body") +
                   ";\n"
                   "  map $connection_requests $first { 1 1; default 0; }\n"
                   "  log_format conn '$connection $ssl_session_reused $ssl_protocol';\n"
                   "  server {\n    listen 127.0.0.1:" +
                   std::to_string(port_) + " ssl http2;\n    ssl_certificate " + cert_ +
                   ";\n    ssl_certificate_key " + key + ";\n    ssl_protocols " + protocols +
                   ";\n    ssl_session_ticket_key " + dir.file("ticket.key") +
                   ";\n    keepalive_timeout 1s;\n    access_log " + log_ +
                   " conn if=$first;\n    location / { return 200; }\n  }\n}\n");
    start();
  }
  ~NginxIdleTlsSink() { stop(); }

  void start() {
    proc_ = Process({"/usr/sbin/nginx", "-c", dir_.file("nginx.conf"), "-p", dir_.path()}, {},
                    dir_.file("nginx.out"));
    const bool up =
        wait_until([&] { return loopback_port_accepts(port_) || !proc_.running(); }, 10s);
    if (!up || !proc_.running()) throw std::runtime_error("nginx did not start: " + proc_.log());
  }
  void stop() {
    if (!proc_.running()) return;
    proc_.signal(SIGTERM);  // fast: closes connections at once (the log is not buffered)
    if (!proc_.wait(5s)) proc_.kill_hard();
  }
  void new_ticket_key() {
    unsigned char key[80];
    ASSERT_EQ(RAND_bytes(key, sizeof key), 1);
    write_file(dir_.file("ticket.key"), std::string(reinterpret_cast<char*>(key), sizeof key));
  }
  std::string url() const { return "https://127.0.0.1:" + std::to_string(port_) + "/hook"; }
  const std::string& cert() const { return cert_; }
  std::vector<std::string> connections() const { return read_lines(log_); }

 private:
  const TempDir& dir_;
  int port_;
  std::string cert_, log_;
  Process proc_;
};

class WebhookTlsResumption : public ::testing::TestWithParam<std::string> {};

// A reconnect after the server closed an idle HTTP/2 connection resumes the TLS session (an
// abbreviated handshake, nginx's $ssl_session_reused "r") instead of a full handshake, again and
// again; so does a reconnect after a restart of a server that keeps its session-ticket keys. A
// restart with new keys (what a plain nginx restart does) cannot resume: a full handshake, and
// the delivery still succeeds.
TEST_P(WebhookTlsResumption, ReconnectAfterIdleCloseOrRestartResumesTheTlsSession) {
  if (::access("/usr/sbin/nginx", X_OK) != 0) GTEST_SKIP() << "nginx not installed (scripts/setup)";
  TempDir dir("rdtest-webhook-resume");
  NginxIdleTlsSink nginx(dir, GetParam());
  const json cfg = {{"allowed_networks", {"127.0.0.0/8"}}, {"ca_file", nginx.cert()}};
  PluginHarness h(so_path(), cfg.dump());
  int n = 0;
  auto deliver = [&] {
    const auto res =
        h.deliver_sync(job_for(route(nginx.url()), "ROUTES:" + std::to_string(++n)), 10s);
    ASSERT_TRUE(res.has_value());
    EXPECT_EQ(res->outcome, RD_OUTCOME_OK) << "delivery " << n << ": " << res->reason;
  };
  deliver();                              // connection 1: a full handshake
  for (int i = 0; i < 2; ++i) {           // connections 2 and 3
    std::this_thread::sleep_for(2500ms);  // nginx closes the connection after 1 s idle
    deliver();
  }
  nginx.stop();                        // closes the open connection
  nginx.start();                       // same ticket key
  std::this_thread::sleep_for(200ms);  // a margin: the old connection's close is seen by now
  deliver();                           // connection 4
  nginx.stop();
  nginx.new_ticket_key();
  nginx.start();
  std::this_thread::sleep_for(200ms);
  deliver();  // connection 5
  nginx.stop();

  const std::vector<std::string> lines = nginx.connections();
  ASSERT_EQ(lines.size(), 5u) << "one connection per delivery expected";
  auto reused = [&](size_t i) {
    std::istringstream in(lines[i]);
    std::string connection, flag, protocol;
    in >> connection >> flag >> protocol;
    EXPECT_EQ(protocol, GetParam()) << lines[i];
    return flag;
  };
  EXPECT_EQ(reused(0), ".") << "the first connection has nothing to resume";
  EXPECT_EQ(reused(1), "r") << "after the first idle close: " << lines[1];
  EXPECT_EQ(reused(2), "r") << "after the second idle close: " << lines[2];
  EXPECT_EQ(reused(3), "r") << "after a restart with the same ticket key: " << lines[3];
  EXPECT_EQ(reused(4), ".") << "after a restart with a new ticket key: " << lines[4];
}

INSTANTIATE_TEST_SUITE_P(Protocols, WebhookTlsResumption, ::testing::Values("TLSv1.3", "TLSv1.2"),
                         [](const auto& info) {
                           std::string name = info.param;  // TLSv1_3
                           name[name.find('.')] = '_';
                           return name;
                         });

}  // namespace
}  // namespace rdtest

namespace rdtest {
namespace {
// The host withdraws a queued job whose destination's circuit opened (services->started answers
// 0): the plugin defers it and never sends it.
TEST(WebhookPlugin, JobWithdrawnAtStartIsDeferredUnsent) {
  HttpReceiver receiver;
  PluginHarness h(so_path(), kAllowLoopback);
  h.withdraw_on_start(true);
  const auto r = h.deliver_sync(job_for(route(receiver.url())), 10s);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->outcome, RD_OUTCOME_DEFER) << r->reason;
  EXPECT_NE(r->reason.find("withdrawn"), std::string::npos) << r->reason;
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(receiver.request_count(), 0u);
  h.withdraw_on_start(false);
  const auto ok = h.deliver_sync(job_for(route(receiver.url()), "ROUTES:2"), 10s);
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok->outcome, RD_OUTCOME_OK) << ok->reason;
  EXPECT_EQ(receiver.request_count(), 1u);
}
}  // namespace
}  // namespace rdtest
