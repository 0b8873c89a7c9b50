// config.table: a table name, optionally schema-qualified, turned into a safely quoted identifier.
#pragma once

#include <string>
#include <string_view>

namespace rd::postgresql {

struct TableName {
  std::string quoted;  // e.g. "iot"."telemetry", ready to paste into SQL
  std::string error;   // why the name was refused; empty when `quoted` is set
};

// Accepts `table` or `schema.table`. Each part is either a plain identifier ([A-Za-z_] then
// [A-Za-z0-9_$], folded to lower case exactly as PostgreSQL folds an unquoted name) or a
// double-quoted identifier kept as written ("" inside stands for one "). Parts are at most 63
// bytes; NUL, empty parts, a third part and anything else are refused.
TableName parse_table_name(std::string_view table);

}  // namespace rd::postgresql
