// Internal to the PostgreSQL dead-letter code: a small blocking pool of quiet libpqxx connections
// (pg_support.hpp) that drops broken connections (the next lease opens a fresh one).
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

#include "pg_support.hpp"

namespace rd::pgdl {

class ConnectionPool {
 public:
  // A connection on loan; goes back to the pool on destruction only if keep() was called and it
  // is still open, else it is closed and its slot freed.
  class Lease {
   public:
    Lease(ConnectionPool* pool, std::unique_ptr<pg::QuietConnection> conn, bool reused)
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
    std::unique_ptr<pg::QuietConnection> conn_;
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
  void release(std::unique_ptr<pg::QuietConnection> conn, bool keep);

  const std::string conninfo_;
  const size_t size_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<pg::QuietConnection>> idle_;
  size_t open_ = 0;
};

}  // namespace rd::pgdl
