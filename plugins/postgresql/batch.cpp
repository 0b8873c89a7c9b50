#include "batch.hpp"

namespace rd::postgresql {

std::string insert_sql(const std::string& quoted_table, size_t rows) {
  std::string sql = "INSERT INTO " + quoted_table + " (tenant_id, topic, payload) VALUES ";
  sql.reserve(sql.size() + rows * 20);
  for (size_t i = 0; i < rows; ++i) {
    const size_t p = i * 3;
    if (i > 0) sql += ", ";
    sql += "($" + std::to_string(p + 1) + ", $" + std::to_string(p + 2) + ", $" +
           std::to_string(p + 3) + ")";
  }
  return sql;
}

int32_t classify_sqlstate(std::string_view sqlstate) {
  const std::string_view cls = sqlstate.substr(0, 2);
  if (cls == "22" || cls == "23" || cls == "42") return RD_OUTCOME_PERMANENT;
  // 08, 40, 53, 57 are transient by definition; anything else is not known to be permanent, so it
  // is retried and dead-lettered only after the last attempt.
  return RD_OUTCOME_RETRY;
}

int32_t classify_connect_error(std::string_view message) {
  // A server's refusal reaches libpq as a FATAL error response; everything below that (TCP, DNS,
  // TLS, timeouts) has no severity. Localised server messages fall through to DEFER.
  if (message.find("FATAL:") == std::string_view::npos) return RD_OUTCOME_DEFER;
  for (std::string_view unavailable :
       {"the database system is starting up", "the database system is shutting down",
        "the database system is in recovery mode", "the database system is not yet accepting",
        "the database system is not accepting", "too many clients",
        "remaining connection slots are reserved", "too many connections"}) {
    if (message.find(unavailable) != std::string_view::npos) return RD_OUTCOME_DEFER;
  }
  return RD_OUTCOME_RETRY;
}

}  // namespace rd::postgresql
