#include "address_policy.hpp"

#include <gtest/gtest.h>

namespace rd::webhook {
namespace {

AddressPolicy default_policy() {
  return AddressPolicy();
}

IpAddress ip(const char* text) {
  auto a = parse_ip(text);
  EXPECT_TRUE(a.has_value()) << text;
  return a.value_or(IpAddress{});
}

TEST(WebhookAddressPolicy, RefusesPrivateAndSpecialAddressesOfBothFamilies) {
  const AddressPolicy p = default_policy();
  const char* refused[] = {"127.0.0.1",
                           "127.255.0.9",
                           "10.1.2.3",
                           "172.16.0.1",
                           "172.31.255.255",
                           "192.168.1.1",
                           "169.254.169.254",
                           "169.254.0.1",
                           "100.64.0.1",
                           "100.127.255.254",
                           "0.0.0.0",
                           "0.1.2.3",
                           "224.0.0.1",
                           "239.255.255.250",
                           "255.255.255.255",
                           "::1",
                           "::",
                           "fe80::1",
                           "fc00::1",
                           "fd12:3456::1",
                           "ff02::1",
                           "::ffff:127.0.0.1",
                           "::ffff:10.0.0.1",
                           "::ffff:169.254.169.254",
                           "::127.0.0.1",
                           "64:ff9b::7f00:1",
                           "2002:7f00:1::",
                           "2002:a00:1::1",
                           "::ffff:0:7f00:1"};
  for (const char* a : refused) {
    const auto why = p.check(ip(a));
    EXPECT_TRUE(why.has_value()) << a << " should be refused";
  }
}

TEST(WebhookAddressPolicy, AllowsPublicAddressesOfBothFamilies) {
  const AddressPolicy p = default_policy();
  const char* allowed[] = {"8.8.8.8",
                           "1.1.1.1",
                           "93.184.216.34",
                           "172.15.255.255",
                           "172.32.0.1",
                           "100.63.255.255",
                           "100.128.0.1",
                           "169.253.1.1",
                           "192.169.0.1",
                           "11.0.0.1",
                           "223.255.255.254",
                           "2606:4700::1111",
                           "2001:4860:4860::8888",
                           "::ffff:8.8.8.8",
                           "64:ff9b::808:808",
                           "2002:808:808::1"};
  for (const char* a : allowed) {
    const auto why = p.check(ip(a));
    EXPECT_FALSE(why.has_value()) << a << " should be allowed: " << why.value_or("");
  }
}

TEST(WebhookAddressPolicy, ReasonNamesRuleAndHowToAllow) {
  const auto why = default_policy().check(ip("169.254.169.254"));
  ASSERT_TRUE(why.has_value());
  EXPECT_NE(why->find("link-local"), std::string::npos) << *why;
  EXPECT_NE(why->find("169.254.0.0/16"), std::string::npos) << *why;
  EXPECT_NE(why->find("allowed_networks"), std::string::npos) << *why;
  EXPECT_NE(why->find("WEBHOOK_ALLOWED_NETWORKS"), std::string::npos) << *why;
  const auto mapped = default_policy().check(ip("::ffff:127.0.0.1"));
  ASSERT_TRUE(mapped.has_value());
  EXPECT_NE(mapped->find("IPv4-mapped"), std::string::npos) << *mapped;
  EXPECT_NE(mapped->find("loopback"), std::string::npos) << *mapped;
}

TEST(WebhookAddressPolicy, OddIpv4SpellingsAreRecognised) {
  EXPECT_EQ(ip("2130706433").to_string(), "127.0.0.1");
  EXPECT_EQ(ip("0x7f.1").to_string(), "127.0.0.1");
  EXPECT_EQ(ip("0x7f000001").to_string(), "127.0.0.1");
  EXPECT_EQ(ip("0177.0.0.1").to_string(), "127.0.0.1");
  EXPECT_EQ(ip("127.1").to_string(), "127.0.0.1");
  EXPECT_EQ(ip("10.1.1").to_string(), "10.1.0.1");
  EXPECT_EQ(ip("127.0.0.1.").to_string(), "127.0.0.1");
  EXPECT_EQ(ip("[::ffff:127.0.0.1]").to_string(), "::ffff:127.0.0.1");
  EXPECT_EQ(ip("[fe80::1%25eth0]").to_string(), "fe80::1");
  for (const char* a : {"2130706433", "0x7f.1", "0177.0.0.1", "127.1", "[::ffff:127.0.0.1]",
                        "[::ffff:7f00:1]", "0xa9.0xfe.0xa9.0xfe"}) {
    EXPECT_TRUE(default_policy().check(ip(a)).has_value()) << a;
  }
}

TEST(WebhookAddressPolicy, DnsNamesAreNotIpLiterals) {
  for (const char* name : {"example.com", "hooks.example.com", "1e100.net", "localhost", "0x7g.1",
                           "256.1.1.1", "1.2.3.4.5", "", "::zz"}) {
    EXPECT_FALSE(parse_ip(name).has_value()) << name;
  }
}

TEST(WebhookAddressPolicy, AllowedNetworksExemptExactlyThoseNetworks) {
  std::string error;
  auto nets =
      parse_allowed_networks({"127.0.0.0/8", "10.1.0.0/16", "fd00::/8", " 192.168.5.7 "}, error);
  ASSERT_TRUE(nets.has_value()) << error;
  const AddressPolicy p(*nets);
  EXPECT_FALSE(p.check(ip("127.0.0.1")).has_value());
  EXPECT_FALSE(p.check(ip("::ffff:127.0.0.1")).has_value());  // mapped form of an allowed v4
  EXPECT_FALSE(p.check(ip("10.1.200.3")).has_value());
  EXPECT_TRUE(p.check(ip("10.2.0.1")).has_value());
  EXPECT_FALSE(p.check(ip("fd00::5")).has_value());
  EXPECT_TRUE(p.check(ip("fc00::5")).has_value());
  EXPECT_FALSE(p.check(ip("192.168.5.7")).has_value());
  EXPECT_TRUE(p.check(ip("192.168.5.8")).has_value());
  EXPECT_TRUE(p.check(ip("::1")).has_value());
  EXPECT_TRUE(p.check(ip("169.254.169.254")).has_value());
}

TEST(WebhookAddressPolicy, MalformedAllowedNetworkIsAnErrorNamingTheKey) {
  std::string error;
  EXPECT_FALSE(parse_allowed_networks({"10.0.0.0/8", "10.0.0.0/33"}, error).has_value());
  EXPECT_NE(error.find("allowed_networks"), std::string::npos);
  EXPECT_NE(error.find("10.0.0.0/33"), std::string::npos);
  EXPECT_FALSE(parse_allowed_networks({"intranet"}, error).has_value());
  EXPECT_FALSE(parse_allowed_networks({"0x7f.1/8"}, error).has_value());
  auto empty = parse_allowed_networks({"", " "}, error);
  ASSERT_TRUE(empty.has_value());
  EXPECT_TRUE(empty->empty());
}

TEST(WebhookAddressPolicy, CidrMasksHostBits) {
  auto c = parse_cidr("10.1.2.3/8");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->to_string(), "10.0.0.0/8");
  auto v6 = parse_cidr("fd12:3456::1/16");
  ASSERT_TRUE(v6.has_value());
  EXPECT_EQ(v6->to_string(), "fd12::/16");
  EXPECT_TRUE(parse_cidr("0.0.0.0/0")->contains(ip("8.8.8.8")));
  EXPECT_FALSE(parse_cidr("0.0.0.0/0")->contains(ip("::1")));
}

}  // namespace
}  // namespace rd::webhook
