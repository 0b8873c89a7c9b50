// The default dead-letter sink: one JSON record per failure on <prefix>.<tenant_id> in the
// JetStream stream dead_letter.stream (ROUTES_DLQ), de-duplicated by the job's message id.
#pragma once

#include <nats/nats.h>

#include <cstdint>
#include <string>

#include "dead_letter.hpp"

namespace rd {

// The record as stored in the stream (and printed by `dlq list`). When the full record would be
// larger than `max_bytes`, the duplicated top-level payload is dropped first, then the original
// job is replaced by its first 64 KiB ("raw_prefix") and its size ("original_bytes").
std::string dead_letter_record_json(const DeadLetterRecord& record, size_t max_bytes = SIZE_MAX);
// Parses a stored record back (for `dlq list` / `dlq replay`); false when it is not one of ours.
bool parse_dead_letter_record(const std::string& json, DeadLetterRecord& out);

class JetStreamDeadLetterSink : public DeadLetterSink {
 public:
  // `js` must outlive the sink. Does not create the stream (the service does at start-up).
  JetStreamDeadLetterSink(jsCtx* js, natsConnection* nc, std::string stream,
                          std::string subject_prefix);
  std::string name() const override { return "jetstream:" + stream_; }
  void write(const DeadLetterRecord& record) override;
  bool healthy(std::string& detail) const override;

 private:
  jsCtx* js_;
  natsConnection* nc_;
  std::string stream_;
  std::string prefix_;
};

}  // namespace rd
