// A JetStream message's metadata as its reply subject ($JS.ACK...) carries it, read in place.
// nats.c's natsMsg_GetMetaData copies the stream's and the consumer's names into a fresh
// jsMsgMetaData for every message (allocations and frees the fetch thread paid per job, ~1 300
// instructions: docs/performance.md, issue 14); the consumer needs three numbers of it.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace rd {

struct AckMetadata {
  uint64_t delivered = 0;    // JetStream's delivery count of the message
  uint64_t stream_seq = 0;   // its sequence in the stream
  int64_t timestamp_ns = 0;  // when the stream stored it (Unix time, ns)
};

// The two forms nats-server writes:
//   $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<timestamp>.<pending>
//   $JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>
//     .<timestamp>.<pending>.<token>
// nullopt for anything else, or a number that does not parse: the caller then asks nats.c, which
// knows every form (and says what is wrong).
std::optional<AckMetadata> parse_ack_subject(std::string_view reply);

}  // namespace rd
