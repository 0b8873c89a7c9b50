// Fuzzes the reply-subject reader (core/src/ack_subject.cpp): any bytes must be read or left to
// nats.c without a crash, and what is read must be the numbers in the tokens where nats-server
// writes them, in one of its two forms.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "ack_subject.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto m = rd::parse_ack_subject(text);
  if (!m) return 0;
  std::vector<std::string> tokens;
  size_t start = 0;
  while (true) {
    const size_t dot = text.find('.', start);
    tokens.emplace_back(text.substr(start, dot == std::string_view::npos ? dot : dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  if (tokens.size() != 9 && tokens.size() != 12) __builtin_trap();
  if (tokens[0] != "$JS" || tokens[1] != "ACK") __builtin_trap();
  const size_t stream = tokens.size() == 9 ? 2 : 4;
  const auto value = [&](size_t i) {
    for (char c : tokens[i])
      if (c < '0' || c > '9') __builtin_trap();  // only digits are read as numbers
    return std::strtoull(tokens[i].c_str(), nullptr, 10);
  };
  if (value(stream + 2) != m->delivered || value(stream + 3) != m->stream_seq ||
      value(stream + 5) != static_cast<uint64_t>(m->timestamp_ns))
    __builtin_trap();
  return 0;
}
