#include "classify.hpp"

#include <gtest/gtest.h>

namespace rd::webhook {
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
  // The destination was tried and the try failed: an attempt is spent.
  for (CURLcode c : {CURLE_OPERATION_TIMEDOUT, CURLE_SEND_ERROR, CURLE_RECV_ERROR,
                     CURLE_GOT_NOTHING, CURLE_SSL_CONNECT_ERROR, CURLE_PARTIAL_FILE, CURLE_HTTP2,
                     CURLE_HTTP2_STREAM, CURLE_WEIRD_SERVER_REPLY}) {
    EXPECT_EQ(classify_transport_error(c, true), Disposition::kRetry) << curl_easy_strerror(c);
  }
  // Could not be tried (down, unreachable, no connection in time): no attempt is spent.
  for (bool sent : {false, true}) {
    for (CURLcode c : {CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST}) {
      EXPECT_EQ(classify_transport_error(c, sent), Disposition::kDefer) << curl_easy_strerror(c);
    }
  }
  EXPECT_EQ(classify_transport_error(CURLE_OPERATION_TIMEDOUT, false), Disposition::kDefer);
  // A connection lost or refused during the TLS handshake stays a retry, as before.
  EXPECT_EQ(classify_transport_error(CURLE_SSL_CONNECT_ERROR, false), Disposition::kRetry);
  EXPECT_EQ(classify_transport_error(CURLE_RECV_ERROR, false), Disposition::kRetry);
  for (bool sent : {false, true}) {
    for (CURLcode c : {CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL,
                       CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE}) {
      EXPECT_EQ(classify_transport_error(c, sent), Disposition::kPermanent)
          << curl_easy_strerror(c);
    }
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

RequestReport report(long status, CURLcode code = CURLE_OK, bool sent = true) {
  RequestReport r;
  r.status = status;
  r.code = code;
  r.sent = sent;
  r.host = "hooks.example.com:443";
  r.destination = "https://hooks.example.com:443";
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

  auto refused_report = report(0, CURLE_COULDNT_CONNECT, false);
  refused_report.curl_error = "Failed to connect to hooks.example.com port 443: Connection refused";
  const Decision refused = decide(refused_report, 200);
  EXPECT_EQ(refused.disposition, Disposition::kDefer);
  EXPECT_EQ(refused.retry_after_ms, -1);
  EXPECT_NE(refused.reason.find("https://hooks.example.com:443"), std::string::npos)
      << refused.reason;
  EXPECT_NE(refused.reason.find("Connection refused"), std::string::npos) << refused.reason;
  EXPECT_NE(refused.reason.find("not sent"), std::string::npos) << refused.reason;

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

TEST(WebhookClassify, DeferOnlyWhenTheRequestWasNotSent) {
  // A timeout before the request left (no connection, or no TLS session, in time): not tried.
  auto connect_timeout = report(0, CURLE_OPERATION_TIMEDOUT, false);
  connect_timeout.curl_error = "Connection timed out after 2001 milliseconds";
  const Decision early = decide(connect_timeout, 200);
  EXPECT_EQ(early.disposition, Disposition::kDefer);
  EXPECT_NE(early.reason.find("https://hooks.example.com:443"), std::string::npos) << early.reason;
  EXPECT_NE(early.reason.find("Connection timed out after 2001 milliseconds"), std::string::npos)
      << early.reason;

  // The same timeout after the request went out: tried, and no answer in time.
  const Decision late = decide(report(0, CURLE_OPERATION_TIMEDOUT, true), 200);
  EXPECT_EQ(late.disposition, Disposition::kRetry);
  EXPECT_NE(late.reason.find("timed out after 10000 ms"), std::string::npos) << late.reason;

  auto unresolved = report(0, CURLE_COULDNT_RESOLVE_HOST, false);
  unresolved.curl_error = "Could not resolve host: hooks.example.com";
  const Decision dns = decide(unresolved, 200);
  EXPECT_EQ(dns.disposition, Disposition::kDefer);
  EXPECT_NE(dns.reason.find("Could not resolve host"), std::string::npos) << dns.reason;

  // A connection lost after sending is a failed try; an answer always decides.
  EXPECT_EQ(decide(report(0, CURLE_GOT_NOTHING, true), 200).disposition, Disposition::kRetry);
  EXPECT_EQ(decide(report(0, CURLE_SEND_ERROR, true), 200).disposition, Disposition::kRetry);
  EXPECT_EQ(decide(report(503, CURLE_OK, true), 200).disposition, Disposition::kRetry);
  EXPECT_EQ(decide(report(404, CURLE_OK, true), 200).disposition, Disposition::kPermanent);

  // The SSRF guard refusing every address is permanent, not "unreachable".
  auto ssrf = report(0, CURLE_COULDNT_CONNECT, false);
  ssrf.ssrf_refusal = "address 10.0.0.1 is private";
  EXPECT_EQ(decide(ssrf, 200).disposition, Disposition::kPermanent);
}

TEST(WebhookClassify, RetryAfterIgnoredOnPermanentFailures) {
  auto r = report(400);
  r.retry_after = "60";
  EXPECT_EQ(decide(r, 200).retry_after_ms, -1);
}

}  // namespace
}  // namespace rd::webhook
