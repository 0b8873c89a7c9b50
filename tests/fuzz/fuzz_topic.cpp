// Fuzzes the MQTT topic templater with hostile templates and device ids: a rendered topic that is
// accepted must be a valid MQTT topic name without wildcards, and never crash.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "mqtt_republish/topic_template.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  // Split the input into template / tenant / device at the first two 0xFF bytes.
  const size_t a = input.find('\xff');
  const size_t b = a == std::string_view::npos ? a : input.find('\xff', a + 1);
  const std::string_view tmpl = input.substr(0, a);
  const std::string_view tenant =
      a == std::string_view::npos ? "tenant-a" : input.substr(a + 1, b - a - 1);
  const std::string_view device = b == std::string_view::npos ? "dev-1" : input.substr(b + 1);
  std::string out;
  const auto check = rd::mqtt_republish::render(tmpl, tenant, device,
                                                rd::mqtt_republish::uses_device_id(tmpl), out);
  // The plugin renders, then validates the result (as plan_job does); a topic passing both
  // must be publishable: non-empty, no wildcards or NUL, within the MQTT length limit.
  if (check.ok() && rd::mqtt_republish::validate_topic_name(out).ok()) {
    if (out.empty() || out.find_first_of("+#") != std::string::npos ||
        out.find('\0') != std::string::npos || out.size() > rd::mqtt_republish::kMaxTopicBytes) {
      __builtin_trap();
    }
  }
  (void)rd::mqtt_republish::check_prefix("tenants/{tenant_id}/", tenant, out);
  return 0;
}
