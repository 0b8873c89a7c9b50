// Dead-letter sinks: where a job goes when it can never be delivered (permanent failure, or the
// last attempt failed). The host writes the record first and terms the message only after write()
// returned; when write() throws, the message is nak'd with delay instead, so nothing is lost.
#pragma once

#include <cstdint>
#include <functional>
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

// What the operator commands on a dead-letter store throw: the message is meant for a person.
class DlqAdminError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Replaying one dead letter by id that was already replayed, without force.
class DlqAlreadyReplayed : public DlqAdminError {
 public:
  using DlqAdminError::DlqAdminError;
};

// Which dead letters `dlq replay` takes: one by id, or a tenant's [of one route] [since a time].
struct DlqSelection {
  std::optional<int64_t> id;
  std::optional<std::string> tenant;
  std::optional<int64_t> route_id;
  std::optional<int64_t> since_ms;  // created at or after (ms since the epoch)
};

struct DlqReplayFailure {
  DeadLetterEntry entry;
  std::string error;
};

struct DlqReplayReport {
  std::vector<DeadLetterEntry> replayed;  // published and marked, oldest first
  std::vector<DeadLetterEntry> skipped;   // already replayed (tenant selections without force)
  std::vector<DeadLetterEntry> invalid;   // original is not a valid job: never published
  std::vector<DlqReplayFailure> failed;   // publish failed; still replayable (see replay())
  std::vector<std::string> warnings;      // replayed, but something after it went wrong
};

// Republishes entry.record.original to routes.<entry.record.tenant_id>; throws on failure.
using DlqPublish = std::function<void(const DeadLetterEntry&)>;

// The operator's side of a dead-letter store: `route-delivery dlq list` and `dlq replay`. One
// implementation per sink (PostgresDlqAdmin, JetStreamDlqAdmin); the CLI picks the one that matches
// the configured sink, parses the arguments and prints. Used from one thread; blocking.
class DeadLetterAdmin {
 public:
  virtual ~DeadLetterAdmin() = default;

  // Newest first, at most `limit` entries (limit <= 0 means 100), replayed ones included.
  // Throws DlqAdminError when the store cannot be read.
  virtual std::vector<DeadLetterEntry> list(std::optional<std::string> tenant, int limit) = 0;

  // For each selected entry, oldest first: publish(entry), then mark it replayed, so a second
  // replay is refused unless `force`. Needs `selection.id` or `selection.tenant`.
  // By id: an id that matches nothing throws DlqAdminError, an already replayed entry throws
  // DlqAlreadyReplayed unless `force`, an invalid job (record.job_valid false) throws
  // DlqAdminError — it would only fail again. By tenant: those go to `skipped` and `invalid`.
  // A failed publish leaves the entry replayable. PostgreSQL stops there with DlqAdminError (the
  // row's lock is in the failed transaction; entries replayed before stay marked); JetStream
  // lists it in `failed` and goes on with the next.
  virtual DlqReplayReport replay(const DlqSelection& selection, bool force,
                                 const DlqPublish& publish) = 0;
};

}  // namespace rd
