#include "dead_letter_jetstream.hpp"

#include <nlohmann/json.hpp>

#include "nats_client.hpp"

namespace rd {

using nlohmann::json;

std::string dead_letter_record_json(const DeadLetterRecord& r, size_t max_bytes) {
  json j;
  j["tenant_id"] = r.tenant_id;
  j["route_id"] = r.route_id ? json(*r.route_id) : json(nullptr);
  j["topic"] = r.topic;
  j["destination_type"] = r.destination_type;
  j["error"] = r.error;
  j["attempts"] = r.attempts;
  j["message_id"] = r.message_id;
  j["subject"] = r.subject;
  j["failed_at_ms"] = r.failed_at_ms;
  json payload = json::parse(r.payload_json, nullptr, false);
  j["payload"] = payload.is_discarded() ? json(nullptr) : payload;
  json config = json::parse(r.destination_config_json, nullptr, false);
  j["destination_config"] = config.is_discarded() ? json::object() : config;
  // The original job, so `dlq replay` can republish it exactly; raw text when it was not JSON.
  json original = json::parse(r.original, nullptr, false);
  if (!original.is_discarded()) {
    j["job"] = std::move(original);
  } else {
    j["raw"] = r.original;
  }
  std::string out = j.dump(-1, ' ', false, json::error_handler_t::replace);
  if (out.size() <= max_bytes) return out;
  j.erase("payload");  // the original job still holds it
  out = j.dump(-1, ' ', false, json::error_handler_t::replace);
  if (out.size() <= max_bytes) return out;
  constexpr size_t kPrefix = 64 * 1024;
  j.erase("job");
  j.erase("raw");
  j["original_bytes"] = r.original.size();
  j["raw_prefix"] = r.original.substr(0, kPrefix);
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

bool parse_dead_letter_record(const std::string& text, DeadLetterRecord& r) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("message_id")) return false;
  auto str = [&](const char* k) {
    return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : "";
  };
  r.tenant_id = str("tenant_id");
  if (j.contains("route_id") && j["route_id"].is_number_integer())
    r.route_id = j["route_id"].get<int64_t>();
  r.topic = str("topic");
  r.destination_type = str("destination_type");
  r.error = str("error");
  r.message_id = str("message_id");
  r.subject = str("subject");
  r.attempts = j.value("attempts", 0u);
  r.failed_at_ms = j.value("failed_at_ms", int64_t{0});
  r.payload_json = j.contains("payload") ? j["payload"].dump() : "null";
  r.destination_config_json =
      j.contains("destination_config") ? j["destination_config"].dump() : "{}";
  if (j.contains("job")) {
    r.original = j["job"].dump();
    r.job_valid = true;
  } else {
    r.original = j.contains("raw") ? str("raw") : str("raw_prefix");  // truncated: not replayable
    r.job_valid = false;
  }
  return true;
}

JetStreamDeadLetterSink::JetStreamDeadLetterSink(jsCtx* js, natsConnection* nc, std::string stream,
                                                 std::string subject_prefix)
    : js_(js), nc_(nc), stream_(std::move(stream)), prefix_(std::move(subject_prefix)) {}

void JetStreamDeadLetterSink::write(const DeadLetterRecord& record) {
  // Leave room for headers within the server's max_payload.
  const int64_t max_payload = natsConnection_GetMaxPayload(nc_);
  const std::string body =
      dead_letter_record_json(record, max_payload > 4096 ? static_cast<size_t>(max_payload - 1024)
                                                         : static_cast<size_t>(1 << 20));
  const std::string subject =
      prefix_ + "." + (record.tenant_id.empty() ? "_unknown" : record.tenant_id);
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MsgId = record.message_id.c_str();  // a redelivered job dead-lettered twice is stored once
  po.ExpectStream = stream_.c_str();
  po.MaxWait = 5000;
  jsPubAck* ack = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  natsStatus s =
      js_Publish(&ack, js_, subject.c_str(), body.data(), static_cast<int>(body.size()), &po, &err);
  if (ack != nullptr) jsPubAck_Destroy(ack);
  if (s != NATS_OK) {
    throw DeadLetterError(
        nats_error_text("dead-letter publish to " + subject + " (stream " + stream_ + ")", s, err));
  }
}

bool JetStreamDeadLetterSink::healthy(std::string& detail) const {
  const bool ok = natsConnection_Status(nc_) == NATS_CONN_STATUS_CONNECTED;
  detail = ok ? "" : "NATS disconnected";
  return ok;
}

}  // namespace rd
