#include "topic_template.hpp"

#include <cstdint>
#include <cstdio>

namespace rd::mqtt_republish {

namespace {

constexpr std::string_view kTenant = "{tenant_id}";
constexpr std::string_view kDevice = "{device_id}";

bool is_placeholder_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

}  // namespace

std::string quote(std::string_view value, size_t max_bytes) {
  std::string out = "\"";
  const size_t n = value.size() < max_bytes ? value.size() : max_bytes;
  for (size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(value[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
  if (n < value.size()) out += "... (" + std::to_string(value.size()) + " bytes)";
  return out;
}

bool is_clean_utf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    uint32_t cp = 0;
    size_t len = 0;
    if (c < 0x80) {
      cp = c;
      len = 1;
    } else if ((c & 0xE0) == 0xC0) {
      cp = c & 0x1F;
      len = 2;
    } else if ((c & 0xF0) == 0xE0) {
      cp = c & 0x0F;
      len = 3;
    } else if ((c & 0xF8) == 0xF0) {
      cp = c & 0x07;
      len = 4;
    } else {
      return false;
    }
    if (i + len > text.size()) return false;
    for (size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(text[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong encodings, surrogates and values beyond Unicode.
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) {
      return false;
    }
    if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return false;
    // NUL, control characters and non-characters: mosquitto treats them as malformed.
    if (cp <= 0x1F || (cp >= 0x7F && cp <= 0x9F)) return false;
    if ((cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE) return false;
    i += len;
  }
  return true;
}

Check validate_topic_name(std::string_view topic) {
  if (topic.empty()) return {"topic is empty after substitution"};
  if (topic.size() > kMaxTopicBytes) {
    return {"topic is " + std::to_string(topic.size()) + " bytes, over the MQTT limit of " +
            std::to_string(kMaxTopicBytes)};
  }
  if (topic.find_first_of("+#") != std::string_view::npos) {
    return {"topic " + quote(topic) +
            " contains a wildcard ('+' or '#'), not allowed when publishing"};
  }
  if (topic.front() == '$') {
    return {"topic " + quote(topic) + " starts with '$', reserved for the broker"};
  }
  if (!is_clean_utf8(topic)) {
    return {"topic " + quote(topic) + " is not valid UTF-8 or contains NUL/control characters"};
  }
  return {};
}

Check validate_substitution(std::string_view what, std::string_view value) {
  std::string bad;
  if (value.find('/') != std::string_view::npos) {
    bad = "'/'";
  } else if (value.find('+') != std::string_view::npos) {
    bad = "'+'";
  } else if (value.find('#') != std::string_view::npos) {
    bad = "'#'";
  } else if (value.find('\0') != std::string_view::npos) {
    bad = "NUL";
  }
  if (!bad.empty()) {
    return {std::string(what) + " " + quote(value) + " contains " + bad +
            ", which would change the topic's levels or add a wildcard"};
  }
  if (!is_clean_utf8(value)) {
    return {std::string(what) + " " + quote(value) +
            " is not valid UTF-8 or contains control characters"};
  }
  return {};
}

bool uses_device_id(std::string_view tmpl) {
  return tmpl.find(kDevice) != std::string_view::npos;
}

Check render(std::string_view tmpl, std::string_view tenant_id, std::string_view device_id,
             bool device_allowed, std::string& out) {
  out.clear();
  out.reserve(tmpl.size() + tenant_id.size() + device_id.size());
  bool tenant_checked = false, device_checked = false;
  size_t i = 0;
  while (i < tmpl.size()) {
    const size_t open = tmpl.find('{', i);
    if (open == std::string_view::npos) {
      out.append(tmpl.substr(i));
      break;
    }
    out.append(tmpl.substr(i, open - i));
    const std::string_view rest = tmpl.substr(open);
    if (rest.substr(0, kTenant.size()) == kTenant) {
      if (!tenant_checked) {
        if (tenant_id.empty()) return {"tenant_id is empty"};
        if (Check c = validate_substitution("tenant_id", tenant_id); !c.ok()) return c;
        tenant_checked = true;
      }
      out.append(tenant_id);
      i = open + kTenant.size();
      continue;
    }
    if (device_allowed && rest.substr(0, kDevice.size()) == kDevice) {
      if (!device_checked) {
        if (Check c = validate_substitution("device_id", device_id); !c.ok()) return c;
        device_checked = true;
      }
      out.append(device_id);
      i = open + kDevice.size();
      continue;
    }
    // `{name}` that is not ours is almost certainly a typo; a lone '{' is just a character.
    size_t k = 1;
    while (k < rest.size() && is_placeholder_char(rest[k])) ++k;
    if (k > 1 && k < rest.size() && rest[k] == '}') {
      return {"unknown placeholder " + std::string(rest.substr(0, k + 1)) + " in topic; use " +
              (device_allowed ? "{tenant_id} or {device_id}" : "{tenant_id}")};
    }
    out += '{';
    i = open + 1;
  }
  return {};
}

Check check_prefix(std::string_view prefix_tmpl, std::string_view tenant_id,
                   std::string_view topic) {
  if (prefix_tmpl.empty()) return {};
  std::string prefix;
  if (Check c = render(prefix_tmpl, tenant_id, {}, false, prefix); !c.ok()) {
    return {"topic_prefix: " + c.error};
  }
  const bool inside =
      topic.substr(0, prefix.size()) == prefix &&
      (prefix.back() == '/' || topic.size() == prefix.size() || topic[prefix.size()] == '/');
  if (!inside) {
    return {"topic " + quote(topic) + " is outside this tenant's tree " + quote(prefix) +
            " (plugins.mqtt_republish.topic_prefix)"};
  }
  return {};
}

}  // namespace rd::mqtt_republish
