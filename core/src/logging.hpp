// Structured logging: one line per event, JSON or key=value text, on stderr.
// Events are short snake_case names ("plugin_loaded"); details go into fields. Never log secrets.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>

namespace rd::log {

enum class Level { debug = 0, info = 1, warn = 2, error = 3, off = 4 };
enum class Format { json, text };

struct Field {
  std::string_view key;
  std::string value;
  bool quoted;  // JSON string (true) or raw number/bool (false)
};

template <typename T>
Field kv(std::string_view key, const T& value) {
  if constexpr (std::is_same_v<T, bool>) {
    return {key, value ? "true" : "false", false};
  } else if constexpr (std::is_arithmetic_v<T>) {
    return {key, std::to_string(value), false};
  } else {
    return {key, std::string(value), true};
  }
}

void init(Level level, Format format);
Level parse_level(std::string_view text, bool* ok = nullptr);
bool enabled(Level level);
void write(Level level, std::string_view event, std::initializer_list<Field> fields = {});

inline void debug(std::string_view e, std::initializer_list<Field> f = {}) {
  write(Level::debug, e, f);
}
inline void info(std::string_view e, std::initializer_list<Field> f = {}) {
  write(Level::info, e, f);
}
inline void warn(std::string_view e, std::initializer_list<Field> f = {}) {
  write(Level::warn, e, f);
}
inline void error(std::string_view e, std::initializer_list<Field> f = {}) {
  write(Level::error, e, f);
}

// Escapes `text` as the inside of a JSON string (invalid UTF-8 bytes become \u00XX).
void append_json_escaped(std::string& out, std::string_view text);

}  // namespace rd::log
