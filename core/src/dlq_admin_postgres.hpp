// Operator commands on the PostgreSQL dead-letter table: `route-delivery dlq list` and
// `route-delivery dlq replay`. The CLI owns argument parsing, output and the NATS publish; this
// class owns the queries and the "replayed once" bookkeeping (`replayed_at`).
//
// Row-level security: the admin connects as the url's user, without SET ROLE. Work scoped to one
// tenant sets app.tenant_id, so it also works for a table owner subject to the forced policy.
// Work across tenants (list without a tenant, select by id alone) needs a user that bypasses RLS
// (superuser or BYPASSRLS); otherwise it throws DlqAdminError saying to pass a tenant.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "dead_letter.hpp"

namespace rd {

namespace pg {
struct QuietConnection;
}

class DlqAdminError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Replaying a row that already carries replayed_at, without force.
class DlqAlreadyReplayed : public DlqAdminError {
 public:
  using DlqAdminError::DlqAdminError;
};

// Which rows `dlq replay` takes: one row by id, or a tenant's rows [of one route] [since a time].
struct DlqSelection {
  std::optional<int64_t> id;
  std::optional<std::string> tenant;
  std::optional<int64_t> route_id;
  std::optional<int64_t> since_ms;  // created_at >= since (ms since the epoch)
};

struct DlqReplayReport {
  std::vector<DeadLetterEntry> replayed;  // published and marked, oldest first
  std::vector<DeadLetterEntry> skipped;   // already replayed (tenant selections without force)
  std::vector<DeadLetterEntry> invalid;   // original is not a valid job: never published
};

class PostgresDlqAdmin {
 public:
  // Connects at once; throws DlqAdminError (never echoing the url) when it cannot.
  explicit PostgresDlqAdmin(const std::string& url);
  ~PostgresDlqAdmin();
  PostgresDlqAdmin(const PostgresDlqAdmin&) = delete;
  PostgresDlqAdmin& operator=(const PostgresDlqAdmin&) = delete;

  // Newest first, at most `limit` rows (limit <= 0 means 100), replayed rows included.
  std::vector<DeadLetterEntry> list(std::optional<std::string> tenant, int limit);

  // Rows matching `selection`, oldest first. With `include_replayed` false, rows that already have
  // replayed_at are left out. Needs `selection.id` or `selection.tenant` (DlqAdminError otherwise).
  // An id that matches nothing (or is hidden by RLS) throws DlqAdminError.
  std::vector<DeadLetterEntry> select_for_replay(const DlqSelection& selection,
                                                 bool include_replayed);

  // The whole `dlq replay`: for each selected row, oldest first, in its own transaction that
  // locks the row: publish(entry) — which republishes entry.record.original to
  // routes.<entry.record.tenant_id> and throws on failure — then replayed_at = now(). A failing
  // publish rolls that row back (still replayable) and the exception propagates; rows replayed
  // before it stay marked.
  // By id: an already replayed row throws DlqAlreadyReplayed unless `force`. By tenant: already
  // replayed rows are skipped (listed in `skipped`) unless `force`. Rows whose original job was
  // not valid (record.job_valid false: not JSON, a field missing) are never published — it would
  // only fail again: by id that throws DlqAdminError, by tenant they are listed in `invalid`.
  DlqReplayReport replay(const DlqSelection& selection, bool force,
                         const std::function<void(const DeadLetterEntry&)>& publish);

 private:
  void require_scope(const std::optional<std::string>& tenant, const char* what) const;

  std::unique_ptr<pg::QuietConnection> conn_;
  std::vector<std::string> secrets_;
  bool bypass_rls_ = false;  // the connected user sees every tenant
};

}  // namespace rd
