#include "address_policy.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

namespace rd::webhook {

namespace {

struct BlockRule {
  Cidr net;
  const char* what;
};

Cidr cidr_or_die(const char* text) {
  // Only called with the literals below, which are well-formed.
  return *parse_cidr(text);
}

const std::vector<BlockRule>& v4_rules() {
  static const std::vector<BlockRule> rules = {
      {cidr_or_die("0.0.0.0/8"), "unspecified (\"this network\")"},
      {cidr_or_die("10.0.0.0/8"), "private (RFC 1918)"},
      {cidr_or_die("100.64.0.0/10"), "carrier-grade NAT (RFC 6598)"},
      {cidr_or_die("127.0.0.0/8"), "loopback"},
      {cidr_or_die("169.254.0.0/16"), "link-local (incl. cloud metadata 169.254.169.254)"},
      {cidr_or_die("172.16.0.0/12"), "private (RFC 1918)"},
      {cidr_or_die("192.168.0.0/16"), "private (RFC 1918)"},
      {cidr_or_die("224.0.0.0/4"), "multicast"},
      {cidr_or_die("240.0.0.0/4"), "reserved/broadcast"},
  };
  return rules;
}

const std::vector<BlockRule>& v6_rules() {
  static const std::vector<BlockRule> rules = {
      {cidr_or_die("::/128"), "unspecified"},
      {cidr_or_die("::1/128"), "loopback"},
      {cidr_or_die("fe80::/10"), "link-local"},
      {cidr_or_die("fec0::/10"), "site-local (deprecated)"},
      {cidr_or_die("fc00::/7"), "unique-local (private)"},
      {cidr_or_die("ff00::/8"), "multicast"},
  };
  return rules;
}

// IPv4 address carried inside an IPv6 one, with the name of the form.
std::optional<std::pair<IpAddress, const char*>> embedded_v4(const IpAddress& ip) {
  if (ip.is_v4()) return std::nullopt;
  const auto& b = ip.bytes;
  auto tail = [&](size_t at) {
    IpAddress v4;
    v4.family = 4;
    std::memcpy(v4.bytes.data(), b.data() + at, 4);
    return v4;
  };
  auto zeros = [&](size_t from, size_t to) {
    for (size_t i = from; i < to; ++i) {
      if (b[i] != 0) return false;
    }
    return true;
  };
  if (zeros(0, 10) && b[10] == 0xff && b[11] == 0xff) return {{tail(12), "IPv4-mapped"}};
  // ::ffff:0:a.b.c.d (SIIT "IPv4-translated")
  if (zeros(0, 8) && b[8] == 0xff && b[9] == 0xff && b[10] == 0 && b[11] == 0) {
    return {{tail(12), "IPv4-translated"}};
  }
  // ::a.b.c.d (deprecated IPv4-compatible); :: and ::1 are judged as IPv6 themselves.
  if (zeros(0, 12) && !(b[12] == 0 && b[13] == 0 && b[14] == 0 && b[15] <= 1)) {
    return {{tail(12), "IPv4-compatible"}};
  }
  // 64:ff9b::/96 NAT64 well-known prefix.
  if (b[0] == 0 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && zeros(4, 12)) {
    return {{tail(12), "NAT64"}};
  }
  if (b[0] == 0x20 && b[1] == 0x02) return {{tail(2), "6to4"}};
  return std::nullopt;
}

// Parses one inet_aton component: decimal, 0-prefixed octal, 0x-prefixed hex.
bool parse_aton_part(std::string_view s, uint64_t& out) {
  if (s.empty()) return false;
  int base = 10;
  if (s.size() > 1 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    base = 16;
    s.remove_prefix(2);
    if (s.empty()) {
      out = 0;  // "0x" alone is 0 for inet_aton
      return true;
    }
  } else if (s.size() > 1 && s[0] == '0') {
    base = 8;
    s.remove_prefix(1);
  }
  uint64_t v = 0;
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (base == 16 && c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else if (base == 16 && c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else {
      return false;
    }
    if (d >= base) return false;
    v = v * static_cast<uint64_t>(base) + static_cast<uint64_t>(d);
    if (v > 0xffffffffULL) return false;
  }
  out = v;
  return true;
}

std::optional<IpAddress> parse_v4_liberal(std::string_view s) {
  if (!s.empty() && s.back() == '.') s.remove_suffix(1);  // "127.0.0.1." is a valid host
  uint64_t parts[4];
  size_t n = 0;
  while (true) {
    const size_t dot = s.find('.');
    const std::string_view part = s.substr(0, dot);
    if (n == 4 || !parse_aton_part(part, parts[n])) return std::nullopt;
    ++n;
    if (dot == std::string_view::npos) break;
    s.remove_prefix(dot + 1);
  }
  uint64_t v = 0;
  // a; a.b (b: 24 bits); a.b.c (c: 16 bits); a.b.c.d
  const uint64_t last_max = n == 1   ? 0xffffffffULL
                            : n == 2 ? 0xffffffULL
                            : n == 3 ? 0xffffULL
                                     : 0xffULL;
  for (size_t i = 0; i + 1 < n; ++i) {
    if (parts[i] > 0xff) return std::nullopt;
    v |= parts[i] << (24 - 8 * i);
  }
  if (parts[n - 1] > last_max) return std::nullopt;
  v |= parts[n - 1];
  return IpAddress::v4(static_cast<uint32_t>(v));
}

}  // namespace

IpAddress IpAddress::v4(uint32_t host_order) {
  IpAddress ip;
  ip.family = 4;
  ip.bytes[0] = static_cast<uint8_t>(host_order >> 24);
  ip.bytes[1] = static_cast<uint8_t>(host_order >> 16);
  ip.bytes[2] = static_cast<uint8_t>(host_order >> 8);
  ip.bytes[3] = static_cast<uint8_t>(host_order);
  return ip;
}

std::string IpAddress::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (family == 4) {
    ::inet_ntop(AF_INET, bytes.data(), buf, sizeof buf);
  } else if (family == 6) {
    ::inet_ntop(AF_INET6, bytes.data(), buf, sizeof buf);
  }
  return buf;
}

std::optional<IpAddress> parse_ip(std::string_view text) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
    text = text.substr(1, text.size() - 2);
  }
  if (text.empty() || text.size() > 100) return std::nullopt;
  if (text.find(':') != std::string_view::npos) {
    const size_t zone = text.find('%');
    std::string s(text.substr(0, zone));
    IpAddress ip;
    ip.family = 6;
    if (::inet_pton(AF_INET6, s.c_str(), ip.bytes.data()) != 1) return std::nullopt;
    return ip;
  }
  return parse_v4_liberal(text);
}

std::optional<IpAddress> from_sockaddr(const sockaddr* sa, size_t len) {
  if (sa == nullptr) return std::nullopt;
  IpAddress ip;
  if (sa->sa_family == AF_INET && len >= sizeof(sockaddr_in)) {
    sockaddr_in in{};
    std::memcpy(&in, sa, sizeof in);
    ip.family = 4;
    std::memcpy(ip.bytes.data(), &in.sin_addr, 4);
    return ip;
  }
  if (sa->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
    sockaddr_in6 in6{};
    std::memcpy(&in6, sa, sizeof in6);
    ip.family = 6;
    std::memcpy(ip.bytes.data(), &in6.sin6_addr, 16);
    return ip;
  }
  return std::nullopt;
}

bool Cidr::contains(const IpAddress& ip) const {
  if (ip.family != base.family) return false;
  int bits = prefix;
  for (size_t i = 0; i < ip.size() && bits > 0; ++i, bits -= 8) {
    const uint8_t mask = bits >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - bits));
    if ((ip.bytes[i] & mask) != base.bytes[i]) return false;
  }
  return true;
}

std::string Cidr::to_string() const {
  return base.to_string() + "/" + std::to_string(prefix);
}

std::optional<Cidr> parse_cidr(std::string_view text) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  const size_t slash = text.find('/');
  const std::string_view addr = text.substr(0, slash);
  std::optional<IpAddress> ip;
  // Networks are written canonically; the liberal IPv4 forms are for URL hosts only.
  if (addr.find(':') != std::string_view::npos) {
    ip = parse_ip(addr);
  } else {
    std::string s(addr);
    in_addr a{};
    if (::inet_pton(AF_INET, s.c_str(), &a) == 1) {
      IpAddress v4;
      v4.family = 4;
      std::memcpy(v4.bytes.data(), &a, 4);
      ip = v4;
    }
  }
  if (!ip) return std::nullopt;
  const int max = ip->is_v4() ? 32 : 128;
  int prefix = max;
  if (slash != std::string_view::npos) {
    const std::string_view p = text.substr(slash + 1);
    if (p.empty() || p.size() > 3) return std::nullopt;
    prefix = 0;
    for (char c : p) {
      if (c < '0' || c > '9') return std::nullopt;
      prefix = prefix * 10 + (c - '0');
    }
    if (prefix > max) return std::nullopt;
  }
  Cidr c;
  c.base = *ip;
  c.prefix = prefix;
  int bits = prefix;
  for (size_t i = 0; i < c.base.size(); ++i, bits -= 8) {
    const uint8_t mask = bits >= 8   ? 0xff
                         : bits <= 0 ? 0
                                     : static_cast<uint8_t>(0xff << (8 - bits));
    c.base.bytes[i] &= mask;
  }
  return c;
}

bool AddressPolicy::is_allowed(const IpAddress& ip) const {
  for (const Cidr& c : allowed_) {
    if (c.contains(ip)) return true;
  }
  return false;
}

std::optional<std::string> AddressPolicy::check(const IpAddress& ip) const {
  if (is_allowed(ip)) return std::nullopt;
  const char* what = nullptr;
  std::string rule;
  std::string form;
  if (ip.is_v4()) {
    for (const auto& r : v4_rules()) {
      if (r.net.contains(ip)) {
        what = r.what;
        rule = r.net.to_string();
        break;
      }
    }
  } else if (auto v4 = embedded_v4(ip)) {
    if (is_allowed(v4->first)) return std::nullopt;
    for (const auto& r : v4_rules()) {
      if (r.net.contains(v4->first)) {
        what = r.what;
        rule = r.net.to_string();
        form = std::string(" (") + v4->second + " form of " + v4->first.to_string() + ")";
        break;
      }
    }
  } else {
    for (const auto& r : v6_rules()) {
      if (r.net.contains(ip)) {
        what = r.what;
        rule = r.net.to_string();
        break;
      }
    }
  }
  if (what == nullptr) return std::nullopt;
  return "address " + ip.to_string() + form + " is " + what + ", in " + rule +
         "; refused to prevent SSRF. To allow it, add the network to "
         "plugins.webhook.allowed_networks (WEBHOOK_ALLOWED_NETWORKS)";
}

std::optional<std::vector<Cidr>> parse_allowed_networks(const std::vector<std::string>& entries,
                                                        std::string& error) {
  std::vector<Cidr> out;
  for (const std::string& e : entries) {
    if (e.find_first_not_of(' ') == std::string::npos) continue;
    auto c = parse_cidr(e);
    if (!c) {
      error = "plugins.webhook.allowed_networks: \"" + e +
              "\" is not a network; write an address or CIDR such as 10.0.0.0/8 or fd00::/8";
      return std::nullopt;
    }
    out.push_back(*c);
  }
  return out;
}

}  // namespace rd::webhook
