#include "signing.hpp"

#include <gtest/gtest.h>

namespace rd::webhook {
namespace {

// The prepared key (pads hashed once, reused for every message) against OpenSSL's one-shot HMAC,
// for keys shorter than, equal to and longer than SHA-256's 64-byte block, and messages given in
// several parts.
TEST(WebhookSigning, PreparedKeyMatchesOneShotHmacForEveryKeyLength) {
  for (const size_t key_len : {0u, 1u, 32u, 63u, 64u, 65u, 200u}) {
    std::string key;
    for (size_t i = 0; i < key_len; ++i) key += static_cast<char>((i * 37 + 11) & 0xff);
    const HmacSha256Key prepared(key);
    for (const std::string& msg : {std::string(), std::string("x"), std::string(1000, 'z')}) {
      unsigned char mac[HmacSha256Key::kSize];
      prepared.sign({msg}, mac);
      EXPECT_EQ(std::string(reinterpret_cast<const char*>(mac), sizeof mac), hmac_sha256(key, msg))
          << "key " << key_len << " bytes, message " << msg.size() << " bytes";
      // The same key signs again (its state is not consumed), also from parts.
      if (msg.size() > 1) {
        prepared.sign({std::string_view(msg).substr(0, 1), std::string_view(msg).substr(1)}, mac);
        EXPECT_EQ(std::string(reinterpret_cast<const char*>(mac), sizeof mac),
                  hmac_sha256(key, msg));
      }
    }
  }
}

TEST(WebhookSigning, PreparedKeyHeaderValuesMatchTheReferenceVectors) {
  const auto key = base64_decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  ASSERT_TRUE(key.has_value());
  const HmacSha256Key whsec(*key);
  std::string out = "webhook-signature: ";
  append_standard_webhooks_signature(whsec, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330",
                                     R"({"test": 2432232314})", out);
  EXPECT_EQ(out, "webhook-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
  const HmacSha256Key plain("my-secret");
  out.clear();
  append_x_signature_256(plain, R"({"device_id":"dev-1","temp":21.5})", out);
  // Reference: python3 hmac.new(b"my-secret", body, sha256).hexdigest()
  EXPECT_EQ(out, "sha256=367e52c30fe7715cf07b68db1cacb4d2ece8ef9ae7a865352514b449ad36934f");
  // One byte more and the signature changes: it covers the exact bytes, not a re-serialisation.
  std::string spaced;
  append_x_signature_256(plain, R"({"device_id":"dev-1","temp":21.5} )", spaced);
  EXPECT_NE(spaced, out);
}

TEST(WebhookSigning, Base64RoundTripAndRejectsGarbage) {
  for (const std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) {
    const std::string enc = base64_encode(s);
    const auto dec = base64_decode(enc);
    ASSERT_TRUE(dec.has_value()) << enc;
    EXPECT_EQ(*dec, s);
  }
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_FALSE(base64_decode("not base64!").has_value());
  EXPECT_FALSE(base64_decode("a").has_value());
}

TEST(WebhookSigning, WebhookIdIsStablePerJobAndDistinctAcrossJobs) {
  const std::string id = webhook_id("tenant-a", 7, "ROUTES:42");
  EXPECT_EQ(id, webhook_id("tenant-a", 7, "ROUTES:42"));
  EXPECT_EQ(id.rfind("msg_", 0), 0u);
  EXPECT_EQ(id.size(), 4u + 32u);
  EXPECT_NE(id, webhook_id("tenant-a", 7, "ROUTES:43"));
  EXPECT_NE(id, webhook_id("tenant-a", 8, "ROUTES:42"));
  EXPECT_NE(id, webhook_id("tenant-b", 7, "ROUTES:42"));
}

}  // namespace
}  // namespace rd::webhook
