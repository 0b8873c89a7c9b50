// Building the multi-row INSERT for a batch and classifying PostgreSQL errors into outcomes.
// No database needed: unit-tested in tests/postgres.
#pragma once

#include <route_delivery/plugin.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace rd::postgresql {

// Rows in one INSERT are bounded by PostgreSQL's 65535 parameters (3 per row).
constexpr int kMaxBatchRows = 1000;

// INSERT INTO <quoted_table> (tenant_id, topic, payload) VALUES ($1, $2, $3), ($4, $5, $6), ...
// The parameters are untyped, so the payload takes the column's own type (jsonb, json or text).
std::string insert_sql(const std::string& quoted_table, size_t rows);

// RD_OUTCOME_RETRY for SQLSTATE classes 08 (connection), 40 (rollback, e.g. deadlock),
// 53 (insufficient resources), 57 (operator intervention, e.g. shutdown) and anything unknown;
// RD_OUTCOME_PERMANENT for 22 (data exception), 23 (constraint violation) and 42 (syntax error or
// access rule, e.g. missing table or permission denied).
int32_t classify_sqlstate(std::string_view sqlstate);

// Outcome for a connection that could not be opened, from libpq's message: RD_OUTCOME_RETRY when
// the server answered and refused us as configured (wrong password, no such database or role,
// pg_hba.conf): a real try. RD_OUTCOME_DEFER for everything else: refused or timed-out TCP, a name
// that does not resolve, and a server that is starting up, shutting down, in recovery or out of
// connection slots (the database could not be tried; no attempt is spent).
int32_t classify_connect_error(std::string_view message);

}  // namespace rd::postgresql
