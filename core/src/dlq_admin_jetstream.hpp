// Operator commands on the JetStream dead-letter stream (dead_letter.stream, used when no database
// is configured): `route-delivery dlq list` and `route-delivery dlq replay`. An entry's id is its
// stream sequence. A replay is remembered by a marker message on <prefix>._replayed.<sequence> in
// the same stream, since stream messages cannot be changed.
#pragma once

#include <nats/nats.h>

#include <optional>
#include <string>
#include <vector>

#include "dead_letter.hpp"

namespace rd {

class JetStreamDlqAdmin : public DeadLetterAdmin {
 public:
  // `js` must outlive the admin. `stream` and `subject_prefix` are the sink's (dead_letter.stream
  // and dead_letter.subject_prefix: ROUTES_DLQ, dlq.routes).
  JetStreamDlqAdmin(jsCtx* js, std::string stream, std::string subject_prefix);

  // Reads the stream from its newest message back; throws DlqAdminError when it cannot be read.
  std::vector<DeadLetterEntry> list(std::optional<std::string> tenant, int limit) override;

  // See DeadLetterAdmin::replay. Publishing and marking are two steps: when the marker cannot be
  // written the entry counts as replayed and `warnings` says that a second replay would not be
  // refused.
  DlqReplayReport replay(const DlqSelection& selection, bool force,
                         const DlqPublish& publish) override;

 private:
  std::vector<DeadLetterEntry> read(const std::optional<std::string>& tenant, size_t limit);
  std::string marker_subject(int64_t seq) const;

  jsCtx* js_;
  std::string stream_;
  std::string prefix_;
};

}  // namespace rd
