// Webhook signatures (HMAC-SHA256 via OpenSSL) and the stable webhook-id. Pure logic.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace webhook {

std::string base64_encode(std::string_view bytes);
// Standard alphabet, padding optional; nullopt on any other character.
std::optional<std::string> base64_decode(std::string_view text);
std::string hex_encode(std::string_view bytes);

// Raw 32-byte HMAC-SHA256 of `data` under `key`.
std::string hmac_sha256(std::string_view key, std::string_view data);

// Standard Webhooks: "v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>", where `key` is the
// decoded secret (the base64 after "whsec_").
std::string standard_webhooks_signature(std::string_view key, std::string_view id,
                                        int64_t timestamp, std::string_view body);

// The Python design's header value: "sha256=<hex HMAC-SHA256(secret, body)>".
std::string x_signature_256(std::string_view secret, std::string_view body);

// webhook-id for one job: the same for every attempt of it, different for every other job.
// "msg_" + 32 hex chars of SHA-256 over tenant, route id and the JetStream message identity.
std::string webhook_id(std::string_view tenant_id, int64_t route_id, std::string_view message_id);

}  // namespace webhook
