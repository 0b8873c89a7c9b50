#include "pg_support.hpp"

#include <cctype>
#include <cstdint>
#include <utility>

namespace rd::pg {

namespace {

bool is_uri(const std::string& url) {
  return url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0;
}

bool is_space(char c) {
  return std::isspace(static_cast<unsigned char>(c)) != 0;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// The (key, raw value) pairs of a URI's query string.
std::vector<std::pair<std::string, std::string>> uri_query(const std::string& url) {
  std::vector<std::pair<std::string, std::string>> out;
  const size_t q = url.find('?');
  if (q == std::string::npos) return out;
  for (size_t pos = q + 1; pos <= url.size();) {
    size_t amp = url.find('&', pos);
    if (amp == std::string::npos) amp = url.size();
    const std::string param = url.substr(pos, amp - pos);
    const size_t eq = param.find('=');
    if (eq != std::string::npos) out.emplace_back(param.substr(0, eq), param.substr(eq + 1));
    pos = amp + 1;
  }
  return out;
}

// The (key, unquoted value) pairs of a libpq key=value string.
std::vector<std::pair<std::string, std::string>> keyword_pairs(const std::string& s) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t i = 0;
  while (true) {
    while (i < s.size() && is_space(s[i])) ++i;
    if (i >= s.size()) break;
    const size_t k0 = i;
    while (i < s.size() && s[i] != '=' && !is_space(s[i])) ++i;
    std::string key = s.substr(k0, i - k0);
    while (i < s.size() && is_space(s[i])) ++i;
    if (i >= s.size() || s[i] != '=') break;  // malformed: libpq will say so when connecting
    ++i;
    while (i < s.size() && is_space(s[i])) ++i;
    std::string value;
    const bool quoted = i < s.size() && s[i] == '\'';
    if (quoted) ++i;
    for (; i < s.size() && (quoted ? s[i] != '\'' : !is_space(s[i])); ++i) {
      if (s[i] == '\\' && i + 1 < s.size()) ++i;
      value += s[i];
    }
    if (quoted && i < s.size()) ++i;
    out.emplace_back(std::move(key), std::move(value));
  }
  return out;
}

}  // namespace

std::string with_connection_defaults(const std::string& url, int connect_timeout_s,
                                     std::string_view application_name) {
  const bool uri = is_uri(url);
  const auto present = uri ? uri_query(url) : keyword_pairs(url);
  const std::pair<const char*, std::string> defaults[] = {
      {"connect_timeout", std::to_string(connect_timeout_s)},
      {"application_name", std::string(application_name)},
      {"client_encoding", "UTF8"},
  };
  std::string out = url;
  for (const auto& [key, value] : defaults) {
    bool set = false;
    for (const auto& kv : present) set = set || kv.first == key;
    if (set) continue;
    if (uri) {
      out += (out.find('?') == std::string::npos) ? '?' : '&';
    } else if (!out.empty()) {
      out += ' ';
    }
    out += std::string(key) + "=" + value;
  }
  return out;
}

std::vector<std::string> conninfo_secrets(const std::string& url) {
  std::vector<std::string> out;
  auto add = [&](const std::string& raw, bool encoded) {
    if (raw.empty()) return;
    out.push_back(encoded ? percent_decode(raw) : raw);
    if (encoded && out.back() != raw) out.push_back(raw);
  };
  if (is_uri(url)) {
    const size_t start = url.find("://") + 3;
    const size_t end = url.find_first_of("/?", start);
    const std::string authority =
        url.substr(start, end == std::string::npos ? std::string::npos : end - start);
    const size_t at = authority.rfind('@');
    const size_t colon = authority.find(':');
    if (at != std::string::npos && colon < at)
      add(authority.substr(colon + 1, at - colon - 1), true);
    for (const auto& [key, value] : uri_query(url)) {
      if (key == "password") add(value, true);
    }
  } else {
    for (const auto& [key, value] : keyword_pairs(url)) {
      if (key == "password") add(value, false);
    }
  }
  return out;
}

std::string short_error(const std::string& what, const std::vector<std::string>& secrets) {
  std::string line = what.substr(0, what.find('\n'));
  for (const char* prefix : {"ERROR:  ", "FATAL:  "}) {
    if (line.rfind(prefix, 0) == 0) line.erase(0, std::string_view(prefix).size());
  }
  while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.pop_back();
  for (const std::string& secret : secrets) {
    if (secret.empty()) continue;
    for (size_t pos = line.find(secret); pos != std::string::npos; pos = line.find(secret, pos)) {
      line.replace(pos, secret.size(), "***");
      pos += 3;
    }
  }
  return to_valid_utf8(line);
}

std::string to_valid_utf8(std::string_view s) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t len = 0;
    uint32_t cp = 0;
    if (c == 0) {
      len = 0;
    } else if (c < 0x80) {
      len = 1;
      cp = c;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    }
    bool ok = len > 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) ok = false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Reject overlong forms, surrogates and values beyond U+10FFFF.
    if (ok && ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
               (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)) {
      ok = false;
    }
    if (ok) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out.append(kReplacement);
      i += 1;
    }
  }
  return out;
}

std::string sqlstate_of(const pqxx::sql_error& e) {
  if (!e.sqlstate().empty()) return e.sqlstate();
  if (dynamic_cast<const pqxx::insufficient_privilege*>(&e) != nullptr) return "42501";
  if (dynamic_cast<const pqxx::undefined_table*>(&e) != nullptr) return "42P01";
  if (dynamic_cast<const pqxx::syntax_error*>(&e) != nullptr) return "42601";
  if (dynamic_cast<const pqxx::integrity_constraint_violation*>(&e) != nullptr) return "23000";
  if (dynamic_cast<const pqxx::data_exception*>(&e) != nullptr) return "22000";
  if (dynamic_cast<const pqxx::insufficient_resources*>(&e) != nullptr) return "53000";
  return "";
}

std::string rollback_sqlstate(const pqxx::transaction_rollback& e) {
  if (dynamic_cast<const pqxx::serialization_failure*>(&e) != nullptr) return "40001";
  if (dynamic_cast<const pqxx::deadlock_detected*>(&e) != nullptr) return "40P01";
  if (dynamic_cast<const pqxx::statement_completion_unknown*>(&e) != nullptr) return "40003";
  return "40000";
}

}  // namespace rd::pg
