#include "ack_subject.hpp"

#include <array>
#include <charconv>
#include <cstdint>
#include <limits>

namespace rd {
namespace {

bool number(std::string_view token, uint64_t& out) {
  if (token.empty()) return false;
  const char* end = token.data() + token.size();
  const auto r = std::from_chars(token.data(), end, out);
  return r.ec == std::errc() && r.ptr == end;
}

}  // namespace

std::optional<AckMetadata> parse_ack_subject(std::string_view reply) {
  std::array<std::string_view, 12> tokens;
  size_t n = 0;
  size_t start = 0;
  while (true) {
    const size_t dot = reply.find('.', start);
    if (n == tokens.size()) return std::nullopt;  // more tokens than either form has
    tokens[n++] = reply.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  size_t stream;  // index of the stream's token; the numbers follow the consumer's
  if (n == 9) {
    stream = 2;
  } else if (n == 12) {
    stream = 4;
  } else {
    return std::nullopt;
  }
  if (tokens[0] != "$JS" || tokens[1] != "ACK" || tokens[stream].empty() ||
      tokens[stream + 1].empty())
    return std::nullopt;
  AckMetadata m;
  uint64_t consumer_seq = 0;
  uint64_t timestamp = 0;
  uint64_t pending = 0;
  if (!number(tokens[stream + 2], m.delivered) || !number(tokens[stream + 3], m.stream_seq) ||
      !number(tokens[stream + 4], consumer_seq) || !number(tokens[stream + 5], timestamp) ||
      !number(tokens[stream + 6], pending) ||
      timestamp > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
      m.delivered > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
      m.stream_seq > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
      consumer_seq > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
      pending > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    return std::nullopt;
  m.timestamp_ns = static_cast<int64_t>(timestamp);
  return m;
}

}  // namespace rd
