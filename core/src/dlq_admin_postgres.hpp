// Operator commands on the PostgreSQL dead-letter table (the DeadLetterAdmin of
// PostgresDeadLetterSink): `route-delivery dlq list` and `route-delivery dlq replay`. The CLI owns
// argument parsing, output and the NATS publish; this class owns the queries and the "replayed
// once" bookkeeping (`replayed_at`).
//
// Row-level security: the admin connects as the url's user, without SET ROLE. Work scoped to one
// tenant sets app.tenant_id, so it also works for a table owner subject to the forced policy.
// Work across tenants (list without a tenant, select by id alone) needs a user that bypasses RLS
// (superuser or BYPASSRLS); otherwise it throws DlqAdminError saying to pass a tenant.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dead_letter.hpp"

namespace rd {

namespace pg {
struct QuietConnection;
}

class PostgresDlqAdmin : public DeadLetterAdmin {
 public:
  // Connects at once; throws DlqAdminError (never echoing the url) when it cannot.
  explicit PostgresDlqAdmin(const std::string& url);
  ~PostgresDlqAdmin() override;
  PostgresDlqAdmin(const PostgresDlqAdmin&) = delete;
  PostgresDlqAdmin& operator=(const PostgresDlqAdmin&) = delete;

  // Newest first, at most `limit` rows (limit <= 0 means 100), replayed rows included.
  std::vector<DeadLetterEntry> list(std::optional<std::string> tenant, int limit) override;

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
                         const DlqPublish& publish) override;

 private:
  void require_scope(const std::optional<std::string>& tenant, const char* what) const;

  std::unique_ptr<pg::QuietConnection> conn_;
  std::vector<std::string> secrets_;
  bool bypass_rls_ = false;  // the connected user sees every tenant
};

}  // namespace rd
