// Topic templating and validation for mqtt_republish: no network, no Paho, unit-testable.
//
// A route's `destination_config.topic` is a template with `{tenant_id}` and `{device_id}`. The
// substituted values come from the job (tenant) and the device's own payload (device id), so they
// are untrusted: a value may not add topic levels or wildcards, and the final topic must be a valid
// MQTT topic name. A broker disconnects a client that publishes to an invalid topic, which would
// fail every other job on the shared connection, so everything is checked here first.
#pragma once

#include <string>
#include <string_view>

namespace rd::mqtt_republish {

// MQTT strings are length-prefixed with 16 bits.
inline constexpr size_t kMaxTopicBytes = 65535;

// Result of a check: empty `error` means valid; otherwise a short reason for a person.
struct Check {
  std::string error;
  bool ok() const { return error.empty(); }
};

// Quotes an untrusted value for a reason text: JSON-style escapes, at most `max_bytes` of it.
std::string quote(std::string_view value, size_t max_bytes = 64);

// Well-formed UTF-8 without surrogates, overlongs, NUL, C0/C1 control characters or
// non-characters (the code points mosquitto refuses in topic names).
bool is_clean_utf8(std::string_view text);

// Checks a topic *name* for PUBLISH: non-empty, at most kMaxTopicBytes, clean UTF-8, no `+` or
// `#` wildcards, not starting with `$` (reserved for the broker, e.g. $SYS).
Check validate_topic_name(std::string_view topic);

// Checks a value substituted into a template (`what` names it, e.g. "device_id"): it may not
// contain `/`, `+`, `#`, NUL or invalid UTF-8, so it cannot add levels or wildcards.
Check validate_substitution(std::string_view what, std::string_view value);

// Substitutes {tenant_id} and {device_id} into `tmpl`. Any other `{name}` placeholder is an error
// (a typo would otherwise publish to a literal topic). Substituted values are validated, not the
// resulting topic (see validate_topic_name). On success writes the topic into `out`.
Check render(std::string_view tmpl, std::string_view tenant_id, std::string_view device_id,
             bool uses_device_id, std::string& out);

// True when `tmpl` mentions {device_id} (only then the payload needs parsing).
bool uses_device_id(std::string_view tmpl);

// Tenant isolation: with a non-empty `prefix_tmpl` (e.g. "tenants/{tenant_id}/"), the topic must
// lie inside the rendered prefix. A prefix without a trailing '/' still only matches whole
// levels: prefix "tenants/a" allows "tenants/a" and "tenants/a/x" but not "tenants/ab/x".
Check check_prefix(std::string_view prefix_tmpl, std::string_view tenant_id,
                   std::string_view topic);

}  // namespace rd::mqtt_republish
