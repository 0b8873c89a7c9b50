// Dead-letter sinks: where a job goes when it can never be delivered (permanent failure, or the
// last attempt failed). The host writes the record first and terms the message only after write()
// returned; when write() throws, the message is nak'd with delay instead, so nothing is lost.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace rd {

struct DeadLetterRecord {
  std::string tenant_id;
  std::optional<int64_t> route_id;  // absent when the job could not be parsed
  std::string topic;                // original device topic ("" when unparsable)
  std::string payload_json;         // the job's payload as JSON; "null" when unparsable
  std::string destination_type;
  std::string destination_config_json;  // "{}" when absent
  std::string error;                    // <= 2000 characters
  uint32_t attempts = 0;                // JetStream delivery count at the time of dead-lettering
  std::string message_id;               // "<stream>:<stream sequence>", stable across redeliveries
  std::string subject;                  // subject the job arrived on, e.g. routes.tenant-a
  std::string original;                 // the raw job bytes exactly as received (may be non-UTF-8)
  bool job_valid = false;               // whether `original` parsed as a valid job
  int64_t failed_at_ms = 0;             // wall clock, ms since epoch
};

// Thrown by a sink when the record was not stored; the caller must not settle the message.
class DeadLetterError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class DeadLetterSink {
 public:
  virtual ~DeadLetterSink() = default;
  // Short name for logs and /health, e.g. "jetstream:ROUTES_DLQ" or "postgres".
  virtual std::string name() const = 0;
  // Stores the record durably; blocking. Called concurrently from the host's dead-letter threads.
  // Throws DeadLetterError when the record was not stored.
  virtual void write(const DeadLetterRecord& record) = 0;
  // Cheap health check for /health (must not block on the network for long).
  virtual bool healthy(std::string& detail) const = 0;
};

// A dead-lettered job as listed by `route-delivery dlq list` / replayed by `dlq replay`.
struct DeadLetterEntry {
  int64_t id = 0;  // row id (postgres) or stream sequence (jetstream)
  DeadLetterRecord record;
  int64_t created_at_ms = 0;
  std::optional<int64_t> replayed_at_ms;
};

}  // namespace rd
