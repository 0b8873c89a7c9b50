// Optional C++17 helpers for writing a route-delivery plugin on top of <route_delivery/plugin.h>.
//
// Header-only, C++17 standard library only; nothing here changes the ABI. It gives a C++ plugin:
//   - rd::Completer: reports a result for one delivery_id (copying nothing, the host copies).
//   - rd::PluginAdapter<T>: turns a C++ class into the C entry points, with every exception caught
//     at the boundary (an escaping exception from deliver() becomes a PERMANENT result with the
//     exception's message; from create() a create error).
//   - rd::ConfigReader: typed reads of the config object xCreate receives, by declared key, with
//     errors that name the key (rd::ConfigKeyError).
//   - rd::config_key, rd::range, rd::at_least, rd::at_most, rd::required, rd::one_of: entries of
//     the declared key table, with the constraints the host checks (ABI 1.2).
//   - rd::RouteCache<V>: a bounded, thread-safe cache of what a plugin derives from a route's
//     destination_config text, so each distinct config is parsed once.
//
// A plugin class T provides:
//   static std::unique_ptr<T> create(const rd_host_services* services, const char* config_json);
//       throws std::exception with a message that says what is wrong in the config
//   void deliver(uint64_t delivery_id, const rd_job& job);      // must not block
//   bool health(std::string& detail);                           // optional
//   size_t destination(const rd_job& job, char* key, size_t key_len);  // optional (ABI 1.1):
//       the job's destination key for the host's fairness share and circuit breaker
//   static constexpr bool kReportsStarted = true;               // optional (ABI 1.1): the plugin
//       calls Completer::started(id) when a queued job is sent
//   static void validate(const char* config_json);             // optional (ABI 1.2): throws
//       what create() would throw about the config, creating nothing (becomes xValidate, which
//       --check-config and start-up call)
//
// and the plugin source ends with
//   RD_DEFINE_CPP_PLUGIN(T, "name", "1.0.0", "destination_type", "description", keys, key_count)
#ifndef ROUTE_DELIVERY_PLUGIN_HPP
#define ROUTE_DELIVERY_PLUGIN_HPP

#include <route_delivery/plugin.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <limits>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace rd {

inline std::string_view view(const char* data, size_t len) {
  return {data, len};
}

// Reports outcomes to the host. Cheap to copy; valid until xDestroy returns.
class Completer {
 public:
  explicit Completer(const rd_host_services* services = nullptr) : services_(services) {}

  void ok(uint64_t delivery_id) const { finish(delivery_id, RD_OUTCOME_OK, {}, -1); }
  void retry(uint64_t delivery_id, std::string_view reason, int64_t retry_after_ms = -1) const {
    finish(delivery_id, RD_OUTCOME_RETRY, reason, retry_after_ms);
  }
  void permanent(uint64_t delivery_id, std::string_view reason) const {
    finish(delivery_id, RD_OUTCOME_PERMANENT, reason, -1);
  }
  // The destination could not be tried (down, unreachable, saturated): no attempt is spent.
  // Against a 1.0 host, which has no DEFER, this reports RETRY.
  void defer(uint64_t delivery_id, std::string_view reason, int64_t retry_after_ms = -1) const {
    finish(delivery_id, host_has_defer() ? RD_OUTCOME_DEFER : RD_OUTCOME_RETRY, reason,
           retry_after_ms);
  }
  bool host_has_defer() const { return services_->abi_minor >= 1; }
  // The job leaves the plugin's queue to be sent now (ABI 1.1). False: the host withdrew it
  // (its destination's circuit opened while it waited); complete it with defer() unsent. Always
  // true on a 1.0 host.
  bool started(uint64_t delivery_id) const {
    if (RD_HAS_FIELD(services_, rd_host_services, started) && services_->started != nullptr)
      return services_->started(services_->host, delivery_id) != 0;
    return true;
  }
  void finish(uint64_t delivery_id, int32_t outcome, std::string_view reason,
              int64_t retry_after_ms) const {
    rd_result result{};
    result.struct_size = sizeof(rd_result);
    result.outcome = outcome;
    result.retry_after_ms = retry_after_ms;
    result.reason = reason.data();
    result.reason_len = reason.size();
    services_->complete(services_->host, delivery_id, &result);
  }
  void log(int32_t level, const std::string& message) const {
    services_->log(services_->host, level, message.c_str());
  }
  const rd_host_services* services() const { return services_; }

 private:
  const rd_host_services* services_;
};

namespace detail {
template <typename T, typename = void>
struct has_health : std::false_type {};
template <typename T>
struct has_health<T, std::void_t<decltype(std::declval<T&>().health(std::declval<std::string&>()))>>
    : std::true_type {};

template <typename T, typename = void>
struct has_destination : std::false_type {};
template <typename T>
struct has_destination<T, std::void_t<decltype(std::declval<T&>().destination(
                              std::declval<const rd_job&>(), std::declval<char*>(), size_t{0}))>>
    : std::true_type {};
template <typename T, typename = void>
struct has_validate : std::false_type {};
template <typename T>
struct has_validate<T, std::void_t<decltype(T::validate(std::declval<const char*>()))>>
    : std::true_type {};

template <typename T, typename = void>
struct reports_started : std::false_type {};
template <typename T>
struct reports_started<T, std::void_t<decltype(T::kReportsStarted)>>
    : std::integral_constant<bool, T::kReportsStarted> {};

inline void copy_error(char* error, size_t error_len, const char* text) {
  if (error != nullptr && error_len > 0) std::snprintf(error, error_len, "%s", text);
}
}  // namespace detail

// C entry points for a C++ plugin class T; exceptions never cross the boundary.
template <typename T>
struct PluginAdapter {
  struct Instance {
    const rd_host_services* services;
    std::unique_ptr<T> plugin;
  };

  static int32_t create(const rd_host_services* services, const char* config_json, void** out,
                        char* error, size_t error_len) {
    try {
      auto plugin = T::create(services, config_json);
      if (!plugin) {
        detail::copy_error(error, error_len, "plugin create returned no instance");
        return 1;
      }
      auto instance = std::make_unique<Instance>(Instance{services, std::move(plugin)});
      *out = instance.release();
      return 0;
    } catch (const std::exception& e) {
      detail::copy_error(error, error_len, e.what());
    } catch (...) {
      detail::copy_error(error, error_len, "unknown exception in plugin create");
    }
    return 1;
  }

  // Plugin destructors must not throw (a throwing destructor terminates the process).
  static void destroy(void* instance) noexcept { delete static_cast<Instance*>(instance); }

  static void deliver(void* instance, uint64_t delivery_id, const rd_job* job) noexcept {
    auto* self = static_cast<Instance*>(instance);
    try {
      self->plugin->deliver(delivery_id, *job);
    } catch (const std::exception& e) {
      // If the plugin already completed before throwing, the host ignores this second result.
      Completer(self->services)
          .permanent(delivery_id, std::string("plugin exception: ") + e.what());
    } catch (...) {
      Completer(self->services).permanent(delivery_id, "plugin exception: unknown");
    }
  }

  static int32_t health(void* instance, char* detail, size_t detail_len) noexcept {
    if constexpr (detail::has_health<T>::value) {
      try {
        std::string text;
        const bool ok = static_cast<Instance*>(instance)->plugin->health(text);
        detail::copy_error(detail, detail_len, text.c_str());
        return ok ? 1 : 0;
      } catch (const std::exception& e) {
        detail::copy_error(detail, detail_len, e.what());
        return 0;
      } catch (...) {
        return 0;
      }
    } else {
      (void)instance;
      detail::copy_error(detail, detail_len, "");
      return 1;
    }
  }

  static size_t destination(void* instance, const rd_job* job, char* key, size_t key_len) noexcept {
    if constexpr (detail::has_destination<T>::value) {
      try {
        return static_cast<Instance*>(instance)->plugin->destination(*job, key, key_len);
      } catch (...) {
        return 0;  // no key: the host falls back to the route
      }
    } else {
      (void)instance;
      (void)job;
      (void)key;
      (void)key_len;
      return 0;
    }
  }

  static int32_t validate(const char* config_json, char* error, size_t error_len) noexcept {
    if constexpr (detail::has_validate<T>::value) {
      try {
        T::validate(config_json);
        return 0;
      } catch (const std::exception& e) {
        detail::copy_error(error, error_len, e.what());
      } catch (...) {
        detail::copy_error(error, error_len, "unknown exception in plugin validate");
      }
      return 1;
    } else {
      (void)config_json;
      (void)error;
      (void)error_len;
      return 0;
    }
  }

  static rd_plugin_descriptor descriptor(const char* name, const char* version,
                                         const char* destination_type, const char* description,
                                         const rd_config_key* keys, uint32_t key_count) {
    rd_plugin_descriptor d{};
    d.struct_size = sizeof(rd_plugin_descriptor);
    d.abi_major = RD_ABI_VERSION_MAJOR;
    d.abi_minor = RD_ABI_VERSION_MINOR;
    d.name = name;
    d.version = version;
    d.destination_type = destination_type;
    d.description = description;
    d.config_keys = keys;
    d.config_key_count = key_count;
    d.xCreate = &create;
    d.xDestroy = &destroy;
    d.xDeliver = &deliver;
    d.xHealth = &health;
    d.flags = detail::reports_started<T>::value ? RD_PLUGIN_REPORTS_STARTED : 0u;
    d.xDestination = detail::has_destination<T>::value ? &destination : nullptr;
    d.xValidate = detail::has_validate<T>::value ? &validate : nullptr;
    return d;
  }
};

// Helper to build an rd_config_key table entry.
constexpr rd_config_key config_key(int32_t type, const char* name, const char* default_value,
                                   const char* env, const char* description) {
  return rd_config_key{
      sizeof(rd_config_key), type, name, default_value, env, description, 0u, 0u, 0, 0, nullptr};
}

// Constraints the host checks before xValidate and xCreate, in --check-config and at start-up
// (ABI 1.2; a 1.0/1.1 host ignores them, so keep the same checks in create()):
//   rd::range(rd::config_key(RD_CONFIG_INT, "qos", "1", "MQTT_QOS", "..."), 0, 2)
//   rd::at_least(rd::config_key(RD_CONFIG_DURATION, "timeout", "10s", nullptr, "..."), 1)
//   rd::required(rd::config_key(RD_CONFIG_STRING, "url", "", "X_URL", "..."))
//   rd::one_of(rd::config_key(RD_CONFIG_STRING, "method", "POST", nullptr, "..."), "POST,PUT")
// Durations are bounded in milliseconds.
constexpr rd_config_key range(rd_config_key key, int64_t min, int64_t max) {
  key.flags |= RD_CONFIG_HAS_MIN | RD_CONFIG_HAS_MAX;
  key.min_value = min;
  key.max_value = max;
  return key;
}
constexpr rd_config_key at_least(rd_config_key key, int64_t min) {
  key.flags |= RD_CONFIG_HAS_MIN;
  key.min_value = min;
  return key;
}
constexpr rd_config_key at_most(rd_config_key key, int64_t max) {
  key.flags |= RD_CONFIG_HAS_MAX;
  key.max_value = max;
  return key;
}
constexpr rd_config_key required(rd_config_key key) {
  key.flags |= RD_CONFIG_REQUIRED;
  return key;
}
// `values` is comma-separated, e.g. "GET,POST".
constexpr rd_config_key one_of(rd_config_key key, const char* values) {
  key.allowed_values = values;
  return key;
}

// ---- Reading the plugin's configuration -------------------------------------------------------
//
// xCreate receives plugins.<name> as a JSON object that the host has already validated against the
// declared keys: every declared key is present and normalised by its type (see RD_CONFIG_* in
// plugin.h): a string, an integer, true/false, integer milliseconds for a duration, an array of
// strings for a list. rd::ConfigReader reads that object by declared key and type:
//
//   const rd::ConfigReader config(config_json, "mqtt_republish", kConfigKeys);
//   settings.port = static_cast<int>(config.integer("port", 1883, 1, 65535));
//   settings.publish_timeout_ms = config.duration_ms("publish_timeout", 10000, 100, 3600000);
//
// `fallback` is used when the key is absent or null. The host never leaves a declared key out, so
// it only matters to tests and harnesses that pass part of the object: keep it equal to the
// declared default. A value of the wrong kind or out of range throws rd::ConfigKeyError naming the
// key, e.g. "plugins.mqtt_republish.port: must be between 1 and 65535, got 0"; string values are
// never quoted in errors (they may be secrets). Reading a key the table does not declare, or with
// another type than declared, is a bug in the plugin and throws std::logic_error naming the key.
// Parse once in create(); an rd::ConfigReader is immutable and may be read from any thread.
// (Not rd::Config or rd::ConfigError: the host's own classes in namespace rd have those names.)

// A configuration value a plugin cannot work with; what() names the key and what is wrong. Thrown
// from create(), it becomes the xCreate error the daemon prints at start-up.
class ConfigKeyError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

class ConfigReader {
 public:
  // `config_json` is xCreate's argument (NULL counts as {}); `plugin` is the descriptor's name,
  // used in messages as plugins.<plugin>.<key>; `keys` is the plugin's declared key table, which
  // must outlive this object. Throws ConfigKeyError when the text is not one JSON object.
  ConfigReader(const char* config_json, std::string plugin, const rd_config_key* keys,
               size_t key_count)
      : ConfigReader(
            config_json != nullptr ? std::string_view(config_json) : std::string_view("{}"),
            std::move(plugin), keys, key_count) {}
  template <size_t N>
  ConfigReader(const char* config_json, std::string plugin, const rd_config_key (&keys)[N])
      : ConfigReader(config_json, std::move(plugin), keys, N) {}
  template <size_t N>
  ConfigReader(std::string_view config_json, std::string plugin, const rd_config_key (&keys)[N])
      : ConfigReader(config_json, std::move(plugin), keys, N) {}
  ConfigReader(std::string_view config_json, std::string plugin, const rd_config_key* keys,
               size_t key_count)
      : plugin_(std::move(plugin)), keys_(keys), key_count_(key_count) {
    std::string error;
    if (!Parser(config_json, values_).parse(error)) {
      throw ConfigKeyError("plugins." + plugin_ + ": configuration is not a JSON object (" + error +
                           ")");
    }
  }

  // RD_CONFIG_STRING or RD_CONFIG_SECRET.
  std::string string(std::string_view key, std::string fallback = {}) const {
    const Value* v = find(key, RD_CONFIG_STRING);
    if (v == nullptr) return fallback;
    if (v->kind != Value::kString) fail(key, "must be a string" + got(*v));
    return v->text;
  }

  // RD_CONFIG_INT, within [min, max].
  int64_t integer(std::string_view key, int64_t fallback,
                  int64_t min = std::numeric_limits<int64_t>::min(),
                  int64_t max = std::numeric_limits<int64_t>::max()) const {
    const Value* v = find(key, RD_CONFIG_INT);
    if (v == nullptr) return fallback;
    if (v->kind != Value::kInteger) fail(key, "must be an integer" + got(*v));
    check_range(key, v->number, min, max, "");
    return v->number;
  }

  // RD_CONFIG_BOOL.
  bool boolean(std::string_view key, bool fallback) const {
    const Value* v = find(key, RD_CONFIG_BOOL);
    if (v == nullptr) return fallback;
    if (v->kind != Value::kBool) fail(key, "must be true or false" + got(*v));
    return v->flag;
  }

  // RD_CONFIG_DURATION, in milliseconds (the host converts "250ms", "10s", "5m" ...), within
  // [min_ms, max_ms].
  int64_t duration_ms(std::string_view key, int64_t fallback, int64_t min_ms = 0,
                      int64_t max_ms = std::numeric_limits<int64_t>::max()) const {
    const Value* v = find(key, RD_CONFIG_DURATION);
    if (v == nullptr) return fallback;
    if (v->kind != Value::kInteger) {
      fail(key, "must be a duration in integer milliseconds" + got(*v));
    }
    check_range(key, v->number, min_ms, max_ms, "ms");
    return v->number;
  }

  // RD_CONFIG_LIST; absent = empty.
  std::vector<std::string> list(std::string_view key) const {
    const Value* v = find(key, RD_CONFIG_LIST);
    if (v == nullptr) return {};
    if (v->kind != Value::kList) fail(key, "must be a list of strings" + got(*v));
    return v->items;
  }

  // "plugins.<plugin>.<key>", for the plugin's own messages.
  std::string name(std::string_view key) const {
    return "plugins." + plugin_ + "." + std::string(key);
  }

  // Throws ConfigKeyError "plugins.<plugin>.<key>: <what>", for checks of the plugin's own (a value
  // that is well-typed but unusable: a file that cannot be read, a host name with a scheme).
  [[noreturn]] void fail(std::string_view key, const std::string& what) const {
    throw ConfigKeyError(name(key) + ": " + what);
  }

 private:
  struct Value {
    enum Kind { kString, kInteger, kBool, kList, kOther } kind = kOther;
    std::string text;                // kString
    int64_t number = 0;              // kInteger
    bool flag = false;               // kBool
    std::vector<std::string> items;  // kList
    const char* other = "";          // kOther: what it is, for messages
  };
  using Values = std::map<std::string, Value, std::less<>>;

  // Strict JSON (RFC 8259) for one object; keeps what rd::ConfigReader reads of each member.
  class Parser {
   public:
    Parser(std::string_view text, Values& out) : s_(text), out_(out) {}

    bool parse(std::string& error) {
      ws();
      if (!eat('{')) return bad(error, "expected '{'");
      ws();
      if (!eat('}')) {
        for (;;) {
          ws();
          std::string key;
          if (peek() != '"' || !string(key)) return bad(error, "expected a member name");
          ws();
          if (!eat(':')) return bad(error, "expected ':'");
          ws();
          Value v;
          if (!value(v, 1)) return bad(error, "malformed value");
          out_[key] = std::move(v);  // a repeated name: the last one counts
          ws();
          if (eat('}')) break;
          if (!eat(',')) return bad(error, "expected ',' or '}'");
        }
      }
      ws();
      if (i_ != s_.size()) return bad(error, "text after the object");
      return true;
    }

   private:
    static constexpr int kMaxDepth = 64;

    bool bad(std::string& error, const char* what) const {
      error = std::string(what) + " at byte " + std::to_string(i_);
      return false;
    }
    char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
    bool eat(char c) {
      if (i_ >= s_.size() || s_[i_] != c) return false;
      ++i_;
      return true;
    }
    bool literal(std::string_view word) {
      if (s_.substr(i_, word.size()) != word) return false;
      i_ += word.size();
      return true;
    }
    void ws() {
      while (i_ < s_.size() &&
             (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r'))
        ++i_;
    }

    bool value(Value& v, int depth) {
      if (depth > kMaxDepth) return false;
      const char c = peek();
      if (c == '"') {
        v.kind = Value::kString;
        return string(v.text);
      }
      if (c == '-' || (c >= '0' && c <= '9')) return number(v);
      if (literal("true")) {
        v.kind = Value::kBool;
        v.flag = true;
        return true;
      }
      if (literal("false")) {
        v.kind = Value::kBool;
        return true;
      }
      if (literal("null")) return true;  // kOther with other == "": treated as absent
      if (c == '[') return array(v, depth);
      if (c == '{') {
        v.other = "an object";
        return skip_object(depth);
      }
      return false;
    }

    bool number(Value& v) {
      const bool negative = eat('-');
      if (!(peek() >= '0' && peek() <= '9')) return false;
      // Accumulated as a negative number: its range includes INT64_MIN.
      int64_t n = 0;
      bool overflow = false;
      const size_t first = i_;
      while (peek() >= '0' && peek() <= '9') {
        const int digit = s_[i_++] - '0';
        if (n < (std::numeric_limits<int64_t>::min() + digit) / 10) overflow = true;
        if (!overflow) n = n * 10 - digit;
      }
      if (s_[first] == '0' && i_ - first > 1) return false;  // no leading zeros in JSON
      bool integral = true;
      if (eat('.')) {
        integral = false;
        if (!(peek() >= '0' && peek() <= '9')) return false;
        while (peek() >= '0' && peek() <= '9') ++i_;
      }
      if (peek() == 'e' || peek() == 'E') {
        integral = false;
        ++i_;
        if (peek() == '+' || peek() == '-') ++i_;
        if (!(peek() >= '0' && peek() <= '9')) return false;
        while (peek() >= '0' && peek() <= '9') ++i_;
      }
      if (!integral) {
        v.other = "a number with a fraction or exponent";
      } else if (overflow || (!negative && n == std::numeric_limits<int64_t>::min())) {
        v.other = "a number out of the 64-bit range";
      } else {
        v.kind = Value::kInteger;
        v.number = negative ? n : -n;
      }
      return true;
    }

    bool array(Value& v, int depth) {
      ++i_;  // '['
      v.kind = Value::kList;
      ws();
      if (eat(']')) return true;
      for (;;) {
        ws();
        Value item;
        if (!value(item, depth + 1)) return false;
        if (item.kind == Value::kString) {
          v.items.push_back(std::move(item.text));
        } else {
          v.kind = Value::kOther;
          v.other = "a list with an entry that is not a string";
        }
        ws();
        if (eat(']')) break;
        if (!eat(',')) return false;
      }
      if (v.kind != Value::kList) v.items.clear();
      return true;
    }

    bool skip_object(int depth) {
      ++i_;  // '{'
      ws();
      if (eat('}')) return true;
      for (;;) {
        ws();
        std::string key;
        Value ignored;
        if (peek() != '"' || !string(key)) return false;
        ws();
        if (!eat(':')) return false;
        ws();
        if (!value(ignored, depth + 1)) return false;
        ws();
        if (eat('}')) return true;
        if (!eat(',')) return false;
      }
    }

    static int hex(char c) {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    }
    bool hex4(uint32_t& out) {
      if (i_ + 4 > s_.size()) return false;
      out = 0;
      for (int k = 0; k < 4; ++k) {
        const int h = hex(s_[i_++]);
        if (h < 0) return false;
        out = out * 16 + static_cast<uint32_t>(h);
      }
      return true;
    }
    static void put_utf8(std::string& out, uint32_t cp) {
      if (cp < 0x80) {
        out += static_cast<char>(cp);
      } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
      } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
      } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
      }
    }

    bool string(std::string& out) {
      ++i_;  // '"'
      for (;;) {
        if (i_ >= s_.size()) return false;
        const char c = s_[i_++];
        if (c == '"') return true;
        if (static_cast<unsigned char>(c) < 0x20) return false;
        if (c != '\\') {
          out += c;
          continue;
        }
        if (i_ >= s_.size()) return false;
        switch (s_[i_++]) {
          case '"':
            out += '"';
            break;
          case '\\':
            out += '\\';
            break;
          case '/':
            out += '/';
            break;
          case 'b':
            out += '\b';
            break;
          case 'f':
            out += '\f';
            break;
          case 'n':
            out += '\n';
            break;
          case 'r':
            out += '\r';
            break;
          case 't':
            out += '\t';
            break;
          case 'u': {
            uint32_t cp = 0;
            if (!hex4(cp)) return false;
            if (cp >= 0xD800 && cp <= 0xDBFF) {  // a high surrogate: its low half must follow
              uint32_t low = 0;
              if (!literal("\\u") || !hex4(low) || low < 0xDC00 || low > 0xDFFF) return false;
              cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
              return false;
            }
            put_utf8(out, cp);
            break;
          }
          default:
            return false;
        }
      }
    }

    std::string_view s_;
    size_t i_ = 0;
    Values& out_;
  };

  static const char* type_name(int32_t type) {
    switch (type) {
      case RD_CONFIG_STRING:
        return "RD_CONFIG_STRING";
      case RD_CONFIG_INT:
        return "RD_CONFIG_INT";
      case RD_CONFIG_BOOL:
        return "RD_CONFIG_BOOL";
      case RD_CONFIG_DURATION:
        return "RD_CONFIG_DURATION";
      case RD_CONFIG_LIST:
        return "RD_CONFIG_LIST";
      case RD_CONFIG_SECRET:
        return "RD_CONFIG_SECRET";
      default:
        return "an unknown type";
    }
  }

  // The member for a declared key of `type`, or nullptr when absent or null.
  const Value* find(std::string_view key, int32_t type) const {
    const rd_config_key* declared = nullptr;
    for (size_t i = 0; i < key_count_ && declared == nullptr; ++i) {
      if (keys_[i].name != nullptr && key == keys_[i].name) declared = &keys_[i];
    }
    if (declared == nullptr) {
      throw std::logic_error(name(key) + " is read but not declared in the plugin's config keys");
    }
    const bool matches =
        declared->type == type || (type == RD_CONFIG_STRING && declared->type == RD_CONFIG_SECRET);
    if (!matches) {
      throw std::logic_error(name(key) + " is declared " + type_name(declared->type) +
                             " but read as " + type_name(type));
    }
    const auto it = values_.find(key);
    if (it == values_.end()) return nullptr;
    const Value& v = it->second;
    return v.kind == Value::kOther && v.other[0] == '\0' ? nullptr : &v;  // null = absent
  }

  static std::string got(const Value& v) {
    switch (v.kind) {
      case Value::kString:
        return ", got a string";
      case Value::kInteger:
        return ", got the number " + std::to_string(v.number);
      case Value::kBool:
        return v.flag ? ", got true" : ", got false";
      case Value::kList:
        return ", got a list";
      default:
        return std::string(", got ") + v.other;
    }
  }

  void check_range(std::string_view key, int64_t value, int64_t min, int64_t max,
                   const char* unit) const {
    if (value >= min && value <= max) return;
    std::string bounds;
    if (min == std::numeric_limits<int64_t>::min()) {
      bounds = "at most " + std::to_string(max) + unit;
    } else if (max == std::numeric_limits<int64_t>::max()) {
      bounds = "at least " + std::to_string(min) + unit;
    } else {
      bounds = "between " + std::to_string(min) + unit + " and " + std::to_string(max) + unit;
    }
    fail(key, "must be " + bounds + ", got " + std::to_string(value) + unit);
  }

  std::string plugin_;
  const rd_config_key* keys_;
  size_t key_count_;
  Values values_;
};

// ---- Caching what a route's destination_config means -------------------------------------------
//
// Routes repeat: a plugin should parse and validate each distinct destination_config text once,
// not once per job. RouteCache<V> maps the exact bytes of that text to what the plugin made of it
// (typically std::shared_ptr<const Parsed>, or a small struct holding one and an error text):
//
//   rd::RouteCache<std::shared_ptr<const RoutePlan>> plans_;
//   auto plan = plans_.get(rd::view(job.destination_config_json, job.destination_config_json_len),
//                          [&](std::string_view text) { return parse_route_plan(text); });
//
// Bounded: it holds at most `capacity` entries and drops the least recently used one to make
// room. Thread-safe: every member function takes the cache's own mutex, so xDeliver, xDestination,
// xHealth and the plugin's threads may share one cache. get() returns a copy of the value (so a V
// must be cheap to copy: a shared_ptr, not a large struct) and calls `make` without holding the
// lock; two threads missing on the same text at once may both call it, and the first value stored
// is the one both return. An exception from `make` leaves the cache unchanged and reaches the
// caller. `make` must not call into the same cache.
template <typename V>
class RouteCache {
 public:
  // Enough for every route of a large installation; an entry costs the config text plus V.
  static constexpr size_t kDefaultCapacity = 10000;

  explicit RouteCache(size_t capacity = kDefaultCapacity)
      : capacity_(capacity > 0 ? capacity : 1) {}
  RouteCache(const RouteCache&) = delete;
  RouteCache& operator=(const RouteCache&) = delete;

  // The value for `config_text`, made by make(config_text) (a std::string_view) when missing.
  template <typename Make>
  V get(std::string_view config_text, Make&& make) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (const V* v = find_locked(config_text)) return *v;
    }
    V made = std::forward<Make>(make)(config_text);
    std::lock_guard<std::mutex> lock(mu_);
    if (const V* v = find_locked(config_text)) return *v;  // another thread was first
    entries_.push_front(Entry{std::string(config_text), std::move(made)});
    index_.emplace(std::string_view(entries_.front().text), entries_.begin());
    if (entries_.size() > capacity_) {
      index_.erase(std::string_view(entries_.back().text));
      entries_.pop_back();
    }
    return entries_.front().value;
  }

  size_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return entries_.size();
  }
  size_t capacity() const { return capacity_; }

 private:
  struct Entry {
    std::string text;  // the key's bytes; index_'s string_view keys point into it
    V value;
  };

  // Found: moved to the front (most recently used).
  const V* find_locked(std::string_view config_text) {
    const auto it = index_.find(config_text);
    if (it == index_.end()) return nullptr;
    entries_.splice(entries_.begin(), entries_, it->second);  // iterators stay valid
    return &it->second->value;
  }

  const size_t capacity_;
  mutable std::mutex mu_;
  std::list<Entry> entries_;  // most recently used first
  std::unordered_map<std::string_view, typename std::list<Entry>::iterator> index_;
};

}  // namespace rd

// Defines the exported entry function for C++ plugin class T.
#define RD_DEFINE_CPP_PLUGIN(T, name, version, destination_type, description, keys, key_count) \
  extern "C" RD_PLUGIN_EXPORT const rd_plugin_descriptor* rd_plugin_entry(void) {              \
    static const rd_plugin_descriptor descriptor = ::rd::PluginAdapter<T>::descriptor(         \
        name, version, destination_type, description, keys, key_count);                        \
    return &descriptor;                                                                        \
  }

#endif  // ROUTE_DELIVERY_PLUGIN_HPP
