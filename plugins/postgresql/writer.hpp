// postgresql's delivery: inserts each job's (tenant_id, topic, payload) into the table named by
// the route's config.table, under the tenant's row-level-security context; without config.table
// the job is ok at once with no write (ingest already stored the message).
//
// Flow: xDeliver checks the route config (bad table name = permanent; table_name.hpp) and queues
// the job; writer threads (one connection each, `pool_size` of them) take up to `batch_max` queued
// jobs at a time, group them by table and tenant, and write each group in one transaction:
//   BEGIN; SET LOCAL statement_timeout ...; SET LOCAL ROLE <role>;
//   SELECT set_config('app.tenant_id', $tenant, true);
//   INSERT INTO <table> (tenant_id, topic, payload) VALUES ($1, $2, $3), ($4, $5, $6), ...; COMMIT;
// so concurrent jobs become multi-row inserts (batch.hpp). A permanent error in a group of several
// is retried row by row, so one bad row does not fail its neighbours.
//
// A database that cannot be reached (no connection can be opened, or the connection drops before
// the INSERT is sent) is DEFER: nothing was tried, no attempt is spent. Once the INSERT was sent,
// a failure is a real try and keeps its SQLSTATE classification (RETRY or PERMANENT).
#pragma once

#include <route_delivery/plugin.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace rd::postgresql {

// The plugin instance, in the shape rd::PluginAdapter expects (postgresql_plugin.cpp).
class Writer {
 public:
  // Parses plugins.postgresql (config.hpp; DATABASE_URL when url is empty) and starts the writer
  // threads, which connect at once. Throws rd::ConfigKeyError naming a bad key.
  // xValidate: the config checks of create() (the URL parsed by libpq), connecting nowhere.
  static void validate(const char* config_json);
  static std::unique_ptr<Writer> create(const rd_host_services* services, const char* config_json);
  ~Writer();  // stops and joins the writer threads
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // xDeliver: validates the route's config.table and queues the job (never blocks on the database).
  void deliver(uint64_t id, const rd_job& job);
  // xDestination: "postgresql://host:port/dbname", one key for every job (0 when not configured).
  size_t destination(const rd_job& job, char* key, size_t key_len);
  // xHealth: connected, or the last connection error.
  bool health(std::string& detail);

 private:
  class Impl;
  explicit Writer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rd::postgresql
