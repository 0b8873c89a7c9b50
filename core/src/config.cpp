#include "config.hpp"

#include <libpq-fe.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "config_key_layout.hpp"
#include "duration.hpp"

extern char** environ;

namespace rd {
namespace {

// Secret: never printed (--check-config shows "***" and where it came from).
enum class KeyType { String, Url, Secret, Int, Bool, Duration, DurationList, StringList };

struct KeyDef {
  const char* path;
  KeyType type;
  const char* def;  // as written in YAML; lists comma-separated
  const char* env;  // may be nullptr
};

// The core's configuration keys, documented in docs/configuration.md ("Core keys").
const KeyDef kKeys[] = {
    {"nats.url", KeyType::Url, "nats://localhost:4222", "NATS_URL"},
    {"nats.stream", KeyType::String, "ROUTES", "NATS_STREAM"},
    {"nats.subjects", KeyType::StringList, "routes.>", "NATS_SUBJECTS"},
    {"nats.consumer", KeyType::String, "route-delivery", "NATS_CONSUMER"},
    {"nats.create", KeyType::Bool, "true", "NATS_CREATE"},
    {"nats.max_deliver", KeyType::Int, "3", "NATS_MAX_DELIVER"},
    {"nats.ack_wait", KeyType::Duration, "30s", "NATS_ACK_WAIT"},
    {"nats.backoff", KeyType::DurationList, "1s,5s", "NATS_BACKOFF"},
    {"nats.max_backoff", KeyType::Duration, "1h", "NATS_MAX_BACKOFF"},
    {"nats.fetch_batch", KeyType::Int, "256", "NATS_FETCH_BATCH"},
    {"nats.replicas", KeyType::Int, "1", "NATS_REPLICAS"},
    {"nats.attempts_bucket", KeyType::String, "", "NATS_ATTEMPTS_BUCKET"},
    {"nats.user", KeyType::String, "", "NATS_USER"},
    {"nats.password", KeyType::Secret, "", "NATS_PASSWORD"},
    {"nats.token", KeyType::Secret, "", "NATS_TOKEN"},
    {"nats.credentials_file", KeyType::String, "", "NATS_CREDS"},
    {"nats.nkey_seed_file", KeyType::String, "", "NATS_NKEY_SEED_FILE"},
    // Last among nats.*: --check-config prints nats.tls as a nested map after the other keys.
    {"nats.tls.ca_file", KeyType::String, "", "NATS_TLS_CA_FILE"},
    {"nats.tls.cert_file", KeyType::String, "", "NATS_TLS_CERT_FILE"},
    {"nats.tls.key_file", KeyType::String, "", "NATS_TLS_KEY_FILE"},
    {"nats.tls.verify", KeyType::Bool, "true", "NATS_TLS_VERIFY"},
    {"delivery.max_in_flight", KeyType::Int, "1024", "DELIVERY_MAX_IN_FLIGHT"},
    {"delivery.shutdown_grace", KeyType::Duration, "20s", "DELIVERY_SHUTDOWN_GRACE"},
    {"delivery.timeout", KeyType::Duration, "5m", "DELIVERY_TIMEOUT"},
    {"delivery.max_job_bytes", KeyType::Int, "1048576", "DELIVERY_MAX_JOB_BYTES"},
    {"delivery.give_up_after", KeyType::Duration, "6h", "DELIVERY_GIVE_UP_AFTER"},
    {"delivery.max_in_flight_per_destination", KeyType::Int, "0",
     "DELIVERY_MAX_IN_FLIGHT_PER_DESTINATION"},
    {"delivery.max_waiting", KeyType::Int, "0", "DELIVERY_MAX_WAITING"},
    {"delivery.defer_delay", KeyType::Duration, "250ms", "DELIVERY_DEFER_DELAY"},
    {"delivery.max_defer_delay", KeyType::Duration, "5s", "DELIVERY_MAX_DEFER_DELAY"},
    {"delivery.queue_timeout", KeyType::Duration, "10m", "DELIVERY_QUEUE_TIMEOUT"},
    {"delivery.circuit.failures", KeyType::Int, "5", "DELIVERY_CIRCUIT_FAILURES"},
    {"delivery.circuit.probe_interval", KeyType::Duration, "1s", "DELIVERY_CIRCUIT_PROBE_INTERVAL"},
    {"dead_letter.stream", KeyType::String, "ROUTES_DLQ", "DEAD_LETTER_STREAM"},
    {"dead_letter.workers", KeyType::Int, "4", "DEAD_LETTER_WORKERS"},
    {"dead_letter.postgres.url", KeyType::Url, "", "DATABASE_URL"},
    {"dead_letter.postgres.role", KeyType::String, "pulse_app", "DEAD_LETTER_PG_ROLE"},
    {"dead_letter.postgres.migrate", KeyType::Bool, "true", "DEAD_LETTER_PG_MIGRATE"},
    {"dead_letter.postgres.pool_size", KeyType::Int, "4", "DEAD_LETTER_PG_POOL_SIZE"},
    {"http.port", KeyType::Int, "8080", "HEALTH_PORT"},
    {"http.bind", KeyType::String, "0.0.0.0", "HEALTH_BIND"},
    // Before plugins.dir: --check-config prints the plugin sections after dir.
    {"plugins.allow_none", KeyType::Bool, "false", "PLUGINS_ALLOW_NONE"},
    {"plugins.dir", KeyType::String, "", "PLUGIN_DIR"},
    // Last among plugins.*: --check-config prints the plugin sections after it.
    {"plugins.dirs", KeyType::StringList, "", "PLUGIN_DIRS"},
    {"log.level", KeyType::String, "info", "LOG_LEVEL"},
    {"log.format", KeyType::String, "json", "LOG_FORMAT"},
};

// Keys renamed since the seed (the Python design), still read under their old names: the old
// YAML key as an alias (both in one file is an error), the old env variable below the new one.
struct RenamedKey {
  const char* old_path;
  const char* path;
  const char* old_env;
};
const RenamedKey kRenamed[] = {
    // The seed's worker count; here it only sizes the dead-letter threads (deliveries run on the
    // plugins' own threads), so its name says so.
    {"delivery.workers", "dead_letter.workers", "DELIVERY_WORKER_COUNT"},
};

const RenamedKey* find_renamed(const std::string& old_path) {
  for (const auto& r : kRenamed) {
    if (old_path == r.old_path) return &r;
  }
  return nullptr;
}

const std::set<std::string> kSections = {
    "nats", "nats.tls", "delivery", "delivery.circuit", "dead_letter", "dead_letter.postgres",
    "http", "plugins",  "log"};

const KeyDef* find_key(const std::string& path) {
  for (const auto& k : kKeys) {
    if (path == k.path) return &k;
  }
  return nullptr;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] =
          std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string suggestion(const std::string& path, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = 4;
  for (const auto& c : candidates) {
    const size_t d = edit_distance(path, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  return best.empty() ? "" : " (did you mean '" + best + "'?)";
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::string item;
  std::stringstream ss(text);
  while (std::getline(ss, item, ',')) {
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

// A secret's environment variable NAME may instead be given as NAME_FILE, the path of a file
// holding the value (Docker and Kubernetes mount secrets as files); trailing newlines are
// stripped. Both set is an error naming both. The origin names the file, never the value.
std::optional<RawValue> env_value(const Environment& env, const std::string& name,
                                  bool file_allowed, std::vector<std::string>& errors) {
  const auto direct = env.find(name);
  const auto file = file_allowed ? env.find(name + "_FILE") : env.end();
  if (direct != env.end() && file != env.end()) {
    errors.push_back("env " + name + " and env " + name + "_FILE are both set: set only one (" +
                     name + "_FILE names a file holding the value)");
    return std::nullopt;
  }
  RawValue v;
  if (direct != env.end()) {
    v.items.push_back(direct->second);
    v.origin.text = "env " + name;
    return v;
  }
  if (file == env.end()) return std::nullopt;
  std::ifstream in(file->second, std::ios::binary);
  if (!in) {
    errors.push_back("env " + name + "_FILE: cannot read '" + file->second +
                     "': " + std::strerror(errno) + " (the file must exist and be readable)");
    return std::nullopt;
  }
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  v.items.push_back(std::move(text));
  v.origin.text = "file " + file->second + " (" + name + "_FILE)";
  return v;
}

// Whether key or section `path` is in `sections` (top-level names; empty = every section).
bool in_scope(const std::vector<std::string>& sections, const std::string& path) {
  if (sections.empty()) return true;
  const std::string top = path.substr(0, path.find('.'));
  return std::find(sections.begin(), sections.end(), top) != sections.end();
}

class Loader {
 public:
  Loader(std::string file, const Environment& env, std::vector<std::string> sections)
      : file_(std::move(file)), env_(env), sections_(std::move(sections)) {}

  std::vector<std::string> errors;
  std::string text;  // the file as read, for checks yaml-cpp does not make (quotes)
  std::map<std::string, RawValue> renamed;  // new key -> value written under its old name

  std::string where(const YAML::Mark& mark) const {
    return file_ + ":" + std::to_string(mark.line + 1);
  }

  // yaml-cpp reads an unterminated quote as one long string up to the end of the file (or to the
  // next quote), swallowing the keys after it. A quoted scalar that never closes, or whose
  // continuation lines look like "key: value", is reported at the line where it opens.
  void check_quotes(const YAML::Node& node, const std::string& key) {
    const YAML::Mark m = node.Mark();
    if (m.pos < 0 || static_cast<size_t>(m.pos) >= text.size()) return;
    const size_t open = static_cast<size_t>(m.pos);
    const char q = text[open];
    if (q != '"' && q != '\'') return;
    size_t i = open + 1;
    for (; i < text.size(); ++i) {
      if (q == '"' && text[i] == '\\') {
        ++i;
      } else if (text[i] == q) {
        if (q == '\'' && i + 1 < text.size() && text[i + 1] == '\'') {
          ++i;  // '' is a quote inside single quotes
        } else {
          break;
        }
      }
    }
    const bool closed = i < text.size();
    static const std::regex key_line(R"(^\s*-?\s*[A-Za-z_][A-Za-z0-9_.-]*\s*:(\s|$))");
    std::istringstream inner(text.substr(open + 1, (closed ? i : text.size()) - open - 1));
    std::string line;
    std::getline(inner, line);  // the rest of the opening line
    int offset = 0;
    while (std::getline(inner, line)) {
      ++offset;
      if (std::regex_search(line, key_line)) {
        errors.push_back(where(m) + ": " + key + ": the value's opening " + q +
                         " is not closed on this line: the quoted string runs on and swallows '" +
                         line.substr(line.find_first_not_of(" \t")) + "' (line " +
                         std::to_string(m.line + 1 + offset) + "); add the closing " + q);
        return;
      }
    }
    if (!closed) {
      errors.push_back(where(m) + ": " + key + ": the value's opening " + q +
                       " is never closed (the quoted string runs to the end of the file)");
    }
  }

  // Expands ${VAR} and ${VAR:-default}; "$${" is a literal "${".
  std::string expand(const std::string& text, const std::string& key, const std::string& origin) {
    std::string out;
    for (size_t i = 0; i < text.size(); ++i) {
      if (text.compare(i, 3, "$${") == 0) {
        out += "${";
        i += 2;
        continue;
      }
      if (text.compare(i, 2, "${") != 0) {
        out += text[i];
        continue;
      }
      const size_t close = text.find('}', i + 2);
      if (close == std::string::npos) {
        errors.push_back(origin + ": " + key + ": unterminated '${' in value");
        return text;
      }
      std::string name = text.substr(i + 2, close - i - 2);
      std::optional<std::string> fallback;
      if (auto p = name.find(":-"); p != std::string::npos) {
        fallback = name.substr(p + 2);
        name = name.substr(0, p);
      }
      auto it = env_.find(name);
      if (it != env_.end() && !(fallback && it->second.empty())) {
        out += it->second;
      } else if (fallback) {
        out += *fallback;
      } else {
        errors.push_back(origin + ": " + key + ": ${" + name +
                         "} is not set in the environment (set it, or write ${" + name +
                         ":-default})");
      }
      i = close;
    }
    return out;
  }

  std::optional<RawValue> read_value(const YAML::Node& node, const std::string& key) {
    RawValue v;
    v.origin.text = where(node.Mark());
    if (node.IsScalar()) {
      check_quotes(node, key);
      v.items.push_back(expand(node.Scalar(), key, v.origin.text));
      return v;
    }
    if (node.IsNull()) {
      v.items.push_back("");
      return v;
    }
    if (node.IsSequence()) {
      v.is_list = true;
      for (const auto& item : node) {
        if (!item.IsScalar()) {
          errors.push_back(where(item.Mark()) + ": " + key + ": list items must be plain values");
          return std::nullopt;
        }
        check_quotes(item, key);
        v.items.push_back(expand(item.Scalar(), key, where(item.Mark())));
      }
      return v;
    }
    errors.push_back(v.origin.text + ": " + key + ": expected a value or a list, found a map");
    return std::nullopt;
  }

  // yaml-cpp keeps every entry of a map with a repeated key and the loader would silently keep
  // the last: a repeated key is an error naming both lines.
  bool duplicate(std::map<std::string, YAML::Mark>& seen, const std::string& name,
                 const std::string& path, const YAML::Mark& mark) {
    auto [it, fresh] = seen.emplace(name, mark);
    if (fresh) return false;
    errors.push_back(where(mark) + ": duplicate key '" + path + "' (first at " + where(it->second) +
                     "): keep one");
    return true;
  }

  void walk(const YAML::Node& map, const std::string& prefix, Config& config,
            std::map<std::string, RawValue>& values) {
    std::map<std::string, YAML::Mark> seen;
    for (auto it = map.begin(); it != map.end(); ++it) {
      const std::string name = it->first.as<std::string>();
      const std::string path = prefix.empty() ? name : prefix + "." + name;
      const YAML::Node node = it->second;  // a copy: the iterator yields a temporary
      if (duplicate(seen, name, path, it->first.Mark())) continue;
      // A section the command does not use is not read: its ${VAR}s need not be set.
      if (prefix.empty() && kSections.count(path) > 0 && !in_scope(sections_, path)) continue;
      if (prefix == "plugins" && name != "dir" && name != "dirs" && name != "allow_none") {
        read_plugin_section(name, node, it->first.Mark(), config);
        continue;
      }
      if (kSections.count(path) > 0) {
        if (node.IsNull()) continue;
        if (!node.IsMap()) {
          errors.push_back(where(it->first.Mark()) + ": " + path + ": expected a map of settings");
          continue;
        }
        walk(node, path, config, values);
        continue;
      }
      if (const RenamedKey* r = find_renamed(path)) {
        if (auto v = read_value(node, path)) {
          v->origin.text += " (as " + path + ")";
          renamed[r->path] = std::move(*v);
        }
        continue;
      }
      if (find_key(path) == nullptr) {
        std::vector<std::string> candidates;
        for (const auto& k : kKeys) candidates.emplace_back(k.path);
        for (const auto& s : kSections) candidates.push_back(s);
        errors.push_back(where(it->first.Mark()) + ": unknown key '" + path + "'" +
                         suggestion(path, candidates));
        continue;
      }
      if (auto v = read_value(node, path)) values[path] = std::move(*v);
    }
  }

  void read_plugin_section(const std::string& name, const YAML::Node& node,
                           const YAML::Mark& key_mark, Config& config) {
    PluginSection section;
    section.origin = where(key_mark);  // the line of "name:", not of its first setting
    if (node.IsNull()) {
      config.plugins.sections[name] = std::move(section);
      return;
    }
    if (!node.IsMap()) {
      errors.push_back(section.origin + ": plugins." + name +
                       ": expected a map of plugin settings");
      return;
    }
    std::map<std::string, YAML::Mark> seen;
    for (auto it = node.begin(); it != node.end(); ++it) {
      const std::string key = it->first.as<std::string>();
      if (duplicate(seen, key, "plugins." + name + "." + key, it->first.Mark())) continue;
      if (auto v = read_value(it->second, "plugins." + name + "." + key)) {
        v->origin.text = where(it->first.Mark());
        section.values[key] = std::move(*v);
      }
    }
    config.plugins.sections[name] = std::move(section);
  }

 private:
  std::string file_;
  const Environment& env_;
  std::vector<std::string> sections_;
};

std::string url_encode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string join(const std::vector<std::string>& items, const char* sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += sep;
    out += items[i];
  }
  return out;
}

// A plugin key's declared bounds (rd_config_key 1.2 min_value / max_value).
struct KeyLimits {
  bool has_min = false;
  int64_t min = 0;
  bool has_max = false;
  int64_t max = 0;

  bool holds(int64_t n) const { return (!has_min || n >= min) && (!has_max || n <= max); }
  // "an integer between 0 and 2", "a duration of at least 100ms", "an integer".
  std::string describe(const char* what, const char* unit) const {
    auto show = [&](int64_t n) {
      return *unit != '\0' ? format_duration_ms(n) : std::to_string(n);
    };
    const std::string of = *unit != '\0' ? " of" : "";
    if (has_min && has_max)
      return std::string(what) + " between " + show(min) + " and " + show(max);
    if (has_min) return std::string(what) + of + " at least " + show(min);
    if (has_max) return std::string(what) + of + " at most " + show(max);
    return what;
  }
};

struct Typed {
  std::vector<std::string>& errors;

  std::string where(const std::string& key, const RawValue& v) const {
    return v.origin.text + ": " + key;
  }
  std::string scalar(const std::string& key, const RawValue& v) {
    if (v.is_list) {
      errors.push_back(where(key, v) + ": expected a single value, found a list");
      return "";
    }
    return v.items.empty() ? "" : v.items.front();
  }
  int64_t integer(const std::string& key, const RawValue& v, int64_t min, int64_t max) {
    const std::string s = scalar(key, v);
    char* end = nullptr;
    errno = 0;
    const long long n = std::strtoll(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || errno != 0 || n < min || n > max) {
      errors.push_back(where(key, v) + ": '" + s + "' is not an integer in [" +
                       std::to_string(min) + ", " + std::to_string(max) + "]");
      return min;
    }
    return n;
  }
  bool boolean(const std::string& key, const RawValue& v) {
    std::string s = scalar(key, v);
    std::transform(s.begin(), s.end(), s.begin(), ::tolower);
    if (s == "true" || s == "yes" || s == "on" || s == "1") return true;
    if (s == "false" || s == "no" || s == "off" || s == "0") return false;
    errors.push_back(where(key, v) + ": '" + s + "' is not a boolean (true or false)");
    return false;
  }
  int64_t duration(const std::string& key, const std::string& s, const RawValue& v) {
    auto ms = parse_duration_ms(s);
    if (!ms) {
      errors.push_back(where(key, v) + ": '" + s +
                       "' is not a duration (write e.g. 250ms, 10s, 5m, or a number of seconds)");
      return 0;
    }
    return *ms;
  }
  std::vector<std::string> list(const RawValue& v) {
    if (v.is_list) return v.items;
    return v.items.empty() ? std::vector<std::string>{} : split_list(v.items.front());
  }

  // A plugin's RD_CONFIG_INT: any 64-bit integer within its declared limits (ABI 1.2); the
  // message states the declared range, not an internal one.
  int64_t plugin_integer(const std::string& key, const RawValue& v, const KeyLimits& limits) {
    const std::string s = scalar(key, v);
    char* end = nullptr;
    errno = 0;
    const long long n = std::strtoll(s.c_str(), &end, 10);
    const bool integer = !s.empty() && *end == '\0' && errno == 0;
    if (!integer || !limits.holds(n)) {
      errors.push_back(where(key, v) + ": must be " + limits.describe("an integer", "") +
                       ", got '" + s + "'");
      return limits.has_min ? limits.min : 0;
    }
    return n;
  }
  void check_duration_limits(const std::string& key, const RawValue& v, int64_t ms,
                             const KeyLimits& limits) {
    if (limits.holds(ms)) return;
    errors.push_back(where(key, v) + ": must be " + limits.describe("a duration", "ms") + ", got " +
                     format_duration_ms(ms));
  }
  // `allowed` is the key's comma-separated allowed_values (ABI 1.2) or nullptr; empty passes (a
  // required key's emptiness is checked apart). A secret's value is never quoted.
  void check_allowed(const std::string& key, const RawValue& v, const std::string& value,
                     const char* allowed, bool secret) {
    if (allowed == nullptr || value.empty()) return;
    const auto values = split_list(allowed);
    if (std::find(values.begin(), values.end(), value) != values.end()) return;
    errors.push_back(where(key, v) + ": must be one of " + join(values, ", ") + ", got " +
                     (secret ? std::string("another value") : "'" + value + "'"));
  }
};

}  // namespace

Environment process_environment() {
  Environment env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string kv(*e);
    auto eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return env;
}

namespace {
// Parameter names whose values are secrets, in libpq conninfo strings and URL queries.
bool secret_param(std::string key) {
  std::transform(key.begin(), key.end(), key.begin(), ::tolower);
  return key.find("pass") != std::string::npos || key.find("secret") != std::string::npos ||
         key.find("token") != std::string::npos;
}

// One URL: the password of its userinfo (or, for NATS, a token as the whole userinfo) and every
// secret query parameter (?password=..., libpq accepts any keyword there).
std::string redact_one_url(const std::string& url) {
  const auto scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  std::string out = url;
  const size_t start = scheme + 3;
  // The last '@' before the query: a password with an unencoded '/' or '@' is still hidden.
  size_t authority_end = out.find('?', start);
  if (authority_end == std::string::npos) authority_end = out.size();
  const auto at = out.rfind('@', authority_end - 1);
  if (at != std::string::npos && at >= start) {
    const auto colon = out.find(':', start);
    const std::string scheme_name = out.substr(0, scheme);
    if (colon != std::string::npos && colon < at) {
      out = out.substr(0, colon + 1) + "***" + out.substr(at);
    } else if (scheme_name.rfind("postgres", 0) != 0) {
      // nats://token@host: the whole userinfo is a secret (postgresql://user@host is a user).
      out = out.substr(0, start) + "***" + out.substr(at);
    }
  }
  const auto q = out.find('?');
  if (q == std::string::npos) return out;
  std::string rebuilt = out.substr(0, q + 1);
  size_t pos = q + 1;
  while (pos <= out.size()) {
    size_t amp = out.find('&', pos);
    if (amp == std::string::npos) amp = out.size();
    const std::string param = out.substr(pos, amp - pos);
    const auto eq = param.find('=');
    if (eq != std::string::npos && secret_param(param.substr(0, eq))) {
      rebuilt += param.substr(0, eq + 1) + "***";
    } else {
      rebuilt += param;
    }
    if (amp < out.size()) rebuilt += '&';
    pos = amp + 1;
  }
  return rebuilt;
}

// libpq keyword/value form: host=db user=iot password=secret, values optionally single-quoted
// with backslash escapes, blanks allowed around '='.
std::string redact_conninfo(const std::string& s) {
  std::string out;
  size_t i = 0;
  const size_t n = s.size();
  auto blank = [&](size_t k) { return k < n && std::isspace(static_cast<unsigned char>(s[k])); };
  while (i < n) {
    while (blank(i)) out += s[i++];
    const size_t key_start = i;
    while (i < n && s[i] != '=' && !blank(i)) ++i;
    const std::string key = s.substr(key_start, i - key_start);
    out += key;
    while (blank(i)) out += s[i++];
    if (i >= n || s[i] != '=') continue;
    out += s[i++];
    while (blank(i)) out += s[i++];
    const size_t value_start = i;
    if (i < n && s[i] == '\'') {
      ++i;
      while (i < n && s[i] != '\'') i += (s[i] == '\\' && i + 1 < n) ? 2 : 1;
      if (i < n) ++i;  // closing quote
    } else {
      while (i < n && !blank(i)) i += (s[i] == '\\' && i + 1 < n) ? 2 : 1;
    }
    const std::string value = s.substr(value_start, i - value_start);
    if (secret_param(key) && !value.empty()) {
      out += value.front() == '\'' ? "'***'" : "***";
    } else {
      out += value;
    }
  }
  return out;
}
}  // namespace

std::string redact_url(const std::string& url) {
  if (url.find("://") == std::string::npos) {
    return url.find('=') == std::string::npos ? url : redact_conninfo(url);
  }
  // Several comma-separated URLs (nats.url): each one redacted.
  std::string out;
  size_t pos = 0;
  while (true) {
    const size_t comma = url.find(',', pos);
    out += redact_one_url(
        url.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos));
    if (comma == std::string::npos) break;
    out += ',';
    pos = comma + 1;
  }
  return out;
}

namespace {
// A YAML syntax error after an unterminated quote is reported by yaml-cpp where the damage shows
// (often much later): name the first line whose quoted value does not close on that line.
std::string unclosed_quote_hint(const std::string& text, const std::string& file) {
  static const std::regex key_value(R"(^\s*-?\s*[A-Za-z0-9_.-]+\s*:\s+(.*)$)");
  std::istringstream in(text);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    std::smatch m;
    if (!std::regex_search(line, m, key_value)) continue;
    const std::string value = m.str(1);
    // A quote opens a scalar at the start of the value or after '[', '{', ',' or a blank.
    for (size_t i = 0; i < value.size(); ++i) {
      const char c = value[i];
      if (c == '#' && (i == 0 || value[i - 1] == ' ')) break;  // a comment
      if ((c != '"' && c != '\'') ||
          (i > 0 && std::string(" [{,").find(value[i - 1]) == std::string::npos)) {
        continue;
      }
      size_t k = i + 1;
      for (; k < value.size(); ++k) {
        if (c == '"' && value[k] == '\\') {
          ++k;
        } else if (value[k] == c) {
          break;
        }
      }
      if (k >= value.size()) {
        return " (" + file + ":" + std::to_string(n) + " opens a " + c +
               " that is not closed on that line)";
      }
      i = k;
    }
  }
  return "";
}

// Why `url` (one item of nats.url) is not a URL nats.c can connect to, or "".
std::string nats_url_shape_problem(const std::string& url);

std::string nats_url_problem(const std::string& url) {
  std::vector<std::string> why;
  if (const std::string shape = nats_url_shape_problem(url); !shape.empty()) why.push_back(shape);
  if (url.find_first_of(" \t\r\n") != std::string::npos) why.emplace_back("it contains a blank");
  return join(why, "; ");
}

std::string nats_url_shape_problem(const std::string& url) {
  std::string scheme;
  std::string rest = url;
  if (const auto sep = url.find("://"); sep != std::string::npos) {
    scheme = url.substr(0, sep);
    std::transform(scheme.begin(), scheme.end(), scheme.begin(), ::tolower);
    if (scheme != "nats" && scheme != "tls" && scheme != "ws" && scheme != "wss") {
      return "the scheme '" + scheme + "' is not nats, tls, ws or wss";
    }
    rest = url.substr(sep + 3);
  } else if (url.find(':') != std::string::npos &&
             url.find_first_not_of("0123456789", url.find(':') + 1) != std::string::npos) {
    return "it has no scheme:// and '" + url.substr(url.find(':') + 1) + "' is not a port";
  }
  if (const auto at = rest.rfind('@'); at != std::string::npos) rest = rest.substr(at + 1);
  if (const auto slash = rest.find('/'); slash != std::string::npos) {
    if (scheme != "ws" && scheme != "wss" && slash + 1 != rest.size()) {
      return "it has a path ('" + rest.substr(slash) + "'; only ws:// and wss:// URLs may)";
    }
    rest = rest.substr(0, slash);
  }
  std::string host = rest, port;
  if (!rest.empty() && rest.front() == '[') {  // [IPv6]:port
    const auto close = rest.find(']');
    if (close == std::string::npos) return "the IPv6 address has no closing ']'";
    host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') return "unexpected text after the IPv6 address";
      port = rest.substr(close + 2);
    }
    if (host.find_first_not_of("0123456789abcdefABCDEF:.") != std::string::npos) {
      return "'" + host + "' is not an IPv6 address";
    }
  } else if (const auto colon = rest.rfind(':'); colon != std::string::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    if (port.empty()) return "the port after ':' is empty";
  }
  if (host.empty()) return "it has no host";
  if (rest.front() != '[' && host.find_first_of(" \t") == std::string::npos &&
      host.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS"
                             "TUVWXYZ0123456789.-_") != std::string::npos) {
    return "'" + host + "' is not a host name or address";
  }
  if (!port.empty() && port.find_first_of(" \t") == std::string::npos) {
    char* end = nullptr;
    const long p = std::strtol(port.c_str(), &end, 10);
    if (*end != '\0' || p < 1 || p > 65535) return "the port '" + port + "' is not in 1..65535";
  }
  return "";
}

// Why libpq would refuse `conninfo` (either form), or "". libpq quotes parts of the string in its
// messages; every quoted part that is not an option name is masked (it may be a password).
std::string conninfo_problem(const std::string& conninfo) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (opts != nullptr) {
    PQconninfoFree(opts);
    return "";
  }
  std::string msg = err != nullptr ? err : "out of memory";
  PQfreemem(err);
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  std::set<std::string> keywords;
  if (PQconninfoOption* defaults = PQconndefaults()) {
    for (PQconninfoOption* o = defaults; o->keyword != nullptr; ++o) keywords.insert(o->keyword);
    PQconninfoFree(defaults);
  }
  // These two quote the option name the operator wrote, never a value.
  const bool names_only = msg.find("invalid connection option") != std::string::npos ||
                          msg.find("invalid URI query parameter") != std::string::npos;
  std::string out;
  for (size_t i = 0; i < msg.size(); ++i) {
    const size_t close = msg[i] == '"' ? msg.find('"', i + 1) : std::string::npos;
    if (close == std::string::npos) {
      out += msg[i];
      continue;
    }
    const std::string part = msg.substr(i + 1, close - i - 1);
    const bool punctuation = std::none_of(part.begin(), part.end(), ::isalnum);
    const bool shown = keywords.count(part) > 0 || punctuation || names_only;
    out += "\"" + (shown ? part : std::string("...")) + "\"";
    i = close;
  }
  return out;
}

Config load_config_impl(const std::string& path, const std::string* text, const Environment& env,
                        const std::vector<std::string>& sections) {
  Config config;
  config.file = path;
  Loader loader(path, env, sections);
  std::map<std::string, RawValue> values;
  for (const auto& k : kKeys) {
    RawValue v;
    v.items.push_back(k.def);
    v.origin.text = "default";
    values[k.path] = v;
  }

  if (!path.empty() || text != nullptr) {
    if (text != nullptr) {
      loader.text = *text;
    } else {
      std::ifstream in(path, std::ios::binary);
      if (!in) {
        throw ConfigError(path +
                          ": cannot read the config file (check the path given to --config)");
      }
      loader.text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    YAML::Node root;
    try {
      root = YAML::Load(loader.text);
    } catch (const YAML::ParserException& e) {
      throw ConfigError(path + ":" + std::to_string(e.mark.line + 1) +
                        ": YAML syntax error: " + e.msg + unclosed_quote_hint(loader.text, path));
    }
    if (!root.IsNull() && !root.IsMap()) {
      throw ConfigError(
          path + ":1: the config file must be a YAML map of sections (nats:, delivery:, ...)");
    }
    if (root.IsMap()) {
      try {
        loader.walk(root, "", config, values);
      } catch (const YAML::Exception& e) {
        loader.errors.push_back(path + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
      }
    }
  }

  for (auto& [key, v] : loader.renamed) {
    if (values[key].origin.text != "default") {
      loader.errors.push_back(v.origin.text + ": " + key + " is also set at " +
                              values[key].origin.text + ": keep " + key);
    }
    values[key] = std::move(v);
  }

  // Environment overrides (the Python design's names keep working; a key's own name wins).
  for (const auto& r : kRenamed) {
    if (auto v = env_value(env, r.old_env, false, loader.errors)) values[r.path] = *v;
  }
  for (const auto& k : kKeys) {
    if (k.env == nullptr || !in_scope(sections, k.path)) continue;
    // Secrets and URLs (which may hold credentials) can also come from <NAME>_FILE.
    const bool file_allowed = k.type == KeyType::Secret || k.type == KeyType::Url;
    if (auto v = env_value(env, k.env, file_allowed, loader.errors)) values[k.path] = *v;
  }
  // PG_HOST/PG_PORT/PG_DB/PG_USER/PG_PASS build the database URL when DATABASE_URL is not set.
  if (in_scope(sections, "dead_letter") && env.count("DATABASE_URL") == 0 &&
      env.count("DATABASE_URL_FILE") == 0 && env.count("PG_HOST") > 0 &&
      !env.at("PG_HOST").empty()) {
    auto get = [&](const char* name, const char* def) {
      auto it = env.find(name);
      return it == env.end() || it->second.empty() ? std::string(def) : it->second;
    };
    std::string pass;
    std::string pass_origin = "PG_PASS";
    if (auto p = env_value(env, "PG_PASS", true, loader.errors)) {
      pass = p->items.front();
      if (p->origin.text.rfind("file ", 0) == 0) pass_origin = "PG_PASS_FILE";
    }
    RawValue v;
    v.items.push_back("postgresql://" + url_encode(get("PG_USER", "iot")) +
                      (pass.empty() ? "" : ":" + url_encode(pass)) + "@" + get("PG_HOST", "") +
                      ":" + get("PG_PORT", "5432") + "/" + url_encode(get("PG_DB", "iotcloud")));
    v.origin.text = "env PG_HOST/PG_PORT/PG_DB/PG_USER/" + pass_origin;
    values["dead_letter.postgres.url"] = v;
  }

  std::vector<std::string>& errors = loader.errors;
  Typed t{errors};
  auto& n = config.nats;
  n.url = t.scalar("nats.url", values["nats.url"]);
  n.stream = t.scalar("nats.stream", values["nats.stream"]);
  n.subjects = t.list(values["nats.subjects"]);
  n.consumer = t.scalar("nats.consumer", values["nats.consumer"]);
  n.create = t.boolean("nats.create", values["nats.create"]);
  n.max_deliver = t.integer("nats.max_deliver", values["nats.max_deliver"], -1, 1'000'000);
  n.ack_wait_ms = t.duration("nats.ack_wait", t.scalar("nats.ack_wait", values["nats.ack_wait"]),
                             values["nats.ack_wait"]);
  n.backoff_ms.clear();
  for (const auto& item : t.list(values["nats.backoff"])) {
    n.backoff_ms.push_back(t.duration("nats.backoff", item, values["nats.backoff"]));
  }
  n.max_backoff_ms =
      t.duration("nats.max_backoff", t.scalar("nats.max_backoff", values["nats.max_backoff"]),
                 values["nats.max_backoff"]);
  n.fetch_batch =
      static_cast<int>(t.integer("nats.fetch_batch", values["nats.fetch_batch"], 1, 10'000));
  n.replicas = static_cast<int>(t.integer("nats.replicas", values["nats.replicas"], 1, 5));
  n.attempts_bucket = t.scalar("nats.attempts_bucket", values["nats.attempts_bucket"]);
  if (n.attempts_bucket.empty()) n.attempts_bucket = n.stream + "_ATTEMPTS";
  n.user = t.scalar("nats.user", values["nats.user"]);
  n.password = t.scalar("nats.password", values["nats.password"]);
  n.token = t.scalar("nats.token", values["nats.token"]);
  n.credentials_file = t.scalar("nats.credentials_file", values["nats.credentials_file"]);
  n.nkey_seed_file = t.scalar("nats.nkey_seed_file", values["nats.nkey_seed_file"]);
  n.tls.ca_file = t.scalar("nats.tls.ca_file", values["nats.tls.ca_file"]);
  n.tls.cert_file = t.scalar("nats.tls.cert_file", values["nats.tls.cert_file"]);
  n.tls.key_file = t.scalar("nats.tls.key_file", values["nats.tls.key_file"]);
  n.tls.verify = t.boolean("nats.tls.verify", values["nats.tls.verify"]);
  auto& d = config.delivery;
  d.max_in_flight = static_cast<int>(
      t.integer("delivery.max_in_flight", values["delivery.max_in_flight"], 1, 1'000'000));
  d.shutdown_grace_ms =
      t.duration("delivery.shutdown_grace",
                 t.scalar("delivery.shutdown_grace", values["delivery.shutdown_grace"]),
                 values["delivery.shutdown_grace"]);
  d.timeout_ms =
      t.duration("delivery.timeout", t.scalar("delivery.timeout", values["delivery.timeout"]),
                 values["delivery.timeout"]);
  d.max_job_bytes =
      t.integer("delivery.max_job_bytes", values["delivery.max_job_bytes"], 1024, 64ll << 20);
  auto duration = [&](const char* key) {
    return t.duration(key, t.scalar(key, values[key]), values[key]);
  };
  d.give_up_after_ms = duration("delivery.give_up_after");
  d.max_in_flight_per_destination =
      static_cast<int>(t.integer("delivery.max_in_flight_per_destination",
                                 values["delivery.max_in_flight_per_destination"], 0, 1'000'000));
  if (d.max_in_flight_per_destination == 0)
    d.max_in_flight_per_destination = std::max(1, d.max_in_flight / 4);
  d.max_waiting = static_cast<int>(
      t.integer("delivery.max_waiting", values["delivery.max_waiting"], 0, 1'000'000));
  if (d.max_waiting == 0) d.max_waiting = d.max_in_flight;
  d.defer_delay_ms = duration("delivery.defer_delay");
  d.max_defer_delay_ms = duration("delivery.max_defer_delay");
  d.queue_timeout_ms = duration("delivery.queue_timeout");
  d.circuit_failures = static_cast<int>(
      t.integer("delivery.circuit.failures", values["delivery.circuit.failures"], 0, 1'000'000));
  d.circuit_probe_interval_ms = duration("delivery.circuit.probe_interval");
  auto& dl = config.dead_letter;
  dl.postgres_url = t.scalar("dead_letter.postgres.url", values["dead_letter.postgres.url"]);
  dl.postgres_role = t.scalar("dead_letter.postgres.role", values["dead_letter.postgres.role"]);
  dl.postgres_migrate =
      t.boolean("dead_letter.postgres.migrate", values["dead_letter.postgres.migrate"]);
  dl.postgres_pool_size = static_cast<int>(
      t.integer("dead_letter.postgres.pool_size", values["dead_letter.postgres.pool_size"], 1, 64));
  dl.stream = t.scalar("dead_letter.stream", values["dead_letter.stream"]);
  dl.workers =
      static_cast<int>(t.integer("dead_letter.workers", values["dead_letter.workers"], 1, 256));
  config.http.port = static_cast<int>(t.integer("http.port", values["http.port"], 0, 65535));
  config.http.bind = t.scalar("http.bind", values["http.bind"]);
  config.plugins.dir = t.scalar("plugins.dir", values["plugins.dir"]);
  config.plugins.allow_none = t.boolean("plugins.allow_none", values["plugins.allow_none"]);
  config.plugins.dirs = t.list(values["plugins.dirs"]);
  config.log.level = t.scalar("log.level", values["log.level"]);
  config.log.format = t.scalar("log.format", values["log.format"]);

  // Cross-field rules.
  auto origin = [&](const char* key) { return values[key].origin.text + ": " + key; };
  if (n.url.empty())
    errors.push_back(origin("nats.url") + ": must not be empty (e.g. nats://localhost:4222)");
  for (const auto& u : split_list(n.url)) {
    if (const std::string why = nats_url_problem(u); !why.empty()) {
      errors.push_back(origin("nats.url") + ": '" + redact_url(u) +
                       "' is not a NATS server URL: " + why +
                       " (write nats://host:4222 or tls://host:4222; several separated by commas)");
    }
  }
  if (!dl.postgres_url.empty()) {
    if (const std::string why = conninfo_problem(dl.postgres_url); !why.empty()) {
      errors.push_back(origin("dead_letter.postgres.url") +
                       ": not a PostgreSQL connection string: " + why +
                       " (write postgresql://user@host:5432/db or host=... dbname=...)");
    }
  }
  if (n.stream.empty()) errors.push_back(origin("nats.stream") + ": must not be empty");
  if (n.consumer.empty()) errors.push_back(origin("nats.consumer") + ": must not be empty");
  if (n.subjects.empty())
    errors.push_back(origin("nats.subjects") + ": needs at least one subject");
  if (!n.password.empty() && n.user.empty())
    errors.push_back(origin("nats.password") + ": needs nats.user (NATS_USER) as well");
  {
    std::vector<std::string> auth;
    if (!n.user.empty()) auth.emplace_back("nats.user");
    if (!n.token.empty()) auth.emplace_back("nats.token");
    if (!n.credentials_file.empty()) auth.emplace_back("nats.credentials_file");
    if (!n.nkey_seed_file.empty()) auth.emplace_back("nats.nkey_seed_file");
    for (const auto& u : split_list(n.url)) {
      const auto scheme = u.find("://");
      const auto at = u.find('@');
      if (at != std::string::npos && (scheme == std::string::npos || at > scheme)) {
        auth.insert(auth.begin(), "credentials in nats.url");
        break;
      }
    }
    if (auth.size() > 1) {
      errors.push_back(origin(auth[1].c_str()) + ": " + join(auth, " and ") +
                       " are set; a connection authenticates one way: keep one");
    }
  }
  if (n.tls.cert_file.empty() != n.tls.key_file.empty()) {
    errors.push_back(origin(n.tls.cert_file.empty() ? "nats.tls.key_file" : "nats.tls.cert_file") +
                     ": nats.tls.cert_file and nats.tls.key_file go together (a client "
                     "certificate and its private key)");
  }
  for (const char* key : {"nats.credentials_file", "nats.nkey_seed_file", "nats.tls.ca_file",
                          "nats.tls.cert_file", "nats.tls.key_file"}) {
    const std::string file = values[key].items.empty() ? "" : values[key].items.front();
    if (file.empty()) continue;
    std::ifstream in(file);
    if (!in) {
      errors.push_back(origin(key) + ": cannot read '" + file + "': " + std::strerror(errno));
    }
  }
  if (n.max_deliver == 0) {
    errors.push_back(origin("nats.max_deliver") +
                     ": must be >= 1 (attempts in total), or -1 for unlimited");
  }
  if (n.ack_wait_ms < 1000) errors.push_back(origin("nats.ack_wait") + ": must be at least 1s");
  if (n.backoff_ms.empty())
    errors.push_back(origin("nats.backoff") + ": needs at least one delay, e.g. [1s, 5s]");
  if (d.shutdown_grace_ms < 0)
    errors.push_back(origin("delivery.shutdown_grace") + ": must be >= 0");
  if (d.timeout_ms < 100) errors.push_back(origin("delivery.timeout") + ": must be at least 100ms");
  if (d.give_up_after_ms < 1000)
    errors.push_back(origin("delivery.give_up_after") +
                     ": must be at least 1s (how long a job may wait for its destination)");
  if (d.defer_delay_ms < 10)
    errors.push_back(origin("delivery.defer_delay") + ": must be at least 10ms");
  if (d.max_defer_delay_ms < d.defer_delay_ms)
    errors.push_back(origin("delivery.max_defer_delay") + ": must be >= delivery.defer_delay");
  if (d.queue_timeout_ms < 1000)
    errors.push_back(origin("delivery.queue_timeout") + ": must be at least 1s");
  if (d.circuit_probe_interval_ms < 10)
    errors.push_back(origin("delivery.circuit.probe_interval") + ": must be at least 10ms");
  if (const auto& l = config.log.level;
      l != "debug" && l != "info" && l != "warn" && l != "error" && l != "off") {
    errors.push_back(origin("log.level") + ": '" + l +
                     "' is not one of debug, info, warn, error, off");
  }
  if (config.log.format != "json" && config.log.format != "text") {
    errors.push_back(origin("log.format") + ": '" + config.log.format + "' is not json or text");
  }
  if (dl.stream.empty()) errors.push_back(origin("dead_letter.stream") + ": must not be empty");
  // The subject prefix jobs arrive on: "routes" from "routes.>".
  if (!n.subjects.empty()) {
    const std::string& s = n.subjects.front();
    const auto dot = s.find('.');
    n.subject_prefix = dot == std::string::npos ? s : s.substr(0, dot);
  }

  if (!errors.empty()) throw ConfigError(join(errors, "\n"));

  for (const auto& k : kKeys) {
    config.effective.emplace_back(k.path, values[k.path]);
    if (std::string(k.path).rfind("nats.", 0) == 0) n.origins[k.path] = values[k.path].origin.text;
  }
  return config;
}
}  // namespace

std::string Config::origin_of(const std::string& path) const {
  for (const auto& [key, value] : effective) {
    if (key == path) return value.origin.text;
  }
  return "default";
}

Config load_config(const std::string& path, const Environment& env,
                   const std::vector<std::string>& sections) {
  return load_config_impl(path, nullptr, env, sections);
}

Config load_config_text(const std::string& text, const std::string& name, const Environment& env,
                        const std::vector<std::string>& sections) {
  return load_config_impl(name, &text, env, sections);
}

std::vector<std::string> unknown_plugin_sections(const Config& config,
                                                 const std::vector<std::string>& loaded,
                                                 const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& [name, section] : config.plugins.sections) {
    if (std::find(loaded.begin(), loaded.end(), name) != loaded.end()) continue;
    std::string hint = suggestion(name, loaded);
    for (const auto& l : loaded) {  // "mqtt" for "mqtt_republish"
      if (hint.empty() && l.rfind(name, 0) == 0) hint = " (did you mean '" + l + "'?)";
    }
    // The bundled plugins, for a typo in a folder that lacks the plugin too.
    const std::vector<std::string> bundled{"webhook", "mqtt_republish", "postgresql"};
    if (hint.empty() && !suggestion(name, bundled).empty()) {
      hint = suggestion(name, bundled) + " (not in " + dir + " either: loaded " +
             (loaded.empty() ? std::string("none") : join(loaded, ", ")) + ")";
    }
    if (hint.empty()) {
      hint = " (plugins loaded from " + dir + ": " +
             (loaded.empty() ? std::string("none") : join(loaded, ", ")) +
             "; install the plugin or remove the section)";
    }
    out.push_back(section.origin + ": plugins." + name + ": no loaded plugin is named '" + name +
                  "'" + hint);
  }
  return out;
}

PluginConfig resolve_plugin_config(const Config& config, const std::string& plugin_name,
                                   const rd_plugin_descriptor& descriptor, const Environment& env,
                                   int64_t ack_wait_ms) {
  PluginConfig out;
  std::vector<std::string> errors;
  Typed t{errors};
  const PluginSection* section = nullptr;
  if (auto it = config.plugins.sections.find(plugin_name); it != config.plugins.sections.end()) {
    section = &it->second;
  }
  std::vector<std::string> declared;
  const uint32_t count = descriptor.config_keys == nullptr ? 0 : descriptor.config_key_count;
  std::vector<rd_config_key> keys;  // in the host's layout, whatever the plugin's minor
  for (uint32_t i = 0; i < count; ++i) {
    keys.push_back(config_key_at(descriptor, i));
    if (keys.back().name != nullptr) declared.emplace_back(keys.back().name);
  }
  // Keys every plugins.<name> section has, owned by the host and never passed to the plugin.
  const std::string isolation_key = "plugins." + plugin_name + ".isolation";
  if (section != nullptr) {
    if (auto it = section->values.find("isolation"); it != section->values.end()) {
      const RawValue& v = it->second;
      const std::string text = v.items.size() == 1 && !v.is_list ? v.items.front() : std::string();
      if (text == "process" || text == "in_process") {
        out.isolated = text == "process";
        out.effective.emplace_back("isolation", v);
        out.types.push_back(RD_CONFIG_STRING);
      } else {
        errors.push_back(v.origin.text + ": " + isolation_key +
                         ": must be in_process or process, got '" +
                         (v.is_list ? std::string("a list") : text) + "'");
      }
    }
  }
  if (section != nullptr) {
    for (const auto& [key, value] : section->values) {
      if (key == "isolation") continue;  // host-owned, above
      if (std::find(declared.begin(), declared.end(), key) == declared.end()) {
        std::vector<std::string> candidates;
        for (const auto& d : declared) candidates.push_back("plugins." + plugin_name + "." + d);
        errors.push_back(value.origin.text + ": unknown key 'plugins." + plugin_name + "." + key +
                         "' (plugin " + plugin_name + " declares: " +
                         (declared.empty() ? std::string("none") : join(declared, ", ")) + ")" +
                         suggestion("plugins." + plugin_name + "." + key, candidates));
      }
    }
  }
  nlohmann::json json = nlohmann::json::object();
  for (uint32_t i = 0; i < count; ++i) {
    const rd_config_key& k = keys[i];
    if (k.name == nullptr) continue;
    const std::string full = "plugins." + plugin_name + "." + k.name;
    RawValue v;
    v.items.push_back(k.default_value != nullptr ? k.default_value : "");
    bool set = false;  // by the operator (file or env), not the default
    if (section != nullptr) {
      if (auto it = section->values.find(k.name); it != section->values.end()) {
        v = it->second;
        set = true;
      }
    }
    if (k.env != nullptr) {
      // A secret's env name may also be given as <NAME>_FILE (MQTT_PASSWORD_FILE, ...).
      if (auto e = env_value(env, k.env, k.type == RD_CONFIG_SECRET, errors)) {
        v = *e;
        set = true;
      }
    }
    if ((k.flags & RD_CONFIG_REQUIRED) != 0) {
      const bool empty = v.items.empty() || (v.items.size() == 1 && v.items.front().empty());
      if (!set || empty) {
        const std::string at = set                   ? v.origin.text
                               : section != nullptr  ? section->origin
                               : config.file.empty() ? std::string("config")
                                                     : config.file;
        errors.push_back(at + ": " + full + ": is required and " + (set ? "empty" : "not set") +
                         ": set it under plugins." + plugin_name + " in the config file" +
                         (k.env != nullptr ? std::string(" or in env ") + k.env : std::string()));
        continue;
      }
    }
    const KeyLimits limits{(k.flags & RD_CONFIG_HAS_MIN) != 0, k.min_value,
                           (k.flags & RD_CONFIG_HAS_MAX) != 0, k.max_value};
    switch (k.type) {
      case RD_CONFIG_INT:
        json[k.name] = t.plugin_integer(full, v, limits);
        break;
      case RD_CONFIG_BOOL:
        json[k.name] = t.boolean(full, v);
        break;
      case RD_CONFIG_DURATION: {
        int64_t ms = t.duration(full, t.scalar(full, v), v);
        // A plugin timeout at or above ack_wait would let JetStream redeliver a job still in
        // flight. A default that does not fit is lowered (an operator who shortened ack_wait should
        // not have to know every plugin's defaults); a value the operator wrote is an error.
        if (std::string(k.name) == "timeout" && ms >= ack_wait_ms && v.origin.text == "default") {
          const int64_t lowered = ack_wait_ms * 3 / 4;
          out.notes.push_back(full + " default " + format_duration_ms(ms) + " lowered to " +
                              format_duration_ms(lowered) + " to stay below nats.ack_wait (" +
                              format_duration_ms(ack_wait_ms) + ")");
          ms = lowered;
          v.items = {format_duration_ms(lowered)};
        }
        json[k.name] = ms;
        t.check_duration_limits(full, v, ms, limits);
        if (std::string(k.name) == "timeout" && ms >= ack_wait_ms) {
          errors.push_back(v.origin.text + ": " + full + ": " + format_duration_ms(ms) +
                           " must be below nats.ack_wait (" + format_duration_ms(ack_wait_ms) +
                           "); lower it or raise nats.ack_wait");
        }
        break;
      }
      case RD_CONFIG_LIST: {
        const auto items = t.list(v);
        for (const auto& item : items) t.check_allowed(full, v, item, k.allowed_values, false);
        json[k.name] = items;
        break;
      }
      case RD_CONFIG_STRING:
      case RD_CONFIG_SECRET:
      default: {
        const std::string text = t.scalar(full, v);
        t.check_allowed(full, v, text, k.allowed_values, k.type == RD_CONFIG_SECRET);
        json[k.name] = text;
        break;
      }
    }
    out.effective.emplace_back(k.name, v);
    out.types.push_back(k.type);
  }
  if (!errors.empty()) throw ConfigError(join(errors, "\n"));
  out.json = json.dump();
  return out;
}

namespace {
std::string yaml_quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

// Renders a value as YAML: numbers, booleans and durations bare, lists as [a, b], strings quoted.
std::string render_value(const RawValue& v, bool secret, bool url, bool bare, bool list) {
  auto one = [&](const std::string& s) {
    if (secret) return std::string(s.empty() ? "\"\"" : "\"***\"");
    if (bare && !s.empty()) return s;
    return yaml_quote(url ? redact_url(s) : s);
  };
  if (v.is_list || list) {
    std::vector<std::string> items;
    const auto raw =
        v.is_list ? v.items
                  : (v.items.empty() ? std::vector<std::string>{} : split_list(v.items.front()));
    for (const auto& i : raw) items.push_back(one(i));
    return "[" + join(items, ", ") + "]";
  }
  return one(v.items.empty() ? "" : v.items.front());
}
}  // namespace

std::string render_effective_config(const Config& config,
                                    const std::map<std::string, PluginConfig>& plugins) {
  std::ostringstream out;
  out << "# effective configuration" << (config.file.empty() ? "" : " (" + config.file + ")")
      << "; secrets redacted\n";
  std::string section;
  for (const auto& [path, value] : config.effective) {
    const auto dot = path.rfind('.');
    const std::string parent = path.substr(0, dot);
    const std::string leaf = path.substr(dot + 1);
    if (parent != section) {
      // Print "dead_letter.postgres" as a nested map.
      const auto pdot = parent.find('.');
      if (pdot != std::string::npos) {
        if (section.rfind(parent.substr(0, pdot), 0) != 0) out << parent.substr(0, pdot) << ":\n";
        out << "  " << parent.substr(pdot + 1) << ":\n";
      } else {
        out << parent << ":\n";
      }
      section = parent;
    }
    const KeyDef* k = find_key(path);
    const bool url = k != nullptr && k->type == KeyType::Url;
    const bool secret = k != nullptr && k->type == KeyType::Secret;
    const bool bare =
        k != nullptr && (k->type == KeyType::Int || k->type == KeyType::Bool ||
                         k->type == KeyType::Duration || k->type == KeyType::DurationList);
    const bool list =
        k != nullptr && (k->type == KeyType::StringList || k->type == KeyType::DurationList);
    const std::string indent = parent.find('.') != std::string::npos ? "    " : "  ";
    out << indent << leaf << ": " << render_value(value, secret, url, bare, list) << "  # "
        << value.origin.text << "\n";
    if (path != "plugins.dirs") continue;
    for (const auto& [name, pc] : plugins) {
      out << "  " << name << ":\n";
      for (size_t i = 0; i < pc.effective.size(); ++i) {
        const int32_t type = pc.types[i];
        const bool secret = type == RD_CONFIG_SECRET;
        const bool bare =
            type == RD_CONFIG_INT || type == RD_CONFIG_BOOL || type == RD_CONFIG_DURATION;
        const auto& [key, value] = pc.effective[i];
        out << "    " << key << ": "
            << render_value(value, secret, !secret, bare, type == RD_CONFIG_LIST) << "  # "
            << value.origin.text << "\n";
      }
    }
  }
  return out.str();
}

}  // namespace rd
