// Reading a plugin's declared config keys (rd_config_key) across ABI minor versions. Header-only:
// config.cpp (also built alone into the config fuzzer) and the loader both read keys this way.
#pragma once

#include <route_delivery/plugin.h>

#include <algorithm>
#include <cstddef>
#include <cstring>

namespace rd {

// sizeof(rd_config_key) in ABI 1.0 and 1.1: up to and including `description`.
inline constexpr size_t kConfigKeySize10 =
    offsetof(rd_config_key, description) + sizeof(((rd_config_key*)nullptr)->description);
// ... and in 1.2: up to and including `allowed_values`.
inline constexpr size_t kConfigKeySize12 =
    offsetof(rd_config_key, allowed_values) + sizeof(((rd_config_key*)nullptr)->allowed_values);

// The stride of the plugin's key table: the 1.0 layout before minor 2, then the first key's
// struct_size (the loader checks that every key has the same).
inline size_t config_key_stride(const rd_plugin_descriptor& d) {
  if (d.abi_minor < 2 || d.config_keys == nullptr || d.config_key_count == 0)
    return kConfigKeySize10;
  return d.config_keys[0].struct_size;
}

// Declared config key `i` of `d`, copied into the host's layout. A plugin's key table is an array
// laid out with its own sizeof(rd_config_key): a plugin of minor < 2 is read with the 1.0 layout
// and its 1.2 fields (flags, range, allowed values) come back zero, whatever its memory holds
// (the fields of version N are read only when version >= N); from minor 2 the table is stepped by
// the first key's struct_size. Never index d.config_keys[i] directly.
inline rd_config_key config_key_at(const rd_plugin_descriptor& d, uint32_t i) {
  const size_t stride = config_key_stride(d);
  const auto* at = reinterpret_cast<const unsigned char*>(d.config_keys) + stride * i;
  rd_config_key k{};
  std::memcpy(&k, at, std::min(stride, sizeof k));
  if (d.abi_minor < 2 || k.struct_size < kConfigKeySize12) {
    k.flags = 0;
    k.min_value = 0;
    k.max_value = 0;
    k.allowed_values = nullptr;
  }
  return k;
}

}  // namespace rd
