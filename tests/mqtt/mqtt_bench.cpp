// Throughput of mqtt_republish: acknowledged QoS 1 republishes per second to a local mosquitto,
// through the real plugin .so and the C ABI (PluginHarness), with many jobs in flight the way the
// host runs it (delivery.max_in_flight). Run: build-*/bin/mqtt_bench (label "bench").
// RD_BENCH_JOBS, RD_BENCH_WINDOW (jobs outstanding at the host) and RD_BENCH_INFLIGHT (the plugin's
// max_inflight) override the defaults.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "mqtt_test_support.hpp"
#include "plugin_harness.hpp"
#include "test_support.hpp"

using namespace rdtest;
using namespace std::chrono_literals;

namespace {

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}

struct BenchRun {
  int ok = 0;
  double seconds = 0;
  double rate() const { return ok / seconds; }
};

BenchRun run(PluginHarness& h, int jobs, int window) {
  JobSpec spec;
  spec.destination_config_json = R"({"topic":"bench/{tenant_id}/{device_id}","qos":1})";
  spec.payload_json = R"({"device_id":"dev-1","temp":21.5,"humidity":40,"ts":1700000000000})";
  std::vector<uint64_t> ids;
  ids.reserve(jobs);
  BenchRun r;
  const auto start = std::chrono::steady_clock::now();
  size_t next_wait = 0;
  const auto settle = [&] {
    auto res = h.wait(ids[next_wait++], 30s);
    if (res && res->outcome == RD_OUTCOME_OK) ++r.ok;
  };
  for (int i = 0; i < jobs; ++i) {
    if (static_cast<int>(ids.size() - next_wait) >= window) settle();
    ids.push_back(h.deliver(spec));
  }
  while (next_wait < ids.size()) settle();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace

TEST(MqttBench, AcknowledgedQos1RepublishesPerSecond) {
  const int jobs = env_int("RD_BENCH_JOBS", 20000);
  const int window = env_int("RD_BENCH_WINDOW", 1024);
  const int inflight = env_int("RD_BENCH_INFLIGHT", 100);
  Mosquitto broker("bench", "bench-pw");
  PluginHarness h(mqtt_plugin_path(),
                  mqtt_plugin_config(broker.port(), "bench", "bench-pw",
                                     R"("max_inflight":)" + std::to_string(inflight)));
  std::string detail;
  ASSERT_TRUE(h.health(detail)) << detail;

  run(h, 2000, window);  // warm-up
  const BenchRun many = run(h, jobs, window);
  const BenchRun serial = run(h, std::min(jobs, 3000), 1);
  std::printf(
      "mqtt_republish QoS 1 to local mosquitto: %d jobs, host window %d, plugin max_inflight %d: "
      "%.0f acked/s (%.2f s); one at a time: %.0f acked/s\n",
      jobs, window, inflight, many.rate(), many.seconds, serial.rate());
  RecordProperty("acked_per_second", std::to_string(static_cast<long>(many.rate())));
  EXPECT_EQ(many.ok, jobs);
  EXPECT_GT(many.rate(), 2 * serial.rate()) << "publishes are not pipelined";
}
