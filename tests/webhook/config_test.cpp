#include "config.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <stdexcept>

#include "request_builder.hpp"
#include "signing.hpp"

namespace rd::webhook {
namespace {

bool has_header(const OutgoingRequest& r, const std::string& line) {
  return std::find(r.headers.begin(), r.headers.end(), line) != r.headers.end();
}

std::string header_value(const OutgoingRequest& r, const std::string& name) {
  for (const std::string& h : r.headers) {
    if (h.size() > name.size() && strncasecmp(h.c_str(), name.c_str(), name.size()) == 0 &&
        h[name.size()] == ':') {
      return h.substr(name.size() + 2);
    }
  }
  return "<absent>";
}

TEST(WebhookConfig, PluginDefaultsAndHostNormalisedValues) {
  const PluginConfig d = parse_plugin_config("{}");
  EXPECT_EQ(d.timeout_ms, 10000);
  EXPECT_TRUE(d.allowed_networks.empty());
  EXPECT_EQ(d.max_connections_per_host, 8);
  // Above the host's default delivery.max_in_flight (1024): a burst to one host is never sent
  // back for retry because the host's queue is full.
  EXPECT_EQ(d.max_queued_per_host, 4096);

  const PluginConfig c = parse_plugin_config(
      R"({"timeout": 2500, "allowed_networks": ["127.0.0.0/8", "fd00::/8"], "ca_file": "",
          "max_connections_per_host": 4, "threads": 2})");
  EXPECT_EQ(c.timeout_ms, 2500);
  ASSERT_EQ(c.allowed_networks.size(), 2u);
  EXPECT_EQ(c.allowed_networks[0].to_string(), "127.0.0.0/8");
  EXPECT_EQ(c.max_connections_per_host, 4);
  EXPECT_EQ(c.threads, 2);

  // "3" from WEBHOOK_TIMEOUT_SECONDS or a comma-separated WEBHOOK_ALLOWED_NETWORKS reach the
  // plugin already normalised by the host (webhook_e2e_test covers both); other shapes are errors.
  EXPECT_THROW(parse_plugin_config(R"({"timeout": "3"})"), std::invalid_argument);
  EXPECT_THROW(parse_plugin_config(R"({"allowed_networks": "10.0.0.0/8"})"), std::invalid_argument);
}

TEST(WebhookConfig, PluginErrorsNameTheKey) {
  auto message = [](const char* json) {
    try {
      parse_plugin_config(json);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("<no error>");
  };
  EXPECT_NE(message(R"({"timeout": 0})").find("plugins.webhook.timeout"), std::string::npos);
  EXPECT_NE(message(R"({"timeout": "soon"})").find("plugins.webhook.timeout"), std::string::npos);
  EXPECT_NE(message(R"({"allowed_networks": ["nope"]})").find("allowed_networks"),
            std::string::npos);
  EXPECT_NE(message(R"({"max_connections_per_host": 0})").find("max_connections_per_host"),
            std::string::npos);
  EXPECT_NE(message("[1]").find("plugins.webhook"), std::string::npos);
}

TEST(WebhookConfig, RouteConfigParsesAndValidates) {
  const ParsedRoute ok = parse_route_config(
      R"({"url": "https://Hooks.Example.com/in?x=1", "method": "put",
          "headers": {"X-Tenant": "a", "Authorization": "Bearer t"}, "secret": "s3cret",
          "timeout_ms": 1500})");
  ASSERT_TRUE(ok.config) << ok.error;
  EXPECT_EQ(ok.config->method, "PUT");
  EXPECT_EQ(ok.config->scheme, "https");
  EXPECT_EQ(ok.config->port, 443);
  EXPECT_EQ(ok.config->host_key, "Hooks.Example.com:443");
  EXPECT_EQ(ok.config->destination_key, "https://hooks.example.com:443");
  EXPECT_EQ(ok.config->secret_kind, SecretKind::kXSignature256);
  EXPECT_EQ(ok.config->timeout_ms, 1500);
  EXPECT_FALSE(ok.config->host_literal.has_value());

  const ParsedRoute wh = parse_route_config(
      R"({"url": "http://hooks.example.com:8080/", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})");
  ASSERT_TRUE(wh.config) << wh.error;
  EXPECT_EQ(wh.config->method, "POST");
  EXPECT_EQ(wh.config->port, 8080);
  EXPECT_EQ(wh.config->destination_key, "http://hooks.example.com:8080");
  EXPECT_EQ(wh.config->secret_kind, SecretKind::kStandardWebhooks);
  EXPECT_EQ(wh.config->secret_key, *base64_decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));

  struct Bad {
    const char* json;
    const char* mentions;
  };
  const Bad bad[] = {
      {R"({})", "config.url"},
      {R"({"url": ""})", "config.url"},
      {R"({"url": "ftp://example.com/x"})", "http"},
      {R"({"url": "file:///etc/passwd"})", "config.url"},
      {R"({"url": "not a url"})", "config.url"},
      {R"({"url": "https://example.com", "method": "GET"})", "config.method"},
      {R"({"url": "https://example.com", "method": "DELETE"})", "POST, PUT or PATCH"},
      {R"({"url": "https://example.com", "headers": {"webhook-signature": "x"}})",
       "webhook-signature"},
      {R"({"url": "https://example.com", "headers": {"X-Signature-256": "x"}})", "X-Signature-256"},
      {R"({"url": "https://example.com", "headers": {"Content-Length": "1"}})", "Content-Length"},
      {R"({"url": "https://example.com", "headers": {"X-A": "a\r\nX-B: b"}})", "line break"},
      {R"({"url": "https://example.com", "headers": {"X-A": 5}})", "config.headers.X-A"},
      {R"({"url": "https://example.com", "headers": {"bad name": "v"}})", "header name"},
      {R"({"url": "https://example.com", "secret": "whsec_***"})", "base64"},
      {R"({"url": "https://example.com", "timeout_ms": -1})", "timeout_ms"},
      {"not json", "JSON"},
  };
  for (const Bad& b : bad) {
    const ParsedRoute r = parse_route_config(b.json);
    EXPECT_FALSE(r.config) << b.json;
    EXPECT_NE(r.error.find(b.mentions), std::string::npos) << b.json << " -> " << r.error;
  }
}

TEST(WebhookConfig, IpLiteralHostsInAnySpellingAreRecognised) {
  for (const char* url : {"http://127.0.0.1:9/x", "http://2130706433/", "http://0x7f.1/",
                          "http://[::ffff:127.0.0.1]:8080/", "http://0177.0.0.1/"}) {
    const ParsedRoute r = parse_route_config(std::string(R"({"url": ")") + url + "\"}");
    ASSERT_TRUE(r.config) << url << ": " << r.error;
    ASSERT_TRUE(r.config->host_literal.has_value()) << url << " host=" << r.config->host;
    EXPECT_TRUE(AddressPolicy().check(*r.config->host_literal).has_value()) << url;
  }
}

TEST(WebhookRequest, HeadersBodyAndStandardWebhooksSignature) {
  const ParsedRoute p = parse_route_config(
      R"({"url": "https://example.com/hook", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
          "headers": {"X-Tenant": "acme", "X-Empty": ""}})");
  ASSERT_TRUE(p.config) << p.error;
  const std::string body = R"({"test": 2432232314})";
  const OutgoingRequest r = build_request(*p.config, body, "msg_p5jXN8AQM9LWM0D4loKWxJek",
                                          1614265330, "route-delivery/1.2.3");
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.url, "https://example.com/hook");
  EXPECT_EQ(r.body, body);
  EXPECT_TRUE(has_header(r, "Content-Type: application/json"));
  EXPECT_TRUE(has_header(r, "User-Agent: route-delivery/1.2.3"));
  EXPECT_TRUE(has_header(r, "X-Tenant: acme"));
  EXPECT_TRUE(has_header(r, "X-Empty;"));  // libcurl's spelling of an empty header
  EXPECT_TRUE(has_header(r, "webhook-id: msg_p5jXN8AQM9LWM0D4loKWxJek"));
  EXPECT_TRUE(has_header(r, "webhook-timestamp: 1614265330"));
  EXPECT_EQ(header_value(r, "webhook-signature"),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
  EXPECT_EQ(header_value(r, "X-Signature-256"), "<absent>");
  EXPECT_TRUE(has_header(r, "Expect:"));
}

TEST(WebhookRequest, PlainSecretGivesXSignature256AndMethodIsKept) {
  const ParsedRoute p =
      parse_route_config(R"({"url": "http://example.com/", "secret": "my-secret", "method": "PATCH",
                             "headers": {"content-type": "application/cloudevents+json"}})");
  ASSERT_TRUE(p.config) << p.error;
  const OutgoingRequest r = build_request(*p.config, R"({"device_id":"dev-1","temp":21.5})",
                                          "msg_x", 1, "route-delivery/1");
  EXPECT_EQ(r.method, "PATCH");
  EXPECT_EQ(header_value(r, "X-Signature-256"),
            "sha256=367e52c30fe7715cf07b68db1cacb4d2ece8ef9ae7a865352514b449ad36934f");
  EXPECT_EQ(header_value(r, "webhook-signature"), "<absent>");
  EXPECT_FALSE(has_header(r, "Content-Type: application/json"));  // the route's own wins
  EXPECT_TRUE(has_header(r, "content-type: application/cloudevents+json"));
}

TEST(WebhookRequest, NoSecretNoSignature) {
  const ParsedRoute p = parse_route_config(R"({"url": "http://example.com/"})");
  ASSERT_TRUE(p.config);
  const OutgoingRequest r = build_request(*p.config, "{}", "msg_x", 1, "route-delivery/1");
  EXPECT_EQ(header_value(r, "webhook-signature"), "<absent>");
  EXPECT_EQ(header_value(r, "X-Signature-256"), "<absent>");
  EXPECT_EQ(header_value(r, "webhook-id"), "msg_x");
}

}  // namespace
}  // namespace rd::webhook
