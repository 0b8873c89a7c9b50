#include "classify.hpp"

#include <cctype>
#include <cstring>

namespace rd::webhook {

namespace {

constexpr int64_t kMaxRetryAfterMs = 24LL * 3600 * 1000;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

bool parse_int(std::string_view s, int& out) {
  if (!all_digits(s) || s.size() > 9) return false;
  out = 0;
  for (char c : s) out = out * 10 + (c - '0');
  return true;
}

int month_index(std::string_view m) {
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  if (m.size() != 3) return -1;
  for (int i = 0; i < 12; ++i) {
    if (strncasecmp(m.data(), kMonths[i], 3) == 0) return i + 1;
  }
  return -1;
}

// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's days_from_civil).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool parse_clock(std::string_view s, int& h, int& mi, int& sec) {
  if (s.size() != 8 || s[2] != ':' || s[5] != ':') return false;
  return parse_int(s.substr(0, 2), h) && parse_int(s.substr(3, 2), mi) &&
         parse_int(s.substr(6, 2), sec) && h < 24 && mi < 60 && sec <= 60;
}

// Splits on spaces (runs of spaces count as one, as in asctime's "Nov  6").
int split_words(std::string_view s, std::string_view* out, int max) {
  int n = 0;
  while (!s.empty()) {
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    if (s.empty()) break;
    const size_t sp = s.find(' ');
    if (n == max) return max + 1;
    out[n++] = s.substr(0, sp);
    s.remove_prefix(sp == std::string_view::npos ? s.size() : sp);
  }
  return n;
}

// Seconds since the epoch of an HTTP-date, or nullopt.
std::optional<int64_t> parse_http_date(std::string_view s) {
  std::string_view w[6];
  const int n = split_words(s, w, 6);
  int day = 0, year = 0, h = 0, mi = 0, sec = 0, mon = -1;
  if (n == 6 && w[0].size() == 4 && w[0][3] == ',' && w[5] == "GMT") {
    // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
    mon = month_index(w[2]);
    if (!parse_int(w[1], day) || !parse_int(w[3], year) || w[3].size() != 4 ||
        !parse_clock(w[4], h, mi, sec)) {
      return std::nullopt;
    }
  } else if (n == 4 && !w[0].empty() && w[0].back() == ',' && w[3] == "GMT") {
    // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
    const std::string_view d = w[1];
    if (d.size() != 9 || d[2] != '-' || d[6] != '-') return std::nullopt;
    mon = month_index(d.substr(3, 3));
    if (!parse_int(d.substr(0, 2), day) || !parse_int(d.substr(7, 2), year) ||
        !parse_clock(w[2], h, mi, sec)) {
      return std::nullopt;
    }
    year += year < 70 ? 2000 : 1900;  // RFC 7231 7.1.1.1: a year that looks >50y ahead is past
  } else if (n == 5) {
    // asctime: Sun Nov  6 08:49:37 1994
    mon = month_index(w[1]);
    if (!parse_int(w[2], day) || !parse_int(w[4], year) || w[4].size() != 4 ||
        !parse_clock(w[3], h, mi, sec)) {
      return std::nullopt;
    }
  } else {
    return std::nullopt;
  }
  if (mon < 1 || day < 1 || day > 31) return std::nullopt;
  const int64_t days =
      days_from_civil(year, static_cast<unsigned>(mon), static_cast<unsigned>(day));
  return days * 86400 + h * 3600 + mi * 60 + sec;
}

const char* status_text(Disposition d) {
  return d == Disposition::kRetry ? "retry" : "permanent";
}

// libcurl's name for the error and, when it wrote one, its detail.
std::string curl_text(const RequestReport& r) {
  std::string text = curl_easy_strerror(r.code);
  if (!r.curl_error.empty()) text += ": " + r.curl_error;
  return text;
}

}  // namespace

Disposition classify_status(long status) {
  if (status >= 200 && status <= 299) return Disposition::kOk;
  if (status == 408 || status == 425 || status == 429) return Disposition::kRetry;
  if (status >= 500 && status <= 599) return Disposition::kRetry;
  return Disposition::kPermanent;
}

Disposition classify_transport_error(CURLcode code, bool sent) {
  switch (code) {
    case CURLE_OK:
      return Disposition::kOk;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      // Down or unreachable: nothing was sent, so no attempt is spent.
      return Disposition::kDefer;
    case CURLE_OPERATION_TIMEDOUT:
      // Before the request left (no connection in time) the destination was not tried; after,
      // it was, and did not answer in time.
      return sent ? Disposition::kRetry : Disposition::kDefer;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_LOGIN_DENIED:
    case CURLE_TOO_MANY_REDIRECTS:
      return Disposition::kPermanent;
    default:
      // Reset connections, TLS handshake failures, broken or empty responses: the destination
      // may be back in a moment.
      return Disposition::kRetry;
  }
}

std::optional<int64_t> parse_retry_after(std::string_view value, int64_t now_ms) {
  value = trim(value);
  if (value.empty()) return std::nullopt;
  if (all_digits(value)) {
    if (value.size() > 9) return kMaxRetryAfterMs;
    int64_t seconds = 0;
    for (char c : value) seconds = seconds * 10 + (c - '0');
    const int64_t ms = seconds * 1000;
    return ms > kMaxRetryAfterMs ? kMaxRetryAfterMs : ms;
  }
  const auto at = parse_http_date(value);
  if (!at) return std::nullopt;
  int64_t delay = *at * 1000 - now_ms;
  if (delay < 0) delay = 0;
  return delay > kMaxRetryAfterMs ? kMaxRetryAfterMs : delay;
}

namespace {
// Length of the valid UTF-8 sequence at the start of `s` (RFC 3629: no overlongs, no surrogates),
// or 0 when it is not one.
size_t utf8_sequence(std::string_view s) {
  const auto b = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char lead = b(0);
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    n = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    n = 3;
    if (lead == 0xE0) lo = 0xA0;
    if (lead == 0xED) hi = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    n = 4;
    if (lead == 0xF0) lo = 0x90;
    if (lead == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (s.size() < n || b(1) < lo || b(1) > hi) return 0;
  for (size_t i = 2; i < n; ++i) {
    if ((b(i) & 0xC0) != 0x80) return 0;
  }
  return n;
}
}  // namespace

std::string excerpt(std::string_view body, size_t max_bytes) {
  // The reason ends up in JSON (logs, dead-letter records): it must be valid UTF-8.
  std::string out;
  out.reserve(body.size() < max_bytes ? body.size() : max_bytes);
  bool cut = false;
  size_t i = 0;
  while (i < body.size()) {
    const unsigned char u = static_cast<unsigned char>(body[i]);
    std::string_view piece;
    char replacement = 0;
    if (u < 0x20 || u == 0x7f || u == ' ') {
      ++i;
      if (out.empty() || out.back() == ' ') continue;
      replacement = ' ';
    } else if (u < 0x80) {
      piece = body.substr(i, 1);
      ++i;
    } else if (const size_t n = utf8_sequence(body.substr(i)); n > 0) {
      piece = body.substr(i, n);
      i += n;
    } else {
      replacement = '?';
      ++i;
    }
    const size_t len = replacement != 0 ? 1 : piece.size();
    if (out.size() + len > max_bytes) {
      cut = true;
      break;
    }
    if (replacement != 0) {
      out += replacement;
    } else {
      out.append(piece);
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  if (cut) out += "...";
  return out;
}

Decision decide(const RequestReport& r, size_t excerpt_bytes) {
  Decision d;
  if (!r.ssrf_refusal.empty()) {
    d.disposition = Disposition::kPermanent;
    d.reason = r.ssrf_refusal;
    return d;
  }
  // Once a final status has arrived the receiver has decided, whatever happened to the rest of
  // the exchange: a body larger than we read, a server that answered before reading all of ours
  // and reset the HTTP/2 stream (nginx's `return 200` does), a connection closed after the head.
  const bool have_status = r.status >= 200;
  if (!have_status) {
    d.disposition = classify_transport_error(r.code, r.sent);
    const std::string& destination = r.destination.empty() ? r.host : r.destination;
    if (d.disposition == Disposition::kDefer && r.code == CURLE_OPERATION_TIMEDOUT) {
      d.reason = "no connection to " + destination + " within " + std::to_string(r.timeout_ms) +
                 " ms, request not sent (" + curl_text(r) + ")";
    } else if (d.disposition == Disposition::kDefer) {
      d.reason = destination + " is unreachable, request not sent (" + curl_text(r) + ")";
    } else if (r.code == CURLE_OPERATION_TIMEDOUT) {
      d.reason = "timed out after " + std::to_string(r.timeout_ms) + " ms (" + r.host +
                 "); the limit is plugins.webhook.timeout or the route's timeout_ms";
    } else {
      d.reason = curl_text(r) + " (" + r.host + ")";
    }
    if (d.disposition == Disposition::kOk) d.disposition = Disposition::kRetry;  // no status at all
    return d;
  }
  d.disposition = classify_status(r.status);
  if (d.disposition == Disposition::kOk) return d;
  d.reason = "HTTP " + std::to_string(r.status) + " from " + r.host + " (" +
             status_text(d.disposition) + ")";
  if (r.status >= 300 && r.status <= 399) d.reason += "; redirects are not followed";
  const std::string text = excerpt(r.body, excerpt_bytes);
  if (!text.empty()) d.reason += ": " + text;
  if (d.disposition == Disposition::kRetry && !r.retry_after.empty()) {
    if (auto ms = parse_retry_after(r.retry_after, r.now_ms)) d.retry_after_ms = *ms;
  }
  return d;
}

}  // namespace rd::webhook
