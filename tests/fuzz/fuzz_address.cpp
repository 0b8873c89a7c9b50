// Fuzzes the webhook SSRF address parser: odd IP spellings must parse consistently, and an address
// that parses as loopback must be refused by the default policy.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "webhook/address_policy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  static const rd::webhook::AddressPolicy policy(std::vector<rd::webhook::Cidr>{});
  if (auto ip = rd::webhook::parse_ip(text)) {
    const std::string canonical = ip->to_string();
    auto again = rd::webhook::parse_ip(canonical);
    if (!again || again->to_string() != canonical) __builtin_trap();  // round-trips
    if ((canonical.rfind("127.", 0) == 0 || canonical == "::1") && !policy.check(*ip))
      __builtin_trap();
  }
  (void)rd::webhook::parse_cidr(text);
  return 0;
}
