#include "metrics.hpp"

#include <gtest/gtest.h>

namespace {

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

}  // namespace
