// A bounded multi-producer, multi-consumer queue without locks (Dmitry Vyukov's array queue).
//
// The pipeline's hot path hands values between threads that must not share a lock (consumer.hpp):
// a completed job's slot back to the fetch threads, its ack to the thread that sends acks in
// bursts, a fetched-ahead job to the waiting dispatcher. Each cell carries a sequence number that
// says whether it is free for the producer of a round or full for its consumer, so a push and a pop
// each cost one compare-and-swap on the shared index and never wait for another thread.
//
// push() fails when the queue is full and pop() when it is empty; the callers size it so that the
// first does not happen (and say what they do if it does). size() is approximate under concurrency.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <type_traits>

namespace rd {

template <typename T>
class MpmcQueue {
  static_assert(std::is_trivially_copyable_v<T>, "values are copied in and out of the cells");

 public:
  // Room for at least `capacity` values (rounded up to a power of two, at least 2).
  explicit MpmcQueue(size_t capacity) {
    size_t n = 2;
    while (n < capacity) n <<= 1;
    mask_ = n - 1;
    cells_ = std::make_unique<Cell[]>(n);
    for (size_t i = 0; i < n; ++i) cells_[i].seq.store(i, std::memory_order_relaxed);
  }
  MpmcQueue(const MpmcQueue&) = delete;
  MpmcQueue& operator=(const MpmcQueue&) = delete;

  bool push(const T& value) {
    size_t pos = tail_.load(std::memory_order_relaxed);
    for (;;) {
      Cell& c = cells_[pos & mask_];
      const size_t seq = c.seq.load(std::memory_order_acquire);
      const auto diff = static_cast<std::ptrdiff_t>(seq) - static_cast<std::ptrdiff_t>(pos);
      if (diff == 0) {
        if (tail_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
          c.value = value;
          c.seq.store(pos + 1, std::memory_order_release);
          return true;
        }
      } else if (diff < 0) {
        return false;  // full: this cell still holds the value of the previous round
      } else {
        pos = tail_.load(std::memory_order_relaxed);
      }
    }
  }

  bool pop(T& out) {
    size_t pos = head_.load(std::memory_order_relaxed);
    for (;;) {
      Cell& c = cells_[pos & mask_];
      const size_t seq = c.seq.load(std::memory_order_acquire);
      const auto diff = static_cast<std::ptrdiff_t>(seq) - static_cast<std::ptrdiff_t>(pos + 1);
      if (diff == 0) {
        if (head_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
          out = c.value;
          c.seq.store(pos + mask_ + 1, std::memory_order_release);
          return true;
        }
      } else if (diff < 0) {
        return false;  // empty
      } else {
        pos = head_.load(std::memory_order_relaxed);
      }
    }
  }

  size_t size() const {
    const size_t tail = tail_.load(std::memory_order_relaxed);
    const size_t head = head_.load(std::memory_order_relaxed);
    return tail > head ? tail - head : 0;
  }
  size_t capacity() const { return mask_ + 1; }

 private:
  struct Cell {
    std::atomic<size_t> seq{0};
    T value{};
  };
  // The two indices on cache lines of their own: producers and consumers do not share one.
  static constexpr size_t kLine = 64;
  std::unique_ptr<Cell[]> cells_;
  size_t mask_ = 0;
  alignas(kLine) std::atomic<size_t> tail_{0};
  alignas(kLine) std::atomic<size_t> head_{0};
  char pad_[kLine - sizeof(std::atomic<size_t>)] = {};
};

// A lock-free stack of the indices 0..capacity-1 (Treiber's stack over a fixed array, the head
// tagged with a counter against ABA). For free slots: the slot freed last is taken first, so the
// slot a fetch thread fills is one whose memory a core touched a moment ago, not the coldest of
// all (a FIFO of free slots cycles through every slot of the table).
class IndexStack {
 public:
  static constexpr uint32_t kNone = 0xffffffffu;
  explicit IndexStack(uint32_t capacity)
      : next_(std::make_unique<std::atomic<uint32_t>[]>(capacity)) {
    for (uint32_t i = 0; i < capacity; ++i) next_[i].store(kNone, std::memory_order_relaxed);
  }
  IndexStack(const IndexStack&) = delete;
  IndexStack& operator=(const IndexStack&) = delete;

  void push(uint32_t index) {
    uint64_t head = head_.load(std::memory_order_relaxed);
    for (;;) {
      next_[index].store(static_cast<uint32_t>(head), std::memory_order_relaxed);
      const uint64_t tagged = ((head >> 32) + 1) << 32 | index;
      if (head_.compare_exchange_weak(head, tagged, std::memory_order_release,
                                      std::memory_order_relaxed))
        return;
    }
  }

  bool pop(uint32_t& index) {
    uint64_t head = head_.load(std::memory_order_acquire);
    for (;;) {
      const auto top = static_cast<uint32_t>(head);
      if (top == kNone) return false;
      // May be stale when another thread took `top` meanwhile: the tag then fails the exchange.
      const uint32_t next = next_[top].load(std::memory_order_relaxed);
      const uint64_t tagged = ((head >> 32) + 1) << 32 | next;
      if (head_.compare_exchange_weak(head, tagged, std::memory_order_acquire,
                                      std::memory_order_acquire)) {
        index = top;
        return true;
      }
    }
  }

 private:
  std::unique_ptr<std::atomic<uint32_t>[]> next_;
  std::atomic<uint64_t> head_{kNone};  // tag << 32 | index of the top (kNone: empty)
};

}  // namespace rd
