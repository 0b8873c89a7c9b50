// The lock-free queue the pipeline hands slots, acks and fetched-ahead jobs through.
#include "mpmc_queue.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

namespace rd {
namespace {

TEST(MpmcQueue, KeepsOrderAndSaysWhenFullOrEmpty) {
  MpmcQueue<uint32_t> q(5);  // rounded up to 8
  EXPECT_EQ(q.capacity(), 8u);
  uint32_t v = 0;
  EXPECT_FALSE(q.pop(v));
  for (uint32_t round = 0; round < 3; ++round) {  // the cells are reused round after round
    for (uint32_t i = 0; i < 8; ++i) ASSERT_TRUE(q.push(round * 100 + i));
    EXPECT_FALSE(q.push(999)) << "a full queue took a value";
    EXPECT_EQ(q.size(), 8u);
    for (uint32_t i = 0; i < 8; ++i) {
      ASSERT_TRUE(q.pop(v));
      EXPECT_EQ(v, round * 100 + i);
    }
    EXPECT_FALSE(q.pop(v));
  }
}

// Every value pushed by any producer is popped exactly once by some consumer.
TEST(MpmcQueue, EveryValueArrivesOnceAcrossThreads) {
  constexpr uint32_t kProducers = 4;
  constexpr uint32_t kPerProducer = 50'000;
  MpmcQueue<uint32_t> q(64);  // small: producers meet a full queue and consumers an empty one
  std::vector<std::atomic<uint8_t>> seen(kProducers * kPerProducer);
  std::atomic<uint32_t> popped{0};
  std::vector<std::thread> threads;
  for (uint32_t p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      for (uint32_t i = 0; i < kPerProducer; ++i) {
        while (!q.push(p * kPerProducer + i)) std::this_thread::yield();
      }
    });
  }
  for (int c = 0; c < 3; ++c) {
    threads.emplace_back([&] {
      uint32_t v = 0;
      while (popped.load() < kProducers * kPerProducer) {
        if (q.pop(v)) {
          seen[v].fetch_add(1);
          popped.fetch_add(1);
        } else {
          std::this_thread::yield();
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  size_t twice = 0;
  size_t never = 0;
  for (auto& s : seen) {
    never += s.load() == 0 ? 1 : 0;
    twice += s.load() > 1 ? 1 : 0;
  }
  EXPECT_EQ(never, 0u);
  EXPECT_EQ(twice, 0u);
}

}  // namespace
}  // namespace rd

namespace rd {
namespace {

TEST(IndexStack, TheLastPushedComesFirst) {
  IndexStack s(8);
  uint32_t v = 0;
  EXPECT_FALSE(s.pop(v));
  for (uint32_t i : {3u, 5u, 1u}) s.push(i);
  for (uint32_t want : {1u, 5u, 3u}) {
    ASSERT_TRUE(s.pop(v));
    EXPECT_EQ(v, want);
  }
  EXPECT_FALSE(s.pop(v));
}

// Threads that take indices and give them back, as fetch threads and completions do with slots:
// no index is ever held by two threads at once, and all are back at the end.
TEST(IndexStack, NoIndexIsTakenTwiceAcrossThreads) {
  constexpr uint32_t kIndices = 64;
  IndexStack s(kIndices);
  for (uint32_t i = 0; i < kIndices; ++i) s.push(i);
  std::vector<std::atomic<int>> holders(kIndices);
  std::atomic<int> doubled{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      std::vector<uint32_t> mine;
      for (int round = 0; round < 20'000; ++round) {
        uint32_t v = 0;
        if (round % 3 != 2 && s.pop(v)) {
          if (holders[v].fetch_add(1) != 0) doubled.fetch_add(1);
          mine.push_back(v);
        } else if (!mine.empty()) {
          holders[mine.back()].fetch_sub(1);
          s.push(mine.back());
          mine.pop_back();
        }
      }
      for (uint32_t v : mine) {
        holders[v].fetch_sub(1);
        s.push(v);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(doubled.load(), 0);
  std::vector<bool> back(kIndices, false);
  uint32_t v = 0;
  size_t n = 0;
  while (s.pop(v)) {
    ASSERT_LT(v, kIndices);
    EXPECT_FALSE(back[v]) << v << " twice";
    back[v] = true;
    ++n;
  }
  EXPECT_EQ(n, kIndices);
}

}  // namespace
}  // namespace rd
