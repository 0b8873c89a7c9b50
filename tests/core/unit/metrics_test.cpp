#include "metrics.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <ctime>
#include <limits>
#include <string>
#include <thread>

#include "process_metrics.hpp"
#include "thread_annotations.hpp"

namespace {

// The sample value of `name` (a line "name value"), NaN when absent.
double sample(const std::string& text, const std::string& name) {
  const auto at = text.find("\n" + name + " ");
  if (at == std::string::npos) return std::nan("");
  return std::stod(text.substr(at + name.size() + 2));
}

TEST(Metrics, PrometheusTextHasTheContractNames) {
  rd::Metrics m;
  const size_t w = m.register_destination("webhook");
  m.destination(w).outcomes[static_cast<size_t>(rd::Outcome::ok)] += 3;
  m.destination(w).duration.observe(0.004);
  m.in_flight = 2;
  m.nats_connected = 1;
  const std::string text = m.render_prometheus();
  EXPECT_NE(
      text.find("route_delivery_deliveries_total{destination_type=\"webhook\",outcome=\"ok\"} 3"),
      std::string::npos);
  EXPECT_NE(text.find("route_delivery_delivery_duration_seconds_bucket{destination_type="
                      "\"webhook\",le=\"0.005\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(
      text.find("route_delivery_delivery_duration_seconds_count{destination_type=\"webhook\"} 1"),
      std::string::npos);
  EXPECT_NE(text.find("route_delivery_in_flight 2"), std::string::npos);
  EXPECT_NE(text.find("route_delivery_nats_connected 1"), std::string::npos);
}

// The table lock's acquisitions and waits: every acquisition is counted, and one that finds the
// lock held is counted once more as a wait; the counts are what /metrics shows.
TEST(Metrics, TableLockCountsTheAcquisitionsThatHadToWait) {
  rd::Metrics m;
  rd::Mutex mu;
  mu.count_in(&m.table_lock_waits, &m.table_lock_acquisitions);
  for (int i = 0; i < 100; ++i) {
    rd::MutexLock lock(mu);  // free every time: no wait
  }
  EXPECT_EQ(m.table_lock_waits.load(), 0u);
  EXPECT_EQ(m.table_lock_acquisitions.load(), 100u);
  std::atomic<bool> got{false};
  std::thread other;
  {
    rd::MutexLock held(mu);
    other = std::thread([&] {
      rd::MutexLock lock(mu);
      got = true;
    });
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (m.table_lock_waits.load() == 0 && std::chrono::steady_clock::now() < give_up)
      std::this_thread::yield();
    EXPECT_EQ(m.table_lock_waits.load(), 1u) << "the blocked acquisition was not counted";
    EXPECT_FALSE(got.load());
  }
  other.join();
  EXPECT_TRUE(got.load());
  EXPECT_EQ(m.table_lock_waits.load(), 1u);
  EXPECT_EQ(sample(m.render_prometheus(), "route_delivery_table_lock_waits_total"), 1.0);
  EXPECT_EQ(sample(m.render_prometheus(), "route_delivery_table_lock_acquisitions_total"), 102.0);
}

TEST(Metrics, PluginMetricsRegisterOnceAndRejectBadNames) {
  rd::Metrics m;
  const int32_t a = m.register_plugin_metric(rd::Metrics::Kind::counter, "webhook_requests_total",
                                             "class=\"2xx\"", "x");
  const int32_t b = m.register_plugin_metric(rd::Metrics::Kind::counter, "webhook_requests_total",
                                             "class=\"2xx\"", "x");
  EXPECT_GE(a, 0);
  EXPECT_EQ(a, b);
  m.plugin_add(a, 2);
  m.plugin_add(a, 3);
  m.plugin_add(99, 1);  // unknown handle is ignored
  EXPECT_EQ(m.register_plugin_metric(rd::Metrics::Kind::counter, "bad name", "", ""), -1);
  EXPECT_EQ(m.register_plugin_metric(rd::Metrics::Kind::counter, "ok_name", "broken{", ""), -1);
  const std::string text = m.render_prometheus();
  EXPECT_NE(text.find("route_delivery_plugin_webhook_requests_total{class=\"2xx\"} 5"),
            std::string::npos)
      << text;
}

// A plugin created by a reload registers series while other plugins' threads update theirs: the
// first series keep their handles and values (run under TSan in CI through the reload tests),
// and past the table's size registration answers -1, whose updates are ignored.
TEST(Metrics, PluginSeriesRegisteredWhileOthersUpdateKeepTheirValuesUpToTheLimit) {
  rd::Metrics m;
  const int32_t first =
      m.register_plugin_metric(rd::Metrics::Kind::counter, "first_total", "", "the first");
  ASSERT_EQ(first, 0);
  std::atomic<bool> done{false};
  std::atomic<bool> updating{false};
  std::thread updater([&] {
    while (!done.load()) {
      m.plugin_add(first, 1);
      updating = true;
    }
  });
  while (!updating.load()) std::this_thread::yield();
  int32_t last = -1;
  for (size_t i = 1; i < rd::Metrics::kMaxPluginMetrics; ++i) {
    last =
        m.register_plugin_metric(rd::Metrics::Kind::gauge, "series_" + std::to_string(i), "", "");
    ASSERT_EQ(last, static_cast<int32_t>(i));
  }
  done = true;
  updater.join();
  EXPECT_EQ(m.register_plugin_metric(rd::Metrics::Kind::gauge, "one_too_many", "", ""), -1);
  EXPECT_EQ(m.register_plugin_metric(rd::Metrics::Kind::gauge, "series_7", "", ""), 7)
      << "a series already registered is still found when the table is full";
  m.plugin_set(last, 42);
  m.plugin_set(-1, 1);
  const std::string text = m.render_prometheus();
  EXPECT_GT(sample(text, "route_delivery_plugin_first_total"), 0);
  EXPECT_EQ(sample(text, "route_delivery_plugin_series_1023"), 42);
  EXPECT_EQ(text.find("one_too_many"), std::string::npos);
}

// Shortest round-trip: the text reads back as the same double and has no noise digits.
TEST(Metrics, NumbersAreShortestRoundTrip) {
  auto text = [](double v) {
    std::string out;
    rd::append_prometheus_number(out, v);
    return out;
  };
  EXPECT_EQ(text(0.000662), "0.000662");
  EXPECT_EQ(text(0.004), "0.004");
  EXPECT_EQ(text(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(text(5), "5");
  EXPECT_EQ(text(1e-7), "1e-07");
  EXPECT_EQ(text(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(text(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(text(std::nan("")), "NaN");
  for (double v : {0.000662, 1.0 / 3, 123456.789, 2.5e-300}) EXPECT_EQ(std::stod(text(v)), v);

  rd::Metrics m;
  const size_t w = m.register_destination("webhook");
  m.destination(w).duration.observe(0.004);
  const std::string prom = m.render_prometheus();
  EXPECT_NE(prom.find("route_delivery_delivery_duration_seconds_sum{destination_type=\"webhook\"} "
                      "0.004\n"),
            std::string::npos)
      << prom;
}

TEST(Metrics, BuildInfoAndProcessMetrics) {
  rd::Metrics m;
  const std::string text = m.render_prometheus();
  EXPECT_NE(
      text.find("# TYPE route_delivery_build_info gauge\nroute_delivery_build_info{version=\"" +
                std::string(RD_VERSION) + "\"} 1\n"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find("# TYPE process_cpu_seconds_total counter\n"), std::string::npos) << text;
  EXPECT_GE(sample(text, "process_cpu_seconds_total"), 0);
  EXPECT_GT(sample(text, "process_resident_memory_bytes"), 1 << 20) << text;
  EXPECT_GE(sample(text, "process_open_fds"), 3) << text;  // stdin, stdout, stderr at least
  EXPECT_GT(sample(text, "process_max_fds"), 0) << text;
  // This test process started moments ago.
  EXPECT_NEAR(sample(text, "process_start_time_seconds"), static_cast<double>(std::time(nullptr)),
              600)
      << text;
}

TEST(Metrics, ProcStatWithBlanksAndParenthesesInTheCommandName) {
  // Fields 14/15 utime/stime = 250/150 ticks, 22 starttime = 1000 ticks, 23 vsize, 24 rss pages.
  const std::string stat =
      "4242 (route (de) livery) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 150 0 0 20 0 9 0 1000 "
      "104857600 2560 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0";
  rd::ProcessStats s;
  ASSERT_TRUE(rd::parse_proc_stat(stat, 1'700'000'000, 100, 4096, s));
  EXPECT_DOUBLE_EQ(s.cpu_seconds, 4.0);
  EXPECT_DOUBLE_EQ(s.start_time_seconds, 1'700'000'010.0);
  EXPECT_DOUBLE_EQ(s.virtual_memory_bytes, 104857600.0);
  EXPECT_DOUBLE_EQ(s.resident_memory_bytes, 2560.0 * 4096);
  EXPECT_FALSE(rd::parse_proc_stat("garbage", 0, 100, 4096, s));
}

}  // namespace
