// PostgreSQL dead-letter sink: one row per dead-lettered job in `dead_letter_messages`
// (config/schema.sql), written under the tenant's row-level-security context.
//
// Each write is its own transaction:
//   BEGIN; SET LOCAL ROLE <role>; SELECT set_config('app.tenant_id', $tenant, true);
//   INSERT ... VALUES ($1, ...); COMMIT;
// with every value passed as a parameter. Connections come from a small pool that reconnects on its
// own: a broken connection is dropped, and the next write opens a fresh one (a write that finds its
// pooled connection dead after a database restart retries once on a fresh connection at once).
//
// Health: the sink starts unproven (healthy() false, "not checked yet"). check() proves it can
// write: the same transaction as a write (SET LOCAL ROLE, tenant context, INSERT), rolled back.
// A failed write, check or migration makes it unhealthy with the database's reason and, where the
// fix is known, what to do (e.g. GRANT pulse_app TO iot); a successful write or check makes it
// healthy again. The daemon's DeadLetterMonitor calls migrate() and check() until they succeed.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "dead_letter.hpp"

namespace rd {

// config/schema.sql, compiled in: generated from the file at build time (core/embed_schema.cmake).
std::string_view dead_letter_schema_sql();

namespace pgdl {
class ConnectionPool;
}  // namespace pgdl

class PostgresDeadLetterSink : public DeadLetterSink {
 public:
  // `url`: libpq URI or key=value string (may hold a password; never logged or put in errors).
  // `role`: SET LOCAL ROLE target for row-level security, "" for none. `pool_size`: at most this
  // many connections (0 counts as 1). Does not connect: the first write (or migrate) does, and
  // an unusable url shows up there as DeadLetterError.
  PostgresDeadLetterSink(std::string url, std::string role, size_t pool_size);
  ~PostgresDeadLetterSink() override;
  PostgresDeadLetterSink(const PostgresDeadLetterSink&) = delete;
  PostgresDeadLetterSink& operator=(const PostgresDeadLetterSink&) = delete;

  std::string name() const override { return "postgres"; }

  // Inserts one row. Blocking, on the caller's thread; safe to call concurrently (up to pool_size
  // run at once, the others wait for a connection). Throws DeadLetterError when the row was not
  // stored (database unreachable, permission denied, ...): the caller must then nak, not settle.
  void write(const DeadLetterRecord& record) override;
  // write() that returns the new row's id.
  int64_t insert(const DeadLetterRecord& record);

  // No network: true once a write or check() succeeded and until one fails (detail says why,
  // with a hint where the fix is known). False before the first write or check.
  bool healthy(std::string& detail) const override;

  // Proves the sink can write: connects (through the pool), runs the write transaction's
  // SET LOCAL ROLE, tenant context and an INSERT of a probe row, then rolls back; nothing is
  // stored. Updates healthy(). Throws DeadLetterError with the reason and a hint.
  void check();

  // Applies config/schema.sql in one transaction with route_delivery.app_role = role, on a
  // connection of its own. Idempotent. Throws DeadLetterError with the database's reason (and a
  // hint); a failure also makes healthy() false.
  void migrate();

 private:
  void set_status(bool ok, const std::string& detail);
  // Called in the handler of a failed pool acquire: marks the sink unhealthy and throws
  // DeadLetterError saying why (with a hint where one is known: a wrong password, a missing role).
  [[noreturn]] void connect_failed(const std::exception& e);
  // The database's message for `state` with what to do about it appended where it is known.
  std::string explain(const std::string& state, const std::string& message,
                      const std::string& user) const;

  std::string conninfo_;
  std::vector<std::string> secrets_;
  std::string role_;
  std::unique_ptr<pgdl::ConnectionPool> pool_;
  std::atomic<bool> ok_{false};
  mutable std::mutex status_mu_;
  std::string status_detail_ = "not checked yet";
};

}  // namespace rd
