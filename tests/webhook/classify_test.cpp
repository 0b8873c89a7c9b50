#include "classify.hpp"

#include <gtest/gtest.h>

namespace webhook {
namespace {

TEST(WebhookClassify, StatusTable) {
  struct Row {
    long status;
    Disposition expected;
  };
  const Row rows[] = {
      {200, Disposition::kOk},        {201, Disposition::kOk},
      {202, Disposition::kOk},        {204, Disposition::kOk},
      {299, Disposition::kOk},        {301, Disposition::kPermanent},
      {302, Disposition::kPermanent}, {307, Disposition::kPermanent},
      {308, Disposition::kPermanent}, {400, Disposition::kPermanent},
      {401, Disposition::kPermanent}, {403, Disposition::kPermanent},
      {404, Disposition::kPermanent}, {405, Disposition::kPermanent},
      {409, Disposition::kPermanent}, {410, Disposition::kPermanent},
      {413, Disposition::kPermanent}, {422, Disposition::kPermanent},
      {408, Disposition::kRetry},     {425, Disposition::kRetry},
      {429, Disposition::kRetry},     {500, Disposition::kRetry},
      {502, Disposition::kRetry},     {503, Disposition::kRetry},
      {504, Disposition::kRetry},     {599, Disposition::kRetry},
      {100, Disposition::kPermanent}, {600, Disposition::kPermanent},
  };
  for (const Row& r : rows) EXPECT_EQ(classify_status(r.status), r.expected) << r.status;
}

TEST(WebhookClassify, TransportErrorTable) {
  for (CURLcode c :
       {CURLE_OPERATION_TIMEDOUT, CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST,
        CURLE_SEND_ERROR, CURLE_RECV_ERROR, CURLE_GOT_NOTHING, CURLE_SSL_CONNECT_ERROR,
        CURLE_PARTIAL_FILE, CURLE_HTTP2, CURLE_HTTP2_STREAM, CURLE_WEIRD_SERVER_REPLY}) {
    EXPECT_EQ(classify_transport_error(c), Disposition::kRetry) << curl_easy_strerror(c);
  }
  for (CURLcode c : {CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL,
                     CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE}) {
    EXPECT_EQ(classify_transport_error(c), Disposition::kPermanent) << curl_easy_strerror(c);
  }
}

TEST(WebhookClassify, RetryAfterSeconds) {
  EXPECT_EQ(parse_retry_after("120", 0), 120000);
  EXPECT_EQ(parse_retry_after(" 3 \r\n", 0), 3000);
  EXPECT_EQ(parse_retry_after("0", 0), 0);
  EXPECT_EQ(parse_retry_after("99999999999", 0), 24LL * 3600 * 1000);  // clamped to a day
  EXPECT_FALSE(parse_retry_after("", 0).has_value());
  EXPECT_FALSE(parse_retry_after("-5", 0).has_value());
  EXPECT_FALSE(parse_retry_after("1.5", 0).has_value());
  EXPECT_FALSE(parse_retry_after("soon", 0).has_value());
}

TEST(WebhookClassify, RetryAfterHttpDateInAllThreeForms) {
  const int64_t at = 784111777LL * 1000;  // Sun, 06 Nov 1994 08:49:37 GMT
  const int64_t now = at - 30000;
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), 30000);
  EXPECT_EQ(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now), 30000);
  EXPECT_EQ(parse_retry_after("Sun Nov  6 08:49:37 1994", now), 30000);
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", at + 5000), 0);  // already past
  EXPECT_EQ(parse_retry_after("Wed, 29 Feb 2024 00:00:00 GMT", 1709164800000LL - 1000), 1000);
  EXPECT_FALSE(parse_retry_after("Sun, 06 Foo 1994 08:49:37 GMT", now).has_value());
  EXPECT_FALSE(parse_retry_after("Sun, 06 Nov 1994 25:49:37 GMT", now).has_value());
  EXPECT_FALSE(parse_retry_after("Sun, 06 Nov 1994 08:49:37 PST", now).has_value());
}

TEST(WebhookClassify, ExcerptIsShortSingleLineAndUtf8Safe) {
  EXPECT_EQ(excerpt("  oops\r\n\tbad  thing \n", 100), "oops bad thing");
  EXPECT_EQ(excerpt("abcdefghij", 4), "abcd...");
  EXPECT_EQ(excerpt("ab\xC3\xA9", 3), "ab...");  // never cut inside "é"
  EXPECT_EQ(excerpt("", 10), "");
  // Whatever bytes the receiver sends, the reason stays valid UTF-8 (it goes into JSON).
  EXPECT_EQ(excerpt("caf\xC3\xA9 \xFF\xFE ok \xED\xA0\x80 \xE2\x82", 100),
            "caf\xC3\xA9 ?? ok ??? ??");
  EXPECT_EQ(excerpt("\xF0\x9F\x98\x80!", 100), "\xF0\x9F\x98\x80!");
}

RequestReport report(long status, CURLcode code = CURLE_OK) {
  RequestReport r;
  r.status = status;
  r.code = code;
  r.host = "hooks.example.com:443";
  r.timeout_ms = 10000;
  r.now_ms = 1000000;
  return r;
}

TEST(WebhookClassify, DecideOkRetryPermanentWithReasons) {
  EXPECT_EQ(decide(report(204), 200).disposition, Disposition::kOk);

  auto r500 = report(500);
  r500.body = "database is down\n";
  const Decision d500 = decide(r500, 200);
  EXPECT_EQ(d500.disposition, Disposition::kRetry);
  EXPECT_EQ(d500.retry_after_ms, -1);
  EXPECT_NE(d500.reason.find("HTTP 500"), std::string::npos) << d500.reason;
  EXPECT_NE(d500.reason.find("database is down"), std::string::npos) << d500.reason;

  auto r429 = report(429);
  r429.retry_after = " 7\r\n";
  const Decision d429 = decide(r429, 200);
  EXPECT_EQ(d429.disposition, Disposition::kRetry);
  EXPECT_EQ(d429.retry_after_ms, 7000);

  const Decision d400 = decide(report(400), 200);
  EXPECT_EQ(d400.disposition, Disposition::kPermanent);
  EXPECT_NE(d400.reason.find("HTTP 400"), std::string::npos);

  const Decision d302 = decide(report(302), 200);
  EXPECT_EQ(d302.disposition, Disposition::kPermanent);
  EXPECT_NE(d302.reason.find("redirect"), std::string::npos);

  const Decision timeout = decide(report(0, CURLE_OPERATION_TIMEDOUT), 200);
  EXPECT_EQ(timeout.disposition, Disposition::kRetry);
  EXPECT_NE(timeout.reason.find("timed out after 10000 ms"), std::string::npos) << timeout.reason;

  const Decision refused = decide(report(0, CURLE_COULDNT_CONNECT), 200);
  EXPECT_EQ(refused.disposition, Disposition::kRetry);
  EXPECT_NE(refused.reason.find("hooks.example.com:443"), std::string::npos) << refused.reason;

  auto ssrf = report(0, CURLE_COULDNT_CONNECT);
  ssrf.ssrf_refusal = "address 10.0.0.1 is private";
  const Decision dssrf = decide(ssrf, 200);
  EXPECT_EQ(dssrf.disposition, Disposition::kPermanent);
  EXPECT_EQ(dssrf.reason, "address 10.0.0.1 is private");

  // A status that arrived counts even when reading the body then failed.
  EXPECT_EQ(decide(report(503, CURLE_WRITE_ERROR), 200).disposition, Disposition::kRetry);
  EXPECT_EQ(decide(report(200, CURLE_WRITE_ERROR), 200).disposition, Disposition::kOk);
  EXPECT_EQ(decide(report(200, CURLE_HTTP2_STREAM), 200).disposition, Disposition::kOk);
  EXPECT_EQ(decide(report(400, CURLE_SEND_ERROR), 200).disposition, Disposition::kPermanent);
  // An interim 1xx is no answer.
  EXPECT_EQ(decide(report(100, CURLE_RECV_ERROR), 200).disposition, Disposition::kRetry);
}

TEST(WebhookClassify, RetryAfterIgnoredOnPermanentFailures) {
  auto r = report(400);
  r.retry_after = "60";
  EXPECT_EQ(decide(r, 200).retry_after_ms, -1);
}

}  // namespace
}  // namespace webhook
