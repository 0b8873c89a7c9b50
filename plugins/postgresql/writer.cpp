// Writer (writer.hpp): the job queue, the writer threads with one connection each, and the
// batched insert transactions. Lock order: mu_ (the queue) and status_mu_ (health) are never held
// together; completions to the host run with neither held.
#include "writer.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <pqxx/pqxx>
#include <route_delivery/plugin.hpp>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "batch.hpp"
#include "config.hpp"
#include "pg_support.hpp"
#include "table_name.hpp"

namespace rd::postgresql {
namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kReconnectPause = std::chrono::seconds(1);

struct Job {
  uint64_t id = 0;
  std::string table;  // quoted
  std::string tenant;
  std::string topic;
  std::string payload;
};

struct Outcome {
  int32_t code = RD_OUTCOME_OK;
  std::string reason;
};

int32_t counter_for(int32_t code, int32_t ok, int32_t retry, int32_t permanent, int32_t defer) {
  switch (code) {
    case RD_OUTCOME_OK:
      return ok;
    case RD_OUTCOME_RETRY:
      return retry;
    case RD_OUTCOME_DEFER:
      return defer;
    default:
      return permanent;
  }
}

}  // namespace

class Writer::Impl {
 public:
  Impl(const rd_host_services* services, Settings settings)
      : done_(services), settings_(std::move(settings)) {
    rows_ok_ = register_counter("postgresql_rows_total", "outcome=\"ok\"");
    rows_retry_ = register_counter("postgresql_rows_total", "outcome=\"retry\"");
    rows_permanent_ = register_counter("postgresql_rows_total", "outcome=\"permanent\"");
    rows_defer_ = register_counter("postgresql_rows_total", "outcome=\"defer\"");
    insert_seconds_ =
        services->histogram_register(services->host, "postgresql_insert_duration_seconds", nullptr,
                                     "time of one insert transaction");
    if (!settings_.configured()) {
      done_.log(RD_LOG_WARN,
                "postgresql: no database url (plugins.postgresql.url, POSTGRESQL_PLUGIN_URL or "
                "DATABASE_URL); routes with config.table will be retried until one is set");
      return;
    }
    conninfo_ = connection_string(settings_);
    secrets_ = pg::conninfo_secrets(settings_.url);
    target_ = target_of(settings_.url);
    destination_key_ = "postgresql://" + target_;
    status_ = "connecting";
    for (int i = 0; i < settings_.pool_size; ++i) workers_.emplace_back([this] { run_worker(); });
  }

  ~Impl() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }

  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  void deliver(uint64_t id, const rd_job& job) {
    const std::string_view config(job.destination_config_json, job.destination_config_json_len);
    const std::shared_ptr<const TableName> table = table_for(config);
    if (table == nullptr) return done_.ok(id);  // no config.table: nothing to write
    if (!table->error.empty()) return done_.permanent(id, table->error);
    if (!settings_.configured()) {
      return done_.retry(id,
                         "postgresql plugin has no database url: set plugins.postgresql.url "
                         "(POSTGRESQL_PLUGIN_URL) or DATABASE_URL");
    }
    Job j;
    j.id = id;
    j.table = table->quoted;
    j.tenant.assign(job.tenant_id, job.tenant_id_len);
    j.topic.assign(job.topic, job.topic_len);
    j.payload.assign(job.payload_json, job.payload_json_len);
    // Parameters travel as C strings: a NUL would silently cut the tenant (and so change it).
    for (const std::string* s : {&j.tenant, &j.topic, &j.payload}) {
      if (s->find('\0') != std::string::npos) {
        return done_.permanent(id, "tenant_id, topic or payload contains a NUL byte");
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!stop_) {
        queue_.push_back(std::move(j));
        cv_.notify_one();
        return;
      }
    }
    done_.retry(id, "postgresql plugin is shutting down");
  }

  // Every job of this instance goes to the one configured database: one key, one breaker.
  size_t destination(const rd_job&, char* key, size_t key_len) {
    if (destination_key_.empty()) return 0;
    const size_t n = std::min(key_len, destination_key_.size());
    std::memcpy(key, destination_key_.data(), n);
    return n;
  }

  bool health(std::string& detail) {
    if (!settings_.configured()) {
      detail =
          "no database url: set plugins.postgresql.url (POSTGRESQL_PLUGIN_URL) or DATABASE_URL";
      return false;
    }
    std::lock_guard<std::mutex> lock(status_mu_);
    detail = status_;
    return healthy_;
  }

 private:
  struct Worker {
    std::unique_ptr<pg::QuietConnection> conn;
    Clock::time_point last_failed_connect{};
    std::string last_connect_error;
    int32_t last_connect_outcome = RD_OUTCOME_DEFER;  // classify_connect_error of that error
  };

  int32_t register_counter(const char* name, const char* labels) {
    const rd_host_services* s = done_.services();
    return s->counter_register(s->host, name, labels, "rows handled, by outcome");
  }

  // The parsed config.table for a destination_config, null when the route has none (or an
  // empty one). Cached: routes repeat.
  std::shared_ptr<const TableName> table_for(std::string_view config_json) {
    return tables_.get(config_json, [](std::string_view text) -> std::shared_ptr<const TableName> {
      const auto config = nlohmann::json::parse(text, nullptr, false);
      if (config.is_discarded() || !config.is_object()) {
        return std::make_shared<const TableName>(
            TableName{"", "destination_config is not a JSON object"});
      }
      const auto t = config.find("table");
      if (t == config.end() || t->is_null()) return nullptr;
      if (!t->is_string()) {
        return std::make_shared<const TableName>(TableName{"", "config.table must be a string"});
      }
      const std::string& name = t->get_ref<const std::string&>();
      if (name.empty()) return nullptr;
      TableName parsed = parse_table_name(name);
      if (!parsed.error.empty()) {
        parsed.error = "config.table \"" + name + "\" is not a valid table name: " + parsed.error;
      }
      return std::make_shared<const TableName>(std::move(parsed));
    });
  }

  void run_worker() {
    Worker w;
    {
      std::string ignored;
      int32_t ignored_outcome = 0;
      connect(w, ignored, ignored_outcome);  // early, so health is right before the first job
    }
    std::vector<Job> batch;
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        // Stopping: the host has already timed out anything still queued.
        if (stop_) return;
        const size_t n = std::min<size_t>(queue_.size(), static_cast<size_t>(settings_.batch_max));
        batch.assign(std::make_move_iterator(queue_.begin()),
                     std::make_move_iterator(queue_.begin() + static_cast<long>(n)));
        queue_.erase(queue_.begin(), queue_.begin() + static_cast<long>(n));
        if (!queue_.empty()) cv_.notify_one();
      }
      run_batch(w, batch);
      batch.clear();
    }
  }

  // Groups by (table, tenant): each group is one transaction under that tenant's context.
  void run_batch(Worker& w, std::vector<Job>& batch) {
    std::map<std::pair<std::string, std::string>, std::vector<const Job*>> groups;
    for (const Job& j : batch) groups[{j.table, j.tenant}].push_back(&j);
    for (auto& [key, group] : groups) {
      const Outcome out = insert(w, group);
      if (out.code == RD_OUTCOME_PERMANENT && group.size() > 1) {
        for (const Job* j : group) finish(*j, insert(w, {j}));
      } else {
        for (const Job* j : group) finish(*j, out);
      }
    }
  }

  void finish(const Job& j, const Outcome& out) {
    const rd_host_services* s = done_.services();
    const int32_t counter =
        counter_for(out.code, rows_ok_, rows_retry_, rows_permanent_, rows_defer_);
    if (counter >= 0) s->counter_add(s->host, counter, 1);
    if (out.code == RD_OUTCOME_DEFER) {
      done_.defer(j.id, out.reason);  // the host's deferral delay grows while it stays down
    } else {
      done_.finish(j.id, out.code, out.reason, -1);
    }
  }

  // On failure `error` is the reason for the jobs and `outcome` DEFER (unreachable) or RETRY (the
  // server refused us, see classify_connect_error).
  bool connect(Worker& w, std::string& error, int32_t& outcome) {
    if (w.last_failed_connect != Clock::time_point{} &&
        Clock::now() - w.last_failed_connect < kReconnectPause) {
      error = w.last_connect_error;  // do not hammer a database that just refused us
      outcome = w.last_connect_outcome;
      return false;
    }
    try {
      w.conn = std::make_unique<pg::QuietConnection>(conninfo_);
      w.last_failed_connect = {};
      set_status(true, "connected");
      return true;
    } catch (const std::exception& e) {
      w.conn.reset();
      w.last_failed_connect = Clock::now();
      const std::string message = pg::short_error(e.what(), secrets_);
      w.last_connect_outcome = classify_connect_error(e.what());
      w.last_connect_error =
          "cannot connect to PostgreSQL " + target_ +
          (w.last_connect_outcome == RD_OUTCOME_DEFER ? " (unreachable): " : " (refused): ") +
          message;
      error = w.last_connect_error;
      outcome = w.last_connect_outcome;
      set_status(false, error);
      return false;
    }
  }

  Outcome insert(Worker& w, const std::vector<const Job*>& rows) {
    bool sent_before = false;  // an earlier pass sent the INSERT and lost its connection
    for (int attempt = 0;; ++attempt) {
      bool fresh = false;
      if (!w.conn) {
        std::string error;
        int32_t outcome = RD_OUTCOME_DEFER;
        if (!connect(w, error, outcome)) return {sent_before ? RD_OUTCOME_RETRY : outcome, error};
        fresh = true;
      }
      const auto started = Clock::now();
      std::string sqlstate;
      std::string message;
      bool connection_lost = false;
      bool insert_sent = false;  // from here on a failure is a real try of these rows
      try {
        pqxx::work tx(w.conn->conn);
        std::string setup =
            "SET LOCAL statement_timeout = " + std::to_string(settings_.statement_timeout_ms);
        if (!settings_.role.empty()) setup += "; SET LOCAL ROLE " + tx.quote_name(settings_.role);
        tx.exec(setup);
        tx.exec_params("SELECT set_config('app.tenant_id', $1, true)", rows.front()->tenant);
        std::vector<const char*> params;
        params.reserve(rows.size() * 3);
        for (const Job* j : rows) {
          params.push_back(j->tenant.c_str());
          params.push_back(j->topic.c_str());
          params.push_back(j->payload.c_str());
        }
        insert_sent = true;
        tx.exec_params(insert_sql(rows.front()->table, rows.size()),
                       pqxx::prepare::make_dynamic_params(params));
        tx.commit();
        observe(started);
        set_status(true, "connected");
        return {RD_OUTCOME_OK, ""};
      } catch (const pqxx::broken_connection& e) {
        connection_lost = true;
        message = "PostgreSQL connection lost: " + pg::short_error(e.what(), secrets_);
      } catch (const pqxx::sql_error& e) {
        sqlstate = pg::sqlstate_of(e);
        message = pg::short_error(e.what(), secrets_);
        connection_lost = sqlstate.rfind("08", 0) == 0 || sqlstate.rfind("57P", 0) == 0;
      } catch (const pqxx::in_doubt_error& e) {
        // The rows may or may not be there; a retry may duplicate them (at-least-once).
        w.conn.reset();
        return {RD_OUTCOME_RETRY, "commit outcome unknown: " + pg::short_error(e.what(), secrets_)};
      } catch (const pqxx::transaction_rollback& e) {
        sqlstate = pg::rollback_sqlstate(e);
        message = pg::short_error(e.what(), secrets_);
      } catch (const std::exception& e) {
        message = pg::short_error(e.what(), secrets_);
      }
      if (w.conn && !w.conn->conn.is_open()) connection_lost = true;
      if (connection_lost) {
        w.conn.reset();
        // A pooled connection that died while idle (database restarted): once more, at once.
        if (!fresh && attempt == 0) {
          sent_before = insert_sent;
          continue;
        }
        set_status(false, message);
        const std::string reason = sqlstate.empty() ? message : sqlstate + " " + message;
        // Lost before the INSERT went out: the rows were never offered to the database.
        if (!insert_sent && !sent_before) {
          return {RD_OUTCOME_DEFER, "PostgreSQL " + target_ +
                                        " unreachable (connection lost before the insert was "
                                        "sent): " +
                                        reason};
        }
        return {RD_OUTCOME_RETRY, reason};
      }
      const int32_t code = sqlstate.empty() ? RD_OUTCOME_RETRY : classify_sqlstate(sqlstate);
      return {code, sqlstate.empty() ? message : sqlstate + " " + message};
    }
  }

  void observe(Clock::time_point started) {
    if (insert_seconds_ < 0) return;
    const rd_host_services* s = done_.services();
    s->histogram_observe(s->host, insert_seconds_,
                         std::chrono::duration<double>(Clock::now() - started).count());
  }

  // Health plus one log line per change (never per job).
  void set_status(bool ok, const std::string& detail) {
    bool changed;
    {
      std::lock_guard<std::mutex> lock(status_mu_);
      if (ok && healthy_) return;
      changed = ok != healthy_ || status_ == "connecting";
      healthy_ = ok;
      status_ = detail;
    }
    if (changed) {
      done_.log(ok ? RD_LOG_INFO : RD_LOG_WARN,
                ok ? "postgresql: connected" : "postgresql: unavailable: " + detail);
    }
  }

  rd::Completer done_;
  const Settings settings_;
  std::string conninfo_;
  std::vector<std::string> secrets_;
  std::string target_;           // "host:port/dbname", no credentials
  std::string destination_key_;  // "postgresql://" + target_; empty when not configured
  int32_t rows_ok_ = -1, rows_retry_ = -1, rows_permanent_ = -1, rows_defer_ = -1,
          insert_seconds_ = -1;

  rd::RouteCache<std::shared_ptr<const TableName>> tables_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  bool stop_ = false;
  std::vector<std::thread> workers_;

  std::mutex status_mu_;
  bool healthy_ = false;
  std::string status_;
};

Writer::Writer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Writer::~Writer() = default;

void Writer::validate(const char* config_json) {
  parse_settings(config_json != nullptr ? config_json : "{}", std::getenv("DATABASE_URL"));
}

std::unique_ptr<Writer> Writer::create(const rd_host_services* services, const char* config_json) {
  return std::unique_ptr<Writer>(new Writer(
      std::make_unique<Impl>(services, parse_settings(config_json, std::getenv("DATABASE_URL")))));
}
void Writer::deliver(uint64_t id, const rd_job& job) {
  impl_->deliver(id, job);
}
size_t Writer::destination(const rd_job& job, char* key, size_t key_len) {
  return impl_->destination(job, key, key_len);
}
bool Writer::health(std::string& detail) {
  return impl_->health(detail);
}

}  // namespace rd::postgresql
