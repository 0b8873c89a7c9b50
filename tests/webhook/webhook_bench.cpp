// Throughput of the webhook plugin to a local receiver, through the C ABI (PluginHarness): a
// sliding window of jobs in flight, all to one host. Prints deliveries per second; asserts only a
// floor far below what it measures (the Python design managed about 30/s), so it is not flaky.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <deque>
#include <map>
#include <nlohmann/json.hpp>

#include "http_receiver.hpp"
#include "plugin_harness.hpp"
#include "test_support.hpp"

namespace rdtest {
namespace {

// `url` empty: the test's own receiver (thread per connection, records every request).
double run(int jobs, int window, int connections, const std::string& url = "") {
  HttpReceiver rx;
  nlohmann::json cfg = {{"allowed_networks", {"127.0.0.0/8"}},
                        {"max_connections_per_host", connections}};
  if (const char* ca = std::getenv("WEBHOOK_BENCH_CA_FILE")) cfg["ca_file"] = ca;
  const std::string config = cfg.dump();
  PluginHarness h(plugin_dir() + "/webhook.so", config);
  JobSpec job;
  job.destination_config_json = nlohmann::json{{"url", url.empty() ? rx.url() : url},
                                               {"secret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}
                                    .dump();
  std::deque<uint64_t> pending;
  int ok = 0;
  std::map<std::string, int> failures;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < jobs; ++i) {
    job.message_id = "ROUTES:" + std::to_string(i + 1);
    pending.push_back(h.deliver(job));
    if (static_cast<int>(pending.size()) >= window) {
      auto r = h.wait(pending.front(), std::chrono::seconds(30));
      pending.pop_front();
      ok += r && r->outcome == RD_OUTCOME_OK;
      if (r && r->outcome != RD_OUTCOME_OK) ++failures[r->reason.substr(0, 160)];
    }
  }
  while (!pending.empty()) {
    auto r = h.wait(pending.front(), std::chrono::seconds(30));
    pending.pop_front();
    ok += r && r->outcome == RD_OUTCOME_OK;
    if (r && r->outcome != RD_OUTCOME_OK) ++failures[r->reason.substr(0, 160)];
  }
  for (const auto& [reason, n] : failures) std::printf("  %d failed: %s\n", n, reason.c_str());
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(ok, jobs);
  if (url.empty()) {
    EXPECT_EQ(rx.request_count(), static_cast<size_t>(jobs));
    EXPECT_LE(rx.connections(), connections);
  }
  const double rate = jobs / secs;
  std::printf(
      "webhook bench (%s): %d signed deliveries, window %d, max_connections_per_host %d: %.2f s = "
      "%.0f deliveries/s\n",
      url.empty() ? "test receiver" : url.c_str(), jobs, window, connections, secs, rate);
  return rate;
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

TEST(WebhookBench, DeliveriesPerSecondToLocalReceiver) {
  if (kSanitized) GTEST_SKIP() << "throughput is not measured under sanitizers";
  const double rate8 = run(20000, 256, 8);
  const double rate32 = run(20000, 256, 32);
  EXPECT_GT(rate8, 300.0);
  EXPECT_GT(rate32, 300.0);
}

// Against an external sink, e.g. nginx with `location / { return 200; }`:
//   WEBHOOK_BENCH_URL=http://127.0.0.1:8089/hook webhook_bench
// (for an https sink with a self-signed certificate, WEBHOOK_BENCH_CA_FILE=cert.pem)
TEST(WebhookBench, DeliveriesPerSecondToExternalSink) {
  const char* url = std::getenv("WEBHOOK_BENCH_URL");
  if (url == nullptr || *url == '\0') GTEST_SKIP() << "WEBHOOK_BENCH_URL not set";
  run(50000, 512, 8, url);
  run(50000, 512, 32, url);
}

}  // namespace
}  // namespace rdtest
