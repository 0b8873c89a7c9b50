// rd::RouteCache: each distinct destination_config text made once, bounded, least recently used
// dropped first, safe to share between threads.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <route_delivery/plugin.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

struct Parsed {
  std::string text;
};
using Cache = rd::RouteCache<std::shared_ptr<const Parsed>>;

// get() counting how often the cache had to make a value.
struct Counting {
  Cache& cache;
  int made = 0;
  std::shared_ptr<const Parsed> get(const std::string& text) {
    return cache.get(text, [&](std::string_view t) {
      ++made;
      return std::make_shared<const Parsed>(Parsed{std::string(t)});
    });
  }
};

TEST(SdkRouteCache, MakesEachDistinctTextOnce) {
  Cache cache;
  Counting c{cache};
  const auto a1 = c.get(R"({"url":"http://a/"})");
  const auto a2 = c.get(R"({"url":"http://a/"})");
  const auto b = c.get(R"({"url":"http://b/"})");
  EXPECT_EQ(c.made, 2);
  EXPECT_EQ(a1, a2) << "the same text returns the stored value";
  EXPECT_EQ(a1->text, R"({"url":"http://a/"})");
  EXPECT_EQ(b->text, R"({"url":"http://b/"})");
  // The key is the exact bytes: other spacing is another route config.
  c.get(R"({"url": "http://a/"})");
  EXPECT_EQ(c.made, 3);
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_EQ(cache.capacity(), Cache::kDefaultCapacity);
}

TEST(SdkRouteCache, BoundedDroppingTheLeastRecentlyUsed) {
  Cache cache(2);
  Counting c{cache};
  c.get("a");
  c.get("b");
  c.get("a");  // a is now more recent than b
  c.get("c");  // full: b goes
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(c.made, 3);
  c.get("a");
  c.get("c");
  EXPECT_EQ(c.made, 3) << "a and c stayed";
  c.get("b");
  EXPECT_EQ(c.made, 4) << "b was dropped and is made again";
  EXPECT_EQ(cache.size(), 2u);
}

TEST(SdkRouteCache, ValuesOutliveTheirEviction) {
  Cache cache(1);
  Counting c{cache};
  const auto a = c.get("a");
  c.get("b");  // evicts a
  EXPECT_EQ(a->text, "a") << "a shared_ptr handed out stays valid";
}

TEST(SdkRouteCache, AFailedMakeStoresNothing) {
  Cache cache;
  EXPECT_THROW(cache.get("x",
                         [](std::string_view) -> std::shared_ptr<const Parsed> {
                           throw std::runtime_error("bad");
                         }),
               std::runtime_error);
  EXPECT_EQ(cache.size(), 0u);
  Counting c{cache};
  EXPECT_EQ(c.get("x")->text, "x");
  EXPECT_EQ(c.made, 1);
}

TEST(SdkRouteCache, SharedBetweenThreads) {
  Cache cache(64);
  std::atomic<int> made{0};
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20000; ++i) {
        const std::string text = "route-" + std::to_string((i * 7 + t) % 100);
        const auto v = cache.get(text, [&](std::string_view s) {
          made.fetch_add(1, std::memory_order_relaxed);
          return std::make_shared<const Parsed>(Parsed{std::string(s)});
        });
        if (v->text != text) wrong.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0) << "every get returned the value of its own text";
  EXPECT_LE(cache.size(), 64u);
  EXPECT_GE(made.load(), 100);
}

}  // namespace
