// Clang thread-safety annotations (-Wthread-safety), and a mutex that carries them. They compile
// to nothing under GCC; the clang build checks that members marked GUARDED_BY(m) are only touched
// with m held and that functions marked REQUIRES(m) are only called with it.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>

#if defined(__clang__)
#define RD_TSA(x) __attribute__((x))
#else
#define RD_TSA(x)
#endif

#define CAPABILITY(x) RD_TSA(capability(x))
#define SCOPED_CAPABILITY RD_TSA(scoped_lockable)
#define GUARDED_BY(x) RD_TSA(guarded_by(x))
#define REQUIRES(...) RD_TSA(requires_capability(__VA_ARGS__))
#define ACQUIRE(...) RD_TSA(acquire_capability(__VA_ARGS__))
#define RELEASE(...) RD_TSA(release_capability(__VA_ARGS__))
#define EXCLUDES(...) RD_TSA(locks_excluded(__VA_ARGS__))
#define NO_THREAD_SAFETY_ANALYSIS RD_TSA(no_thread_safety_analysis)

namespace rd {

// std::mutex with capability annotations; usable with std::condition_variable_any.
// count_in() makes lock() count its acquisitions and those that found the mutex held (a try_lock
// first, which costs what lock() costs when the mutex is free): how often and how contended a
// lock is, in production, without a profiler. (Re-acquisitions inside a condition variable's
// wait are not counted.)
class CAPABILITY("mutex") Mutex {
 public:
  void lock() ACQUIRE() {
    if (acquisitions_ != nullptr) {
      acquisitions_->fetch_add(1, std::memory_order_relaxed);
      if (m_.try_lock()) return;
      waits_->fetch_add(1, std::memory_order_relaxed);
    }
    m_.lock();
  }
  void unlock() RELEASE() { m_.unlock(); }
  bool try_lock() RD_TSA(try_acquire_capability(true)) { return m_.try_lock(); }
  // Before any thread uses the mutex.
  void count_in(std::atomic<uint64_t>* waits, std::atomic<uint64_t>* acquisitions) {
    waits_ = waits;
    acquisitions_ = acquisitions;
  }

 private:
  std::mutex m_;
  std::atomic<uint64_t>* waits_ = nullptr;
  std::atomic<uint64_t>* acquisitions_ = nullptr;
};

// std::lock_guard / std::unique_lock for rd::Mutex, annotated.
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& m) ACQUIRE(m) : m_(m) { m_.lock(); }
  ~MutexLock() RELEASE() { m_.unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex& m_;
};

}  // namespace rd
