#include "job.hpp"

#include <cstring>

namespace rd {
namespace {
constexpr int kMaxDepth = 64;
constexpr size_t kMaxTenantLength = 256;

bool valid_tenant_token(std::string_view t) {
  if (t.empty() || t.size() > kMaxTenantLength) return false;
  for (unsigned char c : t) {
    // The tenant becomes a NATS subject token (dlq.routes.<tenant>): no separators or wildcards.
    if (c <= 0x20 || c == 0x7f || c == '.' || c == '*' || c == '>') return false;
  }
  return true;
}

// ---- a strict, single-pass JSON scanner for the job envelope ----
//
// The job is read on every delivery, so it is scanned once, without building a document: the
// scanner validates the whole text as RFC 8259 JSON (UTF-8 included, nesting limited to
// kMaxDepth) and records, for the envelope's own members and those of `route`, where each value's
// text lies and what type it is. Payload and destination_config are then handed to plugins as the
// exact bytes ingest wrote. Keys are compared decoded, and the last of duplicate keys wins (as in
// nlohmann::json, which the unit tests and the fuzzer hold this scanner to: job_oracle.hpp).

enum class Type : uint8_t { none, null, boolean, integer, number, string, array, object };

const char* type_name(Type t) {
  switch (t) {
    case Type::null:
      return "null";
    case Type::boolean:
      return "boolean";
    case Type::integer:
    case Type::number:
      return "number";
    case Type::string:
      return "string";
    case Type::array:
      return "array";
    case Type::object:
      return "object";
    case Type::none:
      break;
  }
  return "nothing";
}

// The error a person reads for member `name` missing or not of type `want` (`what` names it:
// "a string"). Out of line: only a bad job gets here.
[[gnu::noinline, gnu::cold]] bool require_failed(Type got, const char* name, const char* what,
                                                 std::string& error) {
  if (got == Type::none) {
    error = std::string("job has no '") + name + "'";
  } else {
    error = std::string("'") + name + "' must be " + what + ", found " + type_name(got);
  }
  return false;
}

// False, with require_failed's error, when member `name` is missing or not of type `want`.
inline bool require(Type got, Type want, const char* name, const char* what, std::string& error) {
  return got == want || require_failed(got, name, what, error);
}

struct Value {
  Type type = Type::none;
  std::string_view text;  // the value's JSON text (strings with their quotes)
  bool escaped = false;   // a string containing backslash escapes
};

struct RouteMembers {
  Value id, destination_type, destination_config;
};

struct Envelope {
  Value tenant_id, route, topic, payload;
  RouteMembers route_members;  // of the last `route` member, when it is an object
};

enum class ScanError : uint8_t { none, syntax, depth };

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void append_utf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Decodes the inside of a validated JSON string (without its quotes) into `out`.
void decode_string(std::string_view in, std::string& out) {
  out.clear();
  out.reserve(in.size());
  auto read4 = [&in](size_t at) {
    uint32_t v = 0;
    for (size_t k = 0; k < 4; ++k) v = (v << 4) | static_cast<uint32_t>(hex_digit(in[at + k]));
    return v;
  };
  for (size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c != '\\') {
      out.push_back(c);
      continue;
    }
    const char e = in[++i];
    switch (e) {
      case 'b':
        out.push_back('\b');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'u': {
        uint32_t cp = read4(i + 1);
        i += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) {  // validated: "\uDC00".."\uDFFF" follows
          const uint32_t low = read4(i + 3);
          i += 6;
          cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        }
        append_utf8(cp, out);
        break;
      }
      default:  // '"', '\\', '/'
        out.push_back(e);
        break;
    }
  }
}

class Scanner {
 public:
  explicit Scanner(std::string_view text) : p_(text.data()), end_(text.data() + text.size()) {}

  // Scans the whole text; on success `root` is the document's type and `env` holds the members.
  ScanError scan(Type& root, Envelope& env) {
    if (end_ - p_ >= 3 && std::memcmp(p_, "\xEF\xBB\xBF", 3) == 0) p_ += 3;  // a UTF-8 BOM
    skip_ws();
    Value v;
    if (!value(0, v, &env, nullptr)) return error_;
    skip_ws();
    if (p_ != end_) return ScanError::syntax;
    root = v.type;
    return ScanError::none;
  }

 private:
  void skip_ws() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }

  bool fail(ScanError e = ScanError::syntax) {
    error_ = e;
    return false;
  }

  // One value at nesting `depth` (0 = the document). When it is an object, `env` or `route` (if
  // not null) receive its members.
  bool value(int depth, Value& out, Envelope* env, RouteMembers* route) {
    if (p_ >= end_) return fail();
    const char* start = p_;
    switch (*p_) {
      case '{':
        out.type = Type::object;
        if (!object(depth + 1, env, route)) return false;
        break;
      case '[':
        out.type = Type::array;
        if (!array(depth + 1)) return false;
        break;
      case '"':
        out.type = Type::string;
        if (!string(out.escaped)) return false;
        break;
      case 't':
        out.type = Type::boolean;
        if (!literal("true", 4)) return false;
        break;
      case 'f':
        out.type = Type::boolean;
        if (!literal("false", 5)) return false;
        break;
      case 'n':
        out.type = Type::null;
        if (!literal("null", 4)) return false;
        break;
      default:
        if (!number(out.type)) return false;
        break;
    }
    out.text = std::string_view(start, static_cast<size_t>(p_ - start));
    return true;
  }

  bool literal(const char* word, size_t n) {
    if (static_cast<size_t>(end_ - p_) < n || std::memcmp(p_, word, n) != 0) return fail();
    p_ += n;
    return true;
  }

  static bool digit(char c) { return c >= '0' && c <= '9'; }

  bool number(Type& type) {
    type = Type::integer;
    if (p_ < end_ && *p_ == '-') ++p_;
    if (p_ >= end_ || !digit(*p_)) return fail();
    if (*p_ == '0') {
      ++p_;
    } else {
      while (p_ < end_ && digit(*p_)) ++p_;
    }
    if (p_ < end_ && *p_ == '.') {
      type = Type::number;
      ++p_;
      if (p_ >= end_ || !digit(*p_)) return fail();
      while (p_ < end_ && digit(*p_)) ++p_;
    }
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
      type = Type::number;
      ++p_;
      if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (p_ >= end_ || !digit(*p_)) return fail();
      while (p_ < end_ && digit(*p_)) ++p_;
    }
    return true;
  }

  // The 4 hex digits at p_ (after "\u"), or -1.
  int32_t hex4() {
    if (end_ - p_ < 4) return -1;
    int32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const int h = hex_digit(p_[i]);
      if (h < 0) return -1;
      v = (v << 4) | h;
    }
    p_ += 4;
    return v;
  }

  // A string starting at p_ == '"': escapes, surrogate pairs, control characters and UTF-8 are
  // checked; p_ ends just past the closing quote.
  bool string(bool& escaped) {
    ++p_;
    escaped = false;
    while (p_ < end_) {
      // Eight plain bytes at a time (no quote, backslash, control character or non-ASCII byte):
      // most of a job is such text. The first special byte of a word is found exactly and p_
      // moves straight to it; it is looked at below.
      while (end_ - p_ >= 8) {
        uint64_t w;
        std::memcpy(&w, p_, 8);
        const uint64_t special = special_bytes(w);
        if (special != 0) {
          p_ += first_byte(special);
          break;
        }
        p_ += 8;
      }
      if (p_ >= end_) break;
      const auto c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        ++p_;
        return true;
      }
      if (c < 0x20) return fail();
      if (c < 0x80 && c != '\\') {
        ++p_;
        continue;
      }
      if (c >= 0x80) {
        if (!utf8_sequence()) return fail();
        continue;
      }
      escaped = true;
      ++p_;
      if (p_ >= end_) return fail();
      switch (*p_) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
          ++p_;
          continue;
        case 'u': {
          ++p_;
          const int32_t u = hex4();
          if (u < 0) return fail();
          if (u >= 0xDC00 && u <= 0xDFFF) return fail();  // a lone low surrogate
          if (u >= 0xD800 && u <= 0xDBFF) {               // must be followed by a low one
            if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') return fail();
            p_ += 2;
            const int32_t low = hex4();
            if (low < 0xDC00 || low > 0xDFFF) return fail();
          }
          continue;
        }
        default:
          return fail();
      }
    }
    return fail();
  }

  // 0x80 in each byte of `w` that is '"', '\\', below 0x20 or 0x80 and above; 0 elsewhere. Exact
  // (no carry crosses a byte: every sum is of 7-bit values).
  static uint64_t special_bytes(uint64_t w) {
    constexpr uint64_t low7 = 0x7F7F7F7F7F7F7F7FULL;
    constexpr uint64_t high = 0x8080808080808080ULL;
    constexpr uint64_t ones = 0x0101010101010101ULL;
    const uint64_t ascii = w & low7;
    // Bit 7 of a byte of ascii + k*ones is set when that 7-bit value is >= 0x80 - k.
    const uint64_t is_quote = ~((ascii ^ (0x22 * ones)) + low7) & high;
    const uint64_t is_backslash = ~((ascii ^ (0x5C * ones)) + low7) & high;
    const uint64_t is_control = ~(ascii + 0x60 * ones) & high;
    return ((w & high) | is_quote | is_backslash | is_control);
  }

  // Index (0-7) of the lowest-addressed byte marked in a special_bytes() mask.
  static size_t first_byte(uint64_t mask) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return static_cast<size_t>(__builtin_clzll(mask)) / 8;
#else
    return static_cast<size_t>(__builtin_ctzll(mask)) / 8;
#endif
  }

  // One multi-byte UTF-8 sequence at p_ (RFC 3629: no overlongs, surrogates or > U+10FFFF).
  bool utf8_sequence() {
    const auto* s = reinterpret_cast<const unsigned char*>(p_);
    const size_t left = static_cast<size_t>(end_ - p_);
    auto cont = [&](size_t i, unsigned char lo = 0x80, unsigned char hi = 0xBF) {
      return i < left && s[i] >= lo && s[i] <= hi;
    };
    const unsigned char c = s[0];
    size_t n = 0;
    if (c >= 0xC2 && c <= 0xDF) {
      n = cont(1) ? 2 : 0;
    } else if (c == 0xE0) {
      n = cont(1, 0xA0, 0xBF) && cont(2) ? 3 : 0;
    } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
      n = cont(1) && cont(2) ? 3 : 0;
    } else if (c == 0xED) {
      n = cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0;
    } else if (c == 0xF0) {
      n = cont(1, 0x90, 0xBF) && cont(2) && cont(3) ? 4 : 0;
    } else if (c >= 0xF1 && c <= 0xF3) {
      n = cont(1) && cont(2) && cont(3) ? 4 : 0;
    } else if (c == 0xF4) {
      n = cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0;
    }
    p_ += n;
    return n != 0;
  }

  enum class Next : uint8_t { more, end, error };

  // After an element or member: ',' (another follows) or `close` (the container ends).
  Next after_item(char close) {
    skip_ws();
    if (p_ < end_ && *p_ == ',') {
      ++p_;
      skip_ws();
      return Next::more;
    }
    if (p_ < end_ && *p_ == close) {
      ++p_;
      return Next::end;
    }
    fail();
    return Next::error;
  }

  bool array(int depth) {
    if (depth > kMaxDepth) return fail(ScanError::depth);
    ++p_;
    skip_ws();
    if (p_ < end_ && *p_ == ']') {
      ++p_;
      return true;
    }
    for (;;) {
      Value v;
      if (!value(depth, v, nullptr, nullptr)) return false;
      const Next next = after_item(']');
      if (next != Next::more) return next == Next::end;
    }
  }

  // The member of `env` / `route` that `key` names, or null.
  static Value* member_slot(std::string_view key, Envelope* env, RouteMembers* route,
                            RouteMembers*& nested) {
    if (env != nullptr) {
      if (key == "tenant_id") return &env->tenant_id;
      if (key == "topic") return &env->topic;
      if (key == "payload") return &env->payload;
      if (key == "route") {
        nested = &env->route_members;
        return &env->route;
      }
      return nullptr;
    }
    if (key == "id") return &route->id;
    if (key == "destination_type") return &route->destination_type;
    if (key == "destination_config") return &route->destination_config;
    return nullptr;
  }

  bool object(int depth, Envelope* env, RouteMembers* route) {
    if (depth > kMaxDepth) return fail(ScanError::depth);
    ++p_;
    skip_ws();
    if (p_ < end_ && *p_ == '}') {
      ++p_;
      return true;
    }
    std::string key_text;
    for (;;) {
      if (p_ >= end_ || *p_ != '"') return fail();
      const char* key_start = p_ + 1;
      bool key_escaped = false;
      if (!string(key_escaped)) return false;
      std::string_view key(key_start, static_cast<size_t>(p_ - 1 - key_start));
      skip_ws();
      if (p_ >= end_ || *p_ != ':') return fail();
      ++p_;
      skip_ws();
      Value* slot = nullptr;
      RouteMembers* nested = nullptr;
      if (env != nullptr || route != nullptr) {
        if (key_escaped) {
          decode_string(key, key_text);
          key = key_text;
        }
        slot = member_slot(key, env, route, nested);
      }
      Value v;
      if (nested != nullptr) {
        // A repeated `route` replaces all of the earlier one's members.
        RouteMembers fresh;
        if (!value(depth, v, nullptr, &fresh)) return false;
        *nested = v.type == Type::object ? fresh : RouteMembers{};
      } else if (!value(depth, v, nullptr, nullptr)) {
        return false;
      }
      if (slot != nullptr) *slot = v;
      const Next next = after_item('}');
      if (next != Next::more) return next == Next::end;
    }
  }

  const char* p_;
  const char* end_;
  ScanError error_ = ScanError::syntax;
};

// The decoded value of a string member.
void string_value(const Value& v, std::string& out) {
  const std::string_view inside = v.text.substr(1, v.text.size() - 2);
  if (v.escaped) {
    decode_string(inside, out);
  } else {
    out.assign(inside.data(), inside.size());
  }
}

// An integer member's value, when it fits in int64.
bool int64_value(const Value& v, int64_t& out) {
  std::string_view t = v.text;
  const bool negative = !t.empty() && t.front() == '-';
  if (negative) t.remove_prefix(1);
  uint64_t magnitude = 0;
  for (char c : t) {
    const auto d = static_cast<uint64_t>(c - '0');
    if (magnitude > (UINT64_MAX - d) / 10) return false;
    magnitude = magnitude * 10 + d;
  }
  constexpr uint64_t kMinMagnitude = static_cast<uint64_t>(INT64_MAX) + 1;
  if (negative) {
    if (magnitude > kMinMagnitude) return false;
    out = magnitude == kMinMagnitude ? INT64_MIN : -static_cast<int64_t>(magnitude);
  } else {
    if (magnitude > static_cast<uint64_t>(INT64_MAX)) return false;
    out = static_cast<int64_t>(magnitude);
  }
  return true;
}
}  // namespace

std::string_view subject_tenant(std::string_view subject, std::string_view prefix) {
  if (subject.size() > prefix.size() + 1 && subject.compare(0, prefix.size(), prefix) == 0 &&
      subject[prefix.size()] == '.') {
    return subject.substr(prefix.size() + 1);
  }
  return {};
}

void parse_job(std::string_view data, std::string_view subject_tenant_token, size_t max_bytes,
               JobParse& out) {
  out.ok = false;
  out.error.clear();
  Job& job = out.job;
  job.tenant_id.assign(subject_tenant_token);
  job.route_id = 0;
  job.has_route_id = false;
  job.destination_type.clear();
  job.destination_config_json = "{}";
  job.topic.clear();
  job.payload_json = "null";

  if (data.size() > max_bytes) {
    out.error = "job is " + std::to_string(data.size()) + " bytes, over delivery.max_job_bytes (" +
                std::to_string(max_bytes) + ")";
    return;
  }
  Type root = Type::none;
  Envelope env;
  switch (Scanner(data).scan(root, env)) {
    case ScanError::none:
      break;
    case ScanError::depth:
      out.error = "job JSON is nested deeper than " + std::to_string(kMaxDepth) + " levels";
      return;
    case ScanError::syntax:
      out.error = "job is not valid JSON (UTF-8)";
      return;
  }
  if (root != Type::object) {
    out.error = std::string("job must be a JSON object, found ") + type_name(root);
    return;
  }
  // Read what we can before rejecting, so the dead-letter record carries it.
  const RouteMembers& route = env.route_members;
  if (env.topic.type == Type::string) string_value(env.topic, job.topic);
  if (env.payload.type != Type::none) job.payload_json.assign(env.payload.text);
  if (env.route.type == Type::object) {
    if (route.id.type == Type::integer && int64_value(route.id, job.route_id)) {
      job.has_route_id = true;
    }
    if (route.destination_type.type == Type::string) {
      string_value(route.destination_type, job.destination_type);
    }
    if (route.destination_config.type == Type::object) {
      job.destination_config_json.assign(route.destination_config.text);
    }
  }

  if (!require(env.tenant_id.type, Type::string, "tenant_id", "a string", out.error)) return;
  std::string tenant_text;
  string_value(env.tenant_id, tenant_text);
  if (!valid_tenant_token(tenant_text)) {
    out.error = "'tenant_id' must be 1-256 characters without spaces, '.', '*' or '>'";
    return;
  }
  if (!subject_tenant_token.empty() && tenant_text != subject_tenant_token) {
    out.error = "'tenant_id' \"" + tenant_text + "\" does not match the subject's tenant \"" +
                std::string(subject_tenant_token) + "\"";
    return;
  }
  job.tenant_id.swap(tenant_text);
  if (!require(env.route.type, Type::object, "route", "an object", out.error)) return;
  if (!require(route.id.type, Type::integer, "route.id", "an integer", out.error)) return;
  if (!job.has_route_id) {
    out.error = "'route.id' must be an integer that fits in 64 bits";
    return;
  }
  if (route.destination_type.type == Type::none) {
    out.error = "job has no 'route.destination_type'";
    return;
  }
  if (route.destination_type.type != Type::string || job.destination_type.empty()) {
    out.error = "'route.destination_type' must be a non-empty string";
    return;
  }
  const Type config_type = route.destination_config.type;
  if (config_type != Type::none && config_type != Type::object && config_type != Type::null) {
    out.error = std::string("'route.destination_config' must be an object, found ") +
                type_name(config_type);
    return;
  }
  if (!require(env.topic.type, Type::string, "topic", "a string", out.error)) return;
  if (env.payload.type == Type::none) {
    out.error = "job has no 'payload'";
    return;
  }
  out.ok = true;
}

}  // namespace rd
