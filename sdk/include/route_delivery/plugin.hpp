// Optional C++17 helpers for writing a route-delivery plugin on top of <route_delivery/plugin.h>.
//
// Header-only; nothing here changes the ABI. It gives a C++ plugin:
//   - rd::Completer: reports a result for one delivery_id (copying nothing, the host copies).
//   - rd::PluginAdapter<T>: turns a C++ class into the C entry points, with every exception caught
//     at the boundary (an escaping exception from deliver() becomes a PERMANENT result with the
//     exception's message; from create() a create error).
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
//
// and the plugin source ends with
//   RD_DEFINE_CPP_PLUGIN(T, "name", "1.0.0", "destination_type", "description", keys, key_count)
#ifndef ROUTE_DELIVERY_PLUGIN_HPP
#define ROUTE_DELIVERY_PLUGIN_HPP

#include <route_delivery/plugin.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>

namespace rd {

inline std::string_view view(const char* data, size_t len) { return {data, len}; }

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
      Completer(self->services).permanent(delivery_id, std::string("plugin exception: ") + e.what());
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

  static size_t destination(void* instance, const rd_job* job, char* key,
                            size_t key_len) noexcept {
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
    return d;
  }
};

// Helper to build an rd_config_key table entry.
constexpr rd_config_key config_key(int32_t type, const char* name, const char* default_value,
                                   const char* env, const char* description) {
  return rd_config_key{sizeof(rd_config_key), type, name, default_value, env, description};
}

}  // namespace rd

// Defines the exported entry function for C++ plugin class T.
#define RD_DEFINE_CPP_PLUGIN(T, name, version, destination_type, description, keys, key_count)   \
  extern "C" RD_PLUGIN_EXPORT const rd_plugin_descriptor* rd_plugin_entry(void) {               \
    static const rd_plugin_descriptor descriptor = ::rd::PluginAdapter<T>::descriptor(           \
        name, version, destination_type, description, keys, key_count);                          \
    return &descriptor;                                                                          \
  }

#endif  // ROUTE_DELIVERY_PLUGIN_HPP
