// plugins.mqtt_republish settings: defaults, bounds, and messages that name the key.
#include "config.hpp"

#include <gtest/gtest.h>

#include <set>
#include <stdexcept>
#include <string>

using namespace rd::mqtt_republish;

namespace {
std::string error_of(const std::string& json) {
  try {
    parse_settings(json);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(MqttSettings, DefaultsWhenKeysAreMissing) {
  const Settings s = parse_settings("{}");
  EXPECT_FALSE(s.configured());
  EXPECT_EQ(s.port, 1883);
  EXPECT_EQ(s.qos, 1);
  EXPECT_GT(s.max_inflight, 1) << "many publishes in flight, not one at a time";
  EXPECT_EQ(s.max_inflight, 1000);
}

TEST(MqttSettings, AsTheHostPassesThem) {
  const Settings s = parse_settings(
      R"({"host":"mqtt.example.com","port":8883,"username":"u","password":"p","qos":2,
          "topic_prefix":"tenants/{tenant_id}/","tls":false,"ca_file":"/etc/ca.pem",
          "max_inflight":500,"publish_timeout":2500,"connect_timeout":1000,"reconnect_min":1000,
          "reconnect_max":8000,"keepalive":20000,"client_id_prefix":"rd"})");
  EXPECT_TRUE(s.configured());
  EXPECT_TRUE(s.use_tls()) << "ca_file turns TLS on";
  EXPECT_EQ(s.server_uri(), "ssl://mqtt.example.com:8883");
  EXPECT_EQ(s.qos, 2);
  EXPECT_EQ(s.max_inflight, 500);
  EXPECT_EQ(s.publish_timeout_ms, 2500);
}

TEST(MqttSettings, PlainTcpAndIpv6) {
  Settings s = parse_settings(R"({"host":"127.0.0.1","port":1884})");
  EXPECT_EQ(s.server_uri(), "tcp://127.0.0.1:1884");
  s = parse_settings(R"({"host":"::1","tls":true})");
  EXPECT_EQ(s.server_uri(), "ssl://[::1]:1883");
}

TEST(MqttSettings, BadValuesNameTheKey) {
  EXPECT_NE(error_of(R"({"qos":3})").find("plugins.mqtt_republish.qos"), std::string::npos);
  EXPECT_NE(error_of(R"({"qos":-1})").find("qos"), std::string::npos);
  EXPECT_NE(error_of(R"({"port":0})").find("plugins.mqtt_republish.port"), std::string::npos);
  EXPECT_NE(error_of(R"({"max_inflight":0})").find("max_inflight"), std::string::npos);
  EXPECT_NE(error_of(R"({"host":"tcp://x"})").find("host"), std::string::npos);
  EXPECT_NE(error_of(R"({"topic_prefix":"t/{device_id}/"})").find("topic_prefix"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"topic_prefix":"t/#"})").find("topic_prefix"), std::string::npos);
  EXPECT_NE(error_of(R"({"client_id_prefix":"a b"})").find("client_id_prefix"), std::string::npos);
  EXPECT_NE(error_of(R"({"reconnect_min":5000,"reconnect_max":1000})").find("reconnect_max"),
            std::string::npos);
  EXPECT_NE(error_of("[]").find("not a JSON object"), std::string::npos);
}

TEST(MqttSettings, SecretNeverInErrors) {
  const std::string e = error_of(R"({"password":"hunter2","qos":9})");
  EXPECT_FALSE(e.empty());
  EXPECT_EQ(e.find("hunter2"), std::string::npos);
}

TEST(MqttClientId, UniquePerProcessAndInstance) {
  std::set<std::string> ids;
  ids.insert(make_client_id("route-delivery", "host-1", 100, 1, 0xdeadbeef));
  ids.insert(make_client_id("route-delivery", "host-1", 101, 1, 0xdeadbeef));  // other daemon
  ids.insert(make_client_id("route-delivery", "host-1", 100, 2, 0xdeadbeef));  // other instance
  ids.insert(make_client_id("route-delivery", "host-1", 1, 1, 0x1));  // same pid in a container
  ids.insert(make_client_id("route-delivery", "host-1", 1, 1, 0x2));
  EXPECT_EQ(ids.size(), 5u);
  EXPECT_EQ(make_client_id("rd", "h", 7, 1, 0xab), "rd-h-7-1-000000ab");
  EXPECT_EQ(make_client_id("rd", "we ird/host", 7, 1, 0), "rd-we_ird_host-7-1-00000000");
}
