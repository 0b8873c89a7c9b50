// Internal to the PostgreSQL dead-letter code: a libpqxx connection that prints no notices, and a
// small blocking pool of them that drops broken connections (the next lease opens a fresh one).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <pqxx/pqxx>
#include <string>
#include <utility>
#include <vector>

namespace rd::pgdl {

// The error's SQLSTATE. libpqxx 6.4 leaves it empty for some errors it maps to its own exception
// classes (insufficient_privilege): fill it in from the class.
inline std::string sqlstate_of(const pqxx::sql_error& e) {
  if (!e.sqlstate().empty()) return e.sqlstate();
  if (dynamic_cast<const pqxx::insufficient_privilege*>(&e) != nullptr) return "42501";
  if (dynamic_cast<const pqxx::undefined_table*>(&e) != nullptr) return "42P01";
  if (dynamic_cast<const pqxx::syntax_error*>(&e) != nullptr) return "42601";
  if (dynamic_cast<const pqxx::integrity_constraint_violation*>(&e) != nullptr) return "23000";
  if (dynamic_cast<const pqxx::data_exception*>(&e) != nullptr) return "22000";
  if (dynamic_cast<const pqxx::insufficient_resources*>(&e) != nullptr) return "53000";
  return "";
}

struct PooledConnection {
  // Connects at once; throws pqxx::broken_connection when the database cannot be reached.
  explicit PooledConnection(const std::string& conninfo) : conn(conninfo), quiet(conn) {}
  pqxx::connection conn;
  pqxx::quiet_errorhandler quiet;  // notices would otherwise go to stderr
};

class ConnectionPool {
 public:
  // A connection on loan; goes back to the pool on destruction only if keep() was called and it
  // is still open, else it is closed and its slot freed.
  class Lease {
   public:
    Lease(ConnectionPool* pool, std::unique_ptr<PooledConnection> conn, bool reused)
        : pool_(pool), conn_(std::move(conn)), reused_(reused) {}
    Lease(Lease&& other) noexcept
        : pool_(other.pool_),
          conn_(std::move(other.conn_)),
          reused_(other.reused_),
          keep_(other.keep_) {}
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    pqxx::connection& conn() { return conn_->conn; }
    bool reused() const { return reused_; }  // came from the idle list (may have died meanwhile)
    void keep() { keep_ = true; }

   private:
    ConnectionPool* pool_;
    std::unique_ptr<PooledConnection> conn_;
    bool reused_;
    bool keep_ = false;
  };

  ConnectionPool(std::string conninfo, size_t size);
  ~ConnectionPool();
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  // An idle connection, or a new one while fewer than `size` are open; waits up to `wait` for one
  // to come back (then throws DeadLetterError). Connecting throws pqxx::broken_connection.
  Lease acquire(std::chrono::milliseconds wait);

 private:
  void release(std::unique_ptr<PooledConnection> conn, bool keep);

  const std::string conninfo_;
  const size_t size_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<PooledConnection>> idle_;
  size_t open_ = 0;
};

}  // namespace rd::pgdl
