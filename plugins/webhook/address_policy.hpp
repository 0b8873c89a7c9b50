// SSRF guard: which destination addresses the webhook plugin may connect to.
//
// Pure logic, no network. The plugin asks `AddressPolicy::check` for the address libcurl is about
// to connect to (from CURLOPT_OPENSOCKETFUNCTION), so a DNS name that resolves to a private
// address, or re-resolves to one later (rebinding), is refused just like an IP literal.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct sockaddr;

namespace rd::webhook {

struct IpAddress {
  int family = 0;                   // 4 or 6 (0 = none)
  std::array<uint8_t, 16> bytes{};  // network order; IPv4 uses bytes[0..4)
  size_t size() const { return family == 4 ? 4 : 16; }
  bool is_v4() const { return family == 4; }
  std::string to_string() const;

  static IpAddress v4(uint32_t host_order);
};

// Parses an IP literal as a URL host or a resolver might accept it. IPv4 follows inet_aton's
// liberal rules (1 to 4 parts, decimal, octal with leading 0, hex with 0x: "2130706433", "0x7f.1",
// "0177.0.0.1" are all 127.0.0.1). IPv6 may be in brackets and carry a zone ("[fe80::1%eth0]").
// Returns nullopt for anything that is not an IP literal (i.e. a DNS name).
std::optional<IpAddress> parse_ip(std::string_view text);

// From a sockaddr (AF_INET / AF_INET6); nullopt for other families.
std::optional<IpAddress> from_sockaddr(const sockaddr* sa, size_t len);

struct Cidr {
  IpAddress base;  // already masked
  int prefix = 0;
  bool contains(const IpAddress& ip) const;
  std::string to_string() const;
};

// "10.0.0.0/8", "fd00::/8", or a bare address (= /32 or /128). nullopt when malformed.
std::optional<Cidr> parse_cidr(std::string_view text);

class AddressPolicy {
 public:
  AddressPolicy() = default;
  explicit AddressPolicy(std::vector<Cidr> allowed) : allowed_(std::move(allowed)) {}

  // nullopt when `ip` may be connected to; otherwise the reason it is refused, naming the rule and
  // how to allow it. IPv4 embedded in IPv6 (mapped ::ffff:a.b.c.d, compatible ::a.b.c.d, NAT64
  // 64:ff9b::/96, 6to4 2002::/16) is judged as the IPv4 address it carries.
  std::optional<std::string> check(const IpAddress& ip) const;

  const std::vector<Cidr>& allowed() const { return allowed_; }

 private:
  bool is_allowed(const IpAddress& ip) const;
  std::vector<Cidr> allowed_;
};

// Parses the allowed_networks list; on a malformed entry returns nullopt and sets `error`.
std::optional<std::vector<Cidr>> parse_allowed_networks(const std::vector<std::string>& entries,
                                                        std::string& error);

}  // namespace rd::webhook
