// Webhook signatures (HMAC-SHA256 via OpenSSL) and the stable webhook-id. Pure logic.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

namespace rd::webhook {

std::string base64_encode(std::string_view bytes);
// Standard alphabet, padding optional; nullopt on any other character.
std::optional<std::string> base64_decode(std::string_view text);
std::string hex_encode(std::string_view bytes);

// Raw 32-byte HMAC-SHA256 of `data` under `key`.
std::string hmac_sha256(std::string_view key, std::string_view data);

// An HMAC-SHA256 key with its inner and outer pads hashed once, so signing a message costs the
// message only (no algorithm look-up, no key schedule). Built once per route secret; sign() only
// reads the key state, so one key may sign on several threads at once.
class HmacSha256Key {
 public:
  static constexpr size_t kSize = 32;  // bytes of a signature

  explicit HmacSha256Key(std::string_view key);  // throws std::runtime_error if OpenSSL fails
  ~HmacSha256Key();
  HmacSha256Key(const HmacSha256Key&) = delete;
  HmacSha256Key& operator=(const HmacSha256Key&) = delete;

  // HMAC-SHA256 of the concatenation of `parts` into out[0..kSize).
  void sign(std::initializer_list<std::string_view> parts, unsigned char* out) const;

 private:
  struct State;
  State* state_ = nullptr;
};

// Standard Webhooks: appends "v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>" to `out`,
// where `key` is prepared from the decoded secret (the base64 after "whsec_").
void append_standard_webhooks_signature(const HmacSha256Key& key, std::string_view id,
                                        std::string_view timestamp, std::string_view body,
                                        std::string& out);

// The X-Signature-256 header value: appends "sha256=<hex HMAC-SHA256(secret, body)>" to `out`,
// where `key` is prepared from the secret's bytes.
void append_x_signature_256(const HmacSha256Key& key, std::string_view body, std::string& out);

// webhook-id for one job: the same for every attempt of it, different for every other job.
// "msg_" + 32 hex chars of SHA-256 over tenant, route id and the JetStream message identity.
std::string webhook_id(std::string_view tenant_id, int64_t route_id, std::string_view message_id);

}  // namespace rd::webhook
