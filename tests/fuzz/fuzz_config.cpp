// Fuzzes the YAML config loader: any text must load or raise ConfigError, never crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  static const rd::Environment env{{"NATS_HOST", "n"}, {"SECRET", "s"}};
  try {
    rd::Config c = rd::load_config_text(text, "fuzz.yaml", env);
    (void)rd::render_effective_config(c, {});
  } catch (const rd::ConfigError& e) {
    if (std::string(e.what()).empty()) __builtin_trap();
  }
  return 0;
}
