# Writes OUTPUT, a C++ source defining rd::dead_letter_schema_sql() as the exact bytes of INPUT
# (config/schema.sql), so `route-delivery migrate` needs no file on disk and cannot drift from it.
# Run by core/CMakeLists.txt at build time:
#   cmake -DINPUT=config/schema.sql -DOUTPUT=<build>/core/generated/dead_letter_postgres_schema.cpp
#         -P core/embed_schema.cmake
if(NOT INPUT OR NOT OUTPUT)
  message(FATAL_ERROR "usage: cmake -DINPUT=<schema.sql> -DOUTPUT=<file.cpp> -P embed_schema.cmake")
endif()
file(READ "${INPUT}" sql)
# The text goes into a raw string literal; its closing delimiter must not occur in it.
string(FIND "${sql}" ")rdsql\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${INPUT} contains )rdsql\" and cannot be embedded as a raw string literal")
endif()
set(content "// Generated from config/schema.sql by core/embed_schema.cmake at build time; edit the .sql
// file, not this one.
#include <string_view>

namespace rd {

namespace {
// The literal starts with the newline after R\"rdsql( (skipped below).
constexpr char kSchemaSql[] = R\"rdsql(
${sql})rdsql\";
}  // namespace

std::string_view dead_letter_schema_sql() { return {kSchemaSql + 1, sizeof(kSchemaSql) - 2}; }

}  // namespace rd
")
# Rewritten only when different, so an unchanged schema does not rebuild what links it.
if(EXISTS "${OUTPUT}")
  file(READ "${OUTPUT}" old)
  if(old STREQUAL content)
    return()
  endif()
endif()
file(WRITE "${OUTPUT}" "${content}")
