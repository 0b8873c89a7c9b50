#include "ack_subject.hpp"

#include <cstddef>
#include <cstdint>
#include <limits>

namespace rd {
namespace {

// Digits only, at least one, at most INT64_MAX (what nats.c's reading takes as a number).
bool number(const char* p, const char* end, uint64_t& out) {
  if (p == end || end - p > 19) return false;
  uint64_t v = 0;
  for (; p != end; ++p) {
    const unsigned d = static_cast<unsigned char>(*p) - '0';
    if (d > 9) return false;
    v = v * 10 + d;
  }
  if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
  out = v;
  return true;
}

}  // namespace

// One pass for the token boundaries (the count tells the form), then the five numbers in place
// (~150 instructions per job fewer than string_view tokens and std::from_chars).
std::optional<AckMetadata> parse_ack_subject(std::string_view reply) {
  constexpr size_t kMaxTokens = 12;
  const char* const s = reply.data();
  const size_t size = reply.size();
  size_t start[kMaxTokens + 1];  // where each token begins; start[n] = one past the end + 1
  size_t n = 0;
  start[n++] = 0;
  for (size_t i = 0; i < size; ++i) {
    if (s[i] != '.') continue;
    if (n == kMaxTokens) return std::nullopt;  // more tokens than either form has
    start[n++] = i + 1;
  }
  start[n] = size + 1;
  size_t stream;  // index of the stream's token; the consumer's follows, then the numbers
  if (n == 9) {
    stream = 2;
  } else if (n == 12) {
    stream = 4;
  } else {
    return std::nullopt;
  }
  const auto token = [&](size_t k) {
    return std::string_view(s + start[k], start[k + 1] - 1 - start[k]);
  };
  if (token(0) != "$JS" || token(1) != "ACK" || token(stream).empty() || token(stream + 1).empty())
    return std::nullopt;
  const auto read = [&](size_t k, uint64_t& out) {
    return number(s + start[k], s + start[k + 1] - 1, out);
  };
  AckMetadata m;
  uint64_t consumer_seq = 0;
  uint64_t timestamp = 0;
  uint64_t pending = 0;
  if (!read(stream + 2, m.delivered) || !read(stream + 3, m.stream_seq) ||
      !read(stream + 4, consumer_seq) || !read(stream + 5, timestamp) || !read(stream + 6, pending))
    return std::nullopt;
  m.timestamp_ns = static_cast<int64_t>(timestamp);
  return m;
}

}  // namespace rd
