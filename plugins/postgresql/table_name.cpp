#include "table_name.hpp"

#include <vector>

namespace rd::postgresql {

namespace {

constexpr size_t kMaxIdentifierBytes = 63;  // NAMEDATALEN - 1

bool ident_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool ident_char(char c) {
  return ident_start(c) || (c >= '0' && c <= '9') || c == '$';
}

// Parses one part at `pos`; appends its exact name to `names`. Returns an error or "".
std::string parse_part(std::string_view s, size_t& pos, std::vector<std::string>& names) {
  std::string name;
  if (pos < s.size() && s[pos] == '"') {
    for (++pos;; ++pos) {
      if (pos >= s.size()) return "unterminated quoted identifier";
      if (s[pos] == '"') {
        if (pos + 1 < s.size() && s[pos + 1] == '"') {
          name += '"';
          ++pos;
          continue;
        }
        ++pos;
        break;
      }
      name += s[pos];
    }
    if (name.empty()) return "empty quoted identifier";
  } else {
    if (pos >= s.size() || !ident_start(s[pos])) {
      return "expected a name starting with a letter or _ (quote other names with \")";
    }
    for (; pos < s.size() && ident_char(s[pos]); ++pos) {
      const char c = s[pos];
      name += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    }
  }
  if (name.size() > kMaxIdentifierBytes) return "a name is longer than 63 bytes";
  names.push_back(std::move(name));
  return "";
}

std::string quote(const std::string& name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace

TableName parse_table_name(std::string_view table) {
  TableName out;
  if (table.find('\0') != std::string_view::npos) {
    out.error = "contains a NUL byte";
    return out;
  }
  std::vector<std::string> names;
  size_t pos = 0;
  while (true) {
    std::string err = parse_part(table, pos, names);
    if (!err.empty()) {
      out.error = std::move(err);
      return out;
    }
    if (pos == table.size()) break;
    if (table[pos] != '.' || names.size() == 2) {
      out.error = "expected table or schema.table";
      return out;
    }
    ++pos;
  }
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out.quoted += '.';
    out.quoted += quote(names[i]);
  }
  return out;
}

}  // namespace rd::postgresql
