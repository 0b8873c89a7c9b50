// The PostgreSQL dead-letter sink and the dlq admin functions against a real PostgreSQL server
// (initdb into a temp dir, one server per test process).
#include "dead_letter_postgres.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "dlq_admin_postgres.hpp"
#include "test_support.hpp"

// libpqxx 6.4 leaks one PGresult (about 2 KB) each time a query finds its connection dead — seen
// here when the server restarts under a pooled connection; reproduced with a ten-line program
// that only uses libpqxx. Not ours to fix: keep LeakSanitizer quiet about it, and only it.
extern "C" const char* __lsan_default_suppressions() {
  return "leak:libpqxx-6.4.so\n";
}

namespace {

using rd::DeadLetterError;
using rd::DeadLetterRecord;
using rd::PostgresDeadLetterSink;
using rd::PostgresDlqAdmin;
using rdtest::Postgres;

DeadLetterRecord make_record(const std::string& tenant = "tenant-a", int64_t route = 7) {
  DeadLetterRecord r;
  r.tenant_id = tenant;
  r.route_id = route;
  r.topic = tenant + "/dev-7/telemetry";
  r.payload_json = R"({"device_id":"dev-7","temp":21.5})";
  r.destination_type = "webhook";
  r.destination_config_json = R"({"secret":"whsec_c2VjcmV0","url":"https://example.com/hook"})";
  r.error = "HTTP 503 from https://example.com/hook";
  r.attempts = 3;
  static std::atomic<int> seq{41};
  r.message_id = "ROUTES:" + std::to_string(++seq);  // each record is its own JetStream message
  r.subject = "routes." + tenant;
  r.original = rdtest::make_job(tenant, route, "webhook", r.destination_config_json, r.payload_json,
                                r.topic);
  r.job_valid = true;
  r.failed_at_ms = 1790000000123;
  return r;
}

// A login role that gets the application role's privileges, as the platform's API would use.
void create_reader(const Postgres& pg, const std::string& app_role) {
  pg.psql("CREATE ROLE tenant_reader LOGIN PASSWORD 'reader-pw' IN ROLE " + app_role);
}

// Rows of dead_letter_messages visible to `url`'s user with app.tenant_id = tenant.
int visible_rows(const std::string& url, const std::string& tenant) {
  pqxx::connection c(url);
  pqxx::work tx(c);
  tx.exec_params("SELECT set_config('app.tenant_id', $1, true)", tenant);
  return tx.exec("SELECT count(*) FROM dead_letter_messages")[0][0].as<int>();
}

// Everything about the table a migration could change, including object identities and the
// on-disk file (a rewrite changes relfilenode).
std::string schema_snapshot(const Postgres& pg) {
  return pg.psql(R"SQL(
    SELECT string_agg(x, E'\n' ORDER BY x) FROM (
      SELECT 'col ' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' ' ||
             a.attnotnull || ' ' || a.attidentity::text || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
        FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
       WHERE a.attrelid = 'dead_letter_messages'::regclass AND a.attnum > 0 AND NOT a.attisdropped
      UNION ALL
      SELECT 'idx ' || i.indexrelid || ' ' || pg_get_indexdef(i.indexrelid)
        FROM pg_index i WHERE i.indrelid = 'dead_letter_messages'::regclass
      UNION ALL
      SELECT 'con ' || oid || ' ' || conname FROM pg_constraint
       WHERE conrelid = 'dead_letter_messages'::regclass
      UNION ALL
      SELECT 'pol ' || oid || ' ' || polname || ' ' || pg_get_expr(polqual, polrelid)
        FROM pg_policy WHERE polrelid = 'dead_letter_messages'::regclass
      UNION ALL
      SELECT 'rel ' || oid || ' ' || relfilenode || ' ' || relrowsecurity || ' ' ||
             relforcerowsecurity || ' ' || coalesce(relacl::text, '')
        FROM pg_class WHERE oid = 'dead_letter_messages'::regclass
      UNION ALL
      SELECT 'seq ' || oid || ' ' || relname || ' ' || coalesce(relacl::text, '')
        FROM pg_class WHERE relkind = 'S'
      UNION ALL
      SELECT 'role ' || rolname FROM pg_roles WHERE rolname NOT LIKE 'pg\_%'
      UNION ALL
      SELECT 'row ' || id || ' ' || xmin::text FROM dead_letter_messages
    ) t(x))SQL");
}

TEST(DeadLetterSchema, MigrationAppliedTwiceIsANoOp) {
  Postgres pg;
  PostgresDeadLetterSink sink(pg.url(), "pulse_app", 2);
  sink.migrate();
  sink.write(make_record());
  const std::string first = schema_snapshot(pg);
  ASSERT_NE(first.find("pol "), std::string::npos) << first;
  ASSERT_NE(first.find("row "), std::string::npos) << first;

  sink.migrate();
  PostgresDeadLetterSink(pg.url(), "pulse_app", 1).migrate();  // a second daemon starting
  EXPECT_EQ(schema_snapshot(pg), first);
  EXPECT_EQ(pg.psql("SELECT count(*) FROM dead_letter_messages"), "1");
}

TEST(DeadLetterSchema, ShapeRlsAndGrants) {
  Postgres pg;
  PostgresDeadLetterSink(pg.url(), "pulse_app", 1).migrate();
  EXPECT_EQ(pg.psql("SELECT relrowsecurity, relforcerowsecurity FROM pg_class "
                    "WHERE oid = 'dead_letter_messages'::regclass"),
            "t|t");
  EXPECT_EQ(pg.psql("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'pulse_app'"), "f");
  EXPECT_EQ(pg.psql("SELECT has_table_privilege('pulse_app', 'dead_letter_messages', 'INSERT'), "
                    "has_table_privilege('pulse_app', 'dead_letter_messages', 'SELECT'), "
                    "has_table_privilege('pulse_app', 'dead_letter_messages', 'DELETE')"),
            "t|t|f");
  const std::string cols = pg.psql(
      "SELECT string_agg(column_name, ',' ORDER BY column_name) FROM information_schema.columns "
      "WHERE table_name = 'dead_letter_messages'");
  for (const char* c : {"id", "tenant_id", "route_id", "original_topic", "payload",
                        "destination_type", "destination_config", "error_message", "attempts",
                        "message_id", "created_at", "replayed_at", "original_job"}) {
    EXPECT_NE(("," + cols + ",").find(std::string(",") + c + ","), std::string::npos) << c;
  }
  // The tenant listing index leads with tenant_id, newest first.
  EXPECT_NE(pg.psql("SELECT indexdef FROM pg_indexes WHERE tablename = 'dead_letter_messages'")
                .find("(tenant_id, created_at DESC"),
            std::string::npos);
}

TEST(DeadLetterSchema, UpgradesPythonEraTableInPlaceKeepingRows) {
  Postgres pg;
  pg.psql(R"SQL(
    CREATE TABLE dead_letter_messages (
      tenant_id varchar(64) NOT NULL, route_id integer, original_topic text, payload jsonb,
      destination_type text, destination_config jsonb, error_message text);
    INSERT INTO dead_letter_messages VALUES
      ('tenant-a', 5, 'tenant-a/dev-1/telemetry', '{"temp": 1}', 'webhook',
       '{"url": "https://a.example/hook"}', 'Webhook returned HTTP 500'),
      ('tenant-b', 6, 'tenant-b/dev-2/telemetry', '{"temp": 2}', 'mqtt_republish',
       '{"topic": "x"}', 'MQTT client not available for republish');
  )SQL");
  const std::string oid = pg.psql("SELECT 'dead_letter_messages'::regclass::oid");

  PostgresDeadLetterSink sink(pg.url(), "pulse_app", 1);
  sink.migrate();
  EXPECT_EQ(pg.psql("SELECT 'dead_letter_messages'::regclass::oid"), oid) << "table was recreated";
  EXPECT_EQ(pg.psql("SELECT tenant_id || ':' || route_id || ':' || error_message || ':' || "
                    "(id IS NOT NULL) || ':' || attempts || ':' || (replayed_at IS NULL) "
                    "FROM dead_letter_messages ORDER BY tenant_id"),
            "tenant-a:5:Webhook returned HTTP 500:true:0:true\n"
            "tenant-b:6:MQTT client not available for republish:true:0:true");
  EXPECT_EQ(pg.psql("SELECT relforcerowsecurity FROM pg_class WHERE oid = " + oid), "t");

  // The upgraded table takes new rows and its old rows are listed and replayable.
  const int64_t id = sink.insert(make_record("tenant-a"));
  EXPECT_GT(id, 2);
  PostgresDlqAdmin admin(pg.url());
  const auto rows = admin.list(std::string("tenant-a"), 10);
  ASSERT_EQ(rows.size(), 2u);
  const auto& old = rows[1];  // created at migration time, before the new row
  EXPECT_EQ(old.record.route_id, 5);
  EXPECT_EQ(old.record.error, "Webhook returned HTTP 500");
  const auto job = nlohmann::json::parse(old.record.original);
  EXPECT_EQ(job["tenant_id"], "tenant-a");
  EXPECT_EQ(job["route"]["id"], 5);
  EXPECT_EQ(job["route"]["destination_type"], "webhook");
  EXPECT_EQ(job["route"]["destination_config"]["url"], "https://a.example/hook");
  EXPECT_EQ(job["topic"], "tenant-a/dev-1/telemetry");
  EXPECT_EQ(job["payload"]["temp"], 1);

  // Applying it again after the upgrade changes nothing.
  const std::string snap = schema_snapshot(pg);
  sink.migrate();
  EXPECT_EQ(schema_snapshot(pg), snap);
}

TEST(PostgresDeadLetterSink, WriteStoresExactlyOneRowWithEveryField) {
  Postgres pg;
  PostgresDeadLetterSink sink(pg.url(), "pulse_app", 2);
  sink.migrate();
  const DeadLetterRecord rec = make_record();
  sink.write(rec);

  EXPECT_EQ(pg.psql("SELECT count(*) FROM dead_letter_messages"), "1");
  const auto row = nlohmann::json::parse(
      pg.psql("SELECT row_to_json(d) FROM (SELECT tenant_id, route_id, original_topic, payload, "
              "destination_type, destination_config, error_message, attempts, message_id, subject, "
              "convert_from(original_job, 'UTF8') AS original_job, job_valid, "
              "(extract(epoch FROM failed_at) * 1000)::bigint AS failed_at_ms, "
              "created_at > now() - interval '1 minute' AS recent, replayed_at "
              "FROM dead_letter_messages) d"));
  EXPECT_EQ(row["tenant_id"], "tenant-a");
  EXPECT_EQ(row["route_id"], 7);
  EXPECT_EQ(row["original_topic"], "tenant-a/dev-7/telemetry");
  EXPECT_EQ(row["payload"], nlohmann::json::parse(rec.payload_json));
  EXPECT_EQ(row["destination_type"], "webhook");
  EXPECT_EQ(row["destination_config"], nlohmann::json::parse(rec.destination_config_json));
  EXPECT_EQ(row["error_message"], rec.error);
  EXPECT_EQ(row["attempts"], 3);
  EXPECT_EQ(row["message_id"], rec.message_id);
  EXPECT_EQ(row["subject"], "routes.tenant-a");
  EXPECT_EQ(row["original_job"], rec.original);
  EXPECT_EQ(row["job_valid"], true);
  EXPECT_EQ(row["failed_at_ms"], 1790000000123);
  EXPECT_EQ(row["recent"], true);
  EXPECT_TRUE(row["replayed_at"].is_null());

  std::string detail;
  EXPECT_TRUE(sink.healthy(detail)) << detail;
}

// A job redelivered after its row was written (the host's term was lost) must not get a second row;
// a different job that reuses the message id (a recreated stream restarts sequences) must.
TEST(PostgresDeadLetterSink, RedeliveredJobGetsNoSecondRow) {
  Postgres pg;
  PostgresDeadLetterSink sink(pg.url(), "pulse_app", 1);
  sink.migrate();
  DeadLetterRecord r = make_record();
  const int64_t first = sink.insert(r);
  r.attempts = 2;
  r.error = "scripted permanent failure at attempt 2";
  EXPECT_EQ(sink.insert(r), first);
  EXPECT_EQ(pg.psql("SELECT count(*) || ':' || min(attempts) FROM dead_letter_messages"), "1:3");

  DeadLetterRecord other = make_record("tenant-a", 99);  // same message id, another job
  other.message_id = r.message_id;
  EXPECT_NE(sink.insert(other), first);
  EXPECT_EQ(pg.psql("SELECT count(*) FROM dead_letter_messages"), "2");
}

TEST(PostgresDeadLetterSink, UnparsableJobIsStoredWithItsRawBytes) {
  Postgres pg;
  PostgresDeadLetterSink sink(pg.url(), "pulse_app", 1);
  sink.migrate();
  DeadLetterRecord r;
  r.tenant_id = "tenant-a";
  r.payload_json = "null";
  r.destination_config_json = "{}";
  r.error = std::string("job is not JSON: ") + std::string(3000, 'x');
  r.original = std::string("\xff\xfe not json \0 at all", 20);
  r.subject = "routes.tenant-a";
  r.attempts = 1;
  const int64_t id = sink.insert(r);

  EXPECT_EQ(pg.psql("SELECT (route_id IS NULL) || ':' || payload::text || ':' || job_valid || ':' "
                    "|| length(error_message) || ':' || encode(original_job, 'hex') "
                    "FROM dead_letter_messages WHERE id = " +
                    std::to_string(id)),
            "true:null:false:2000:fffe206e6f74206a736f6e200020617420616c6c");
  PostgresDlqAdmin admin(pg.url());
  const auto rows = admin.list(std::string("tenant-a"), 5);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].record.original, r.original);
  EXPECT_FALSE(rows[0].record.job_valid);
}

TEST(PostgresDeadLetterSink, PayloadThatJsonbRefusesIsStillStored) {
  Postgres pg;
  PostgresDeadLetterSink sink(pg.url(), "pulse_app", 1);
  sink.migrate();
  DeadLetterRecord r = make_record();
  r.payload_json = R"({"text":"nul \u0000 inside"})";  // valid JSON, but not storable as jsonb
  r.tenant_id = "tenant-\xff";                         // invalid UTF-8 must not block the write
  EXPECT_NO_THROW(sink.write(r));
  EXPECT_EQ(pg.psql("SELECT jsonb_typeof(payload) || ':' || (payload #>> '{}') || ':' || "
                    "tenant_id FROM dead_letter_messages"),
            std::string(R"(string:{"text":"nul \u0000 inside"}:tenant-)") + "\xEF\xBF\xBD");
}

TEST(PostgresDeadLetterSink, RowIsVisibleOnlyUnderItsTenantForTheApplicationRole) {
  Postgres pg;
  PostgresDeadLetterSink sink(pg.url(), "pulse_app", 2);
  sink.migrate();
  sink.write(make_record("tenant-a"));
  create_reader(pg, "pulse_app");
  const std::string reader = pg.url_as("tenant_reader", "reader-pw");

  EXPECT_EQ(visible_rows(reader, "tenant-b"), 0);
  EXPECT_EQ(visible_rows(reader, ""), 0);
  EXPECT_EQ(visible_rows(reader, "tenant-a"), 1);
  {
    pqxx::connection c(reader);  // no tenant context at all
    pqxx::work tx(c);
    EXPECT_EQ(tx.exec("SELECT count(*) FROM dead_letter_messages")[0][0].as<int>(), 0);
  }
  // And the application role cannot write into another tenant's context.
  pqxx::connection c(reader);
  pqxx::work tx(c);
  tx.exec("SELECT set_config('app.tenant_id', 'tenant-b', true)");
  EXPECT_THROW(tx.exec("INSERT INTO dead_letter_messages (tenant_id) VALUES ('tenant-a')"),
               pqxx::sql_error);
}

TEST(PostgresDeadLetterSink, WritesAsTheConfiguredRole) {
  Postgres pg;
  PostgresDeadLetterSink sink(pg.url(), "pulse_app", 1);
  sink.migrate();
  // The sink connects as a superuser: only SET LOCAL ROLE makes this revoke bite.
  pg.psql("REVOKE INSERT ON dead_letter_messages FROM pulse_app");
  try {
    sink.write(make_record());
    FAIL() << "write succeeded without the role's INSERT privilege";
  } catch (const DeadLetterError& e) {
    EXPECT_NE(std::string(e.what()).find("42501"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("whsec_"), std::string::npos) << e.what();
  }
  std::string detail;
  EXPECT_FALSE(sink.healthy(detail));
  EXPECT_NE(detail.find("42501"), std::string::npos) << detail;
}

// The deployment the platform runs: a non-superuser that owns the database, an NOLOGIN
// application role created by the migration, forced RLS binding the owner too.
TEST(PostgresDeadLetterSink, NonSuperuserOwnerWithCreatedApplicationRole) {
  Postgres pg;
  pg.psql("CREATE ROLE iot LOGIN PASSWORD 'iot-pw' CREATEROLE");
  pg.psql("CREATE DATABASE iotcloud OWNER iot");
  const std::string url = pg.url_as("iot", "iot-pw", "iotcloud");
  PostgresDeadLetterSink sink(url, "pulse_app", 2);
  sink.migrate();
  sink.write(make_record("tenant-a"));
  sink.write(make_record("tenant-b"));
  EXPECT_EQ(pg.psql("SELECT count(*) FROM dead_letter_messages", "iotcloud"), "2");

  PostgresDlqAdmin admin(url);
  // Bound by RLS: every admin call needs a tenant.
  EXPECT_THROW(admin.list(std::nullopt, 10), rd::DlqAdminError);
  const auto rows = admin.list(std::string("tenant-b"), 10);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].record.tenant_id, "tenant-b");
  // Replaying marks the row under the same tenant context.
  rd::DlqSelection sel;
  sel.id = rows[0].id;
  sel.tenant = "tenant-b";
  int published = 0;
  const auto report = admin.replay(sel, false, [&](const rd::DeadLetterEntry&) { ++published; });
  EXPECT_EQ(published, 1);
  ASSERT_EQ(report.replayed.size(), 1u);
  EXPECT_TRUE(report.replayed[0].replayed_at_ms);
  EXPECT_EQ(pg.psql("SELECT count(*) FROM dead_letter_messages WHERE replayed_at IS NOT NULL",
                    "iotcloud"),
            "1");
}

TEST(PostgresDeadLetterSink, DatabaseDownThrowsAndPoolReconnectsAfterRestart) {
  Postgres pg;
  PostgresDeadLetterSink sink(pg.url(), "pulse_app", 2);
  sink.migrate();
  sink.write(make_record());  // leaves a pooled connection that the restart will break

  pg.stop();
  EXPECT_THROW(sink.write(make_record()), DeadLetterError);
  EXPECT_THROW(sink.write(make_record()), DeadLetterError);
  std::string detail;
  EXPECT_FALSE(sink.healthy(detail));
  EXPECT_NE(detail.find("connect"), std::string::npos) << detail;

  pg.start();
  EXPECT_NO_THROW(sink.write(make_record()));
  EXPECT_TRUE(sink.healthy(detail)) << detail;
  EXPECT_EQ(pg.psql("SELECT count(*) FROM dead_letter_messages"), "2");

  // A restart while a connection sits idle in the pool: the next write still succeeds.
  pg.stop();
  pg.start();
  EXPECT_NO_THROW(sink.write(make_record()));
  EXPECT_EQ(pg.psql("SELECT count(*) FROM dead_letter_messages"), "3");
}

TEST(PostgresDeadLetterSink, ConcurrentWritersShareTheSmallPool) {
  Postgres pg;
  PostgresDeadLetterSink sink(pg.url(), "pulse_app", 2);
  sink.migrate();
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        try {
          sink.write(make_record("tenant-" + std::to_string(t % 3), i));
        } catch (const std::exception&) {
          ++failures;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(pg.psql("SELECT count(*) FROM dead_letter_messages"), "120");
  // Never more than pool_size connections from the sink.
  EXPECT_LE(std::stoi(pg.psql(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'route-delivery'")),
            2);
}

TEST(PostgresDeadLetterSink, BadUrlFailsWritesWithoutEchoingIt) {
  for (const std::string url : {"postgresql://iot:s3cr3t-pw@127.0.0.1:notaport/db",
                                "postgresql://iot:s3cr3t-pw@127.0.0.1/db?bogus=s3cr3t-pw",
                                "host=127.0.0.1 password=s3cr3t-pw port=x"}) {
    PostgresDeadLetterSink sink(url, "", 1);
    try {
      sink.write(make_record());
      FAIL() << "write succeeded with " << url;
    } catch (const DeadLetterError& e) {
      EXPECT_EQ(std::string(e.what()).find("s3cr3t-pw"), std::string::npos) << e.what();
    }
  }
}

TEST(PostgresDeadLetterSink, ConnectionErrorsNeverShowThePassword) {
  Postgres pg;
  pg.psql("CREATE ROLE iot LOGIN PASSWORD 'right-pw'");
  // The test server trusts every password: a missing database forces the connection error.
  PostgresDeadLetterSink sink(pg.url_as("iot", "wrong-pw-xyz", "nodb"), "", 1);
  try {
    sink.write(make_record());
    FAIL() << "write succeeded";
  } catch (const DeadLetterError& e) {
    EXPECT_NE(std::string(e.what()).find("nodb"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("wrong-pw-xyz"), std::string::npos) << e.what();
  }
}

// ---- the write check (health that tells the truth) ---------------------------------------------

// Unproven until it has written or checked; the check runs the write transaction and keeps
// nothing.
TEST(PostgresDeadLetterSinkCheck, ProvesItCanWriteAndStoresNothing) {
  Postgres pg;
  PostgresDeadLetterSink sink(pg.url(), "pulse_app", 1);
  std::string detail;
  EXPECT_FALSE(sink.healthy(detail)) << "healthy before anything was tried";
  EXPECT_NE(detail.find("not checked yet"), std::string::npos) << detail;
  EXPECT_THROW(sink.check(), DeadLetterError);  // no table yet
  EXPECT_FALSE(sink.healthy(detail));
  EXPECT_NE(detail.find("route-delivery migrate"), std::string::npos) << detail;
  sink.migrate();
  EXPECT_NO_THROW(sink.check());
  EXPECT_TRUE(sink.healthy(detail)) << detail;
  EXPECT_EQ(pg.psql("SELECT count(*) FROM dead_letter_messages"), "0");
}

// The deployment mistake the compose file used to hide: the login user was never granted the
// application role. The reason names the statement that fixes it.
TEST(PostgresDeadLetterSinkCheck, MissingRoleGrantIsNamedWithTheGrant) {
  Postgres pg;
  PostgresDeadLetterSink owner(pg.url(), "pulse_app", 1);
  owner.migrate();  // creates pulse_app and grants it the table
  pg.psql("CREATE ROLE iot LOGIN PASSWORD 'iot-pw'");
  PostgresDeadLetterSink sink(pg.url_as("iot", "iot-pw"), "pulse_app", 1);
  try {
    sink.check();
    FAIL() << "check passed without the grant";
  } catch (const DeadLetterError& e) {
    EXPECT_NE(std::string(e.what()).find("permission denied to set role \"pulse_app\""),
              std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("GRANT pulse_app TO iot"), std::string::npos) << e.what();
  }
  std::string detail;
  EXPECT_FALSE(sink.healthy(detail));
  EXPECT_NE(detail.find("GRANT pulse_app TO iot"), std::string::npos) << detail;
  EXPECT_THROW(sink.write(make_record()), DeadLetterError);

  pg.psql("GRANT pulse_app TO iot");
  EXPECT_NO_THROW(sink.check());
  EXPECT_TRUE(sink.healthy(detail)) << detail;
}

// The test server trusts every connection; here password authentication is switched on for
// every user but the superuser psql runs as, so a wrong password really is refused.
TEST(PostgresDeadLetterSinkCheck, WrongPasswordIsNamedWithoutShowingIt) {
  Postgres pg;
  pg.psql("CREATE ROLE iot LOGIN PASSWORD 'right-pw'");
  const std::string hba = pg.psql("SHOW hba_file");
  pg.psql(
      "COPY (SELECT unnest(ARRAY['local all all trust', "
      "'host all postgres 127.0.0.1/32 trust', "
      "'host all all 127.0.0.1/32 scram-sha-256'])) TO '" +
      hba + "'");
  pg.psql("SELECT pg_reload_conf()");
  PostgresDeadLetterSink sink(pg.url_as("iot", "wrong-pw-xyz"), "", 1);
  try {
    sink.check();
    FAIL() << "check passed with a wrong password";
  } catch (const DeadLetterError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("password authentication failed for user \"iot\""), std::string::npos)
        << what;
    EXPECT_NE(what.find("check DATABASE_URL or PG_PASS"), std::string::npos) << what;
    EXPECT_EQ(what.find("wrong-pw-xyz"), std::string::npos) << what;
  }
  PostgresDeadLetterSink right(pg.url_as("iot", "right-pw"), "", 1);
  EXPECT_THROW(right.check(), DeadLetterError);  // authenticated; no table is the next problem
  std::string detail;
  right.healthy(detail);
  EXPECT_EQ(detail.find("password"), std::string::npos) << detail;
}

// ---- dlq admin ------------------------------------------------------------------------------

class DlqAdmin : public ::testing::Test {
 protected:
  void SetUp() override {
    sink_ = std::make_unique<PostgresDeadLetterSink>(pg_.url(), "pulse_app", 1);
    sink_->migrate();
  }
  int64_t add(const std::string& tenant, int64_t route, const std::string& message_id) {
    DeadLetterRecord r = make_record(tenant, route);
    r.message_id = message_id;
    return sink_->insert(r);
  }
  Postgres pg_;
  std::unique_ptr<PostgresDeadLetterSink> sink_;
};

TEST_F(DlqAdmin, ListsNewestFirstPerTenantWithLimit) {
  const int64_t a1 = add("tenant-a", 1, "ROUTES:1");
  add("tenant-b", 2, "ROUTES:2");
  const int64_t a3 = add("tenant-a", 3, "ROUTES:3");
  const int64_t a4 = add("tenant-a", 4, "ROUTES:4");
  PostgresDlqAdmin admin(pg_.url());

  const auto a = admin.list(std::string("tenant-a"), 2);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].id, a4);
  EXPECT_EQ(a[1].id, a3);
  EXPECT_EQ(a[0].record.message_id, "ROUTES:4");
  EXPECT_EQ(a[0].record.destination_type, "webhook");
  EXPECT_GT(a[0].created_at_ms, 0);
  EXPECT_FALSE(a[0].replayed_at_ms);

  const auto all = admin.list(std::nullopt, 100);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all.back().id, a1);
  EXPECT_TRUE(admin.list(std::string("tenant-zzz"), 10).empty());
}

TEST_F(DlqAdmin, ReplayByIdPublishesOriginalOnceAndRefusesSecond) {
  const int64_t id = add("tenant-a", 1, "ROUTES:1");
  add("tenant-a", 2, "ROUTES:2");
  PostgresDlqAdmin admin(pg_.url());
  std::vector<rd::DeadLetterEntry> published;
  auto publish = [&](const rd::DeadLetterEntry& e) { published.push_back(e); };

  rd::DlqSelection sel;
  sel.id = id;
  const auto report = admin.replay(sel, false, publish);
  ASSERT_EQ(report.replayed.size(), 1u);
  ASSERT_EQ(published.size(), 1u);
  EXPECT_EQ(published[0].id, id);
  EXPECT_EQ(published[0].record.original, make_record("tenant-a", 1).original);
  EXPECT_EQ(published[0].record.tenant_id, "tenant-a");
  EXPECT_TRUE(report.replayed[0].replayed_at_ms);
  EXPECT_EQ(pg_.psql("SELECT id FROM dead_letter_messages WHERE replayed_at IS NOT NULL"),
            std::to_string(id));

  EXPECT_THROW(admin.replay(sel, false, publish), rd::DlqAlreadyReplayed);
  EXPECT_EQ(published.size(), 1u);

  EXPECT_EQ(admin.replay(sel, true, publish).replayed.size(), 1u);  // --force
  EXPECT_EQ(published.size(), 2u);

  sel.id = 99999;
  EXPECT_THROW(admin.replay(sel, false, publish), rd::DlqAdminError);
}

TEST_F(DlqAdmin, ReplayByTenantRouteAndSinceSkipsReplayedRows) {
  add("tenant-a", 1, "ROUTES:1");
  const int64_t r2 = add("tenant-a", 2, "ROUTES:2");
  add("tenant-b", 2, "ROUTES:3");
  pg_.psql("UPDATE dead_letter_messages SET created_at = now() - interval '2 days'");
  const int64_t r2_new = add("tenant-a", 2, "ROUTES:4");
  PostgresDlqAdmin admin(pg_.url());
  std::vector<int64_t> published;
  auto publish = [&](const rd::DeadLetterEntry& e) { published.push_back(e.id); };

  rd::DlqSelection sel;
  sel.tenant = "tenant-a";
  sel.route_id = 2;
  auto report = admin.replay(sel, false, publish);
  EXPECT_EQ(published, (std::vector<int64_t>{r2, r2_new}));  // oldest first
  EXPECT_TRUE(report.skipped.empty());

  published.clear();
  report = admin.replay(sel, false, publish);  // the second replay: nothing left to do
  EXPECT_TRUE(published.empty());
  EXPECT_TRUE(report.replayed.empty());
  EXPECT_EQ(report.skipped.size(), 2u);

  // --since: only rows created after the time.
  sel.route_id.reset();
  sel.since_ms = (std::chrono::system_clock::now() - std::chrono::hours(1)).time_since_epoch() /
                 std::chrono::milliseconds(1);
  report = admin.replay(sel, true, publish);
  EXPECT_EQ(published, (std::vector<int64_t>{r2_new}));
}

TEST_F(DlqAdmin, InvalidJobsAreNeverRepublished) {
  DeadLetterRecord bad;
  bad.tenant_id = "tenant-a";
  bad.payload_json = "null";
  bad.original = "not json";
  bad.job_valid = false;
  bad.error = "job is not JSON";
  bad.message_id = "ROUTES:900";
  const int64_t bad_id = sink_->insert(bad);
  const int64_t good_id = add("tenant-a", 1, "ROUTES:901");
  PostgresDlqAdmin admin(pg_.url());
  std::vector<int64_t> published;
  auto publish = [&](const rd::DeadLetterEntry& e) { published.push_back(e.id); };

  rd::DlqSelection sel;
  sel.tenant = "tenant-a";
  const auto report = admin.replay(sel, false, publish);
  EXPECT_EQ(published, std::vector<int64_t>{good_id});
  ASSERT_EQ(report.invalid.size(), 1u);
  EXPECT_EQ(report.invalid[0].id, bad_id);

  rd::DlqSelection by_id;
  by_id.id = bad_id;
  EXPECT_THROW(admin.replay(by_id, true, publish), rd::DlqAdminError);
  EXPECT_EQ(published.size(), 1u);
}

TEST_F(DlqAdmin, FailedPublishLeavesRowReplayable) {
  const int64_t id = add("tenant-a", 1, "ROUTES:1");
  PostgresDlqAdmin admin(pg_.url());
  rd::DlqSelection sel;
  sel.id = id;
  EXPECT_THROW(admin.replay(sel, false,
                            [](const rd::DeadLetterEntry&) {
                              throw std::runtime_error("nats: no responders");
                            }),
               rd::DlqAdminError);
  EXPECT_EQ(pg_.psql("SELECT count(*) FROM dead_letter_messages WHERE replayed_at IS NULL"), "1");
  int calls = 0;
  admin.replay(sel, false, [&](const rd::DeadLetterEntry&) { ++calls; });
  EXPECT_EQ(calls, 1);
}

TEST_F(DlqAdmin, ReplayNeedsIdOrTenant) {
  PostgresDlqAdmin admin(pg_.url());
  EXPECT_THROW(admin.select_for_replay(rd::DlqSelection{}, false), rd::DlqAdminError);
}

TEST(DlqAdminConnect, UnreachableDatabaseIsAClearError) {
  const int port = rdtest::free_port();
  try {
    PostgresDlqAdmin admin("postgresql://iot:pw-hidden@127.0.0.1:" + std::to_string(port) + "/x");
    FAIL();
  } catch (const rd::DlqAdminError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot connect"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("pw-hidden"), std::string::npos) << e.what();
  }
}

}  // namespace
