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
