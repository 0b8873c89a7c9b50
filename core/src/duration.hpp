// Durations as operators write them: "250ms", "10s", "5m", "1h", or a bare number of seconds.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace rd {

// Milliseconds, or nullopt when `text` is not a duration (negative values are rejected).
std::optional<int64_t> parse_duration_ms(std::string_view text);
// Shortest exact spelling: 1500 -> "1500ms", 10000 -> "10s", 300000 -> "5m".
std::string format_duration_ms(int64_t ms);

}  // namespace rd
