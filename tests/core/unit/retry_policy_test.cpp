#include "retry_policy.hpp"

#include <gtest/gtest.h>
#include <route_delivery/plugin.h>

#include "config.hpp"

namespace {

TEST(RetryPolicy, BackoffByAttemptWithJitterAndLastRepeating) {
  rd::RetryPolicy p({1000, 5000}, 3'600'000);
  EXPECT_EQ(p.base_delay_ms(1), 1000);
  EXPECT_EQ(p.base_delay_ms(2), 5000);
  EXPECT_EQ(p.base_delay_ms(7), 5000);
  bool saw_low = false, saw_high = false;
  for (int i = 0; i < 2000; ++i) {
    const int64_t d = p.delay_ms(1, -1);
    ASSERT_GE(d, 800);
    ASSERT_LE(d, 1200);
    saw_low |= d < 950;
    saw_high |= d > 1050;
  }
  EXPECT_TRUE(saw_low && saw_high) << "jitter should spread delays both ways";
}

TEST(RetryPolicy, PluginSuggestionWinsWhenLongerAndIsCapped) {
  rd::RetryPolicy p({1000}, 60'000);
  EXPECT_EQ(p.delay_ms(1, 30'000), 30'000);      // Retry-After: 30
  EXPECT_LE(p.delay_ms(1, 10), 1200);            // shorter suggestion does not shorten the back-off
  EXPECT_EQ(p.delay_ms(1, 10'000'000), 60'000);  // capped
}

}  // namespace

namespace {
TEST(RetryPolicy, JetStreamMaxDeliverLeavesRoomForDeferralsUntilGiveUpAfter) {
  rd::Config c;
  c.nats.max_deliver = 3;
  c.delivery.give_up_after_ms = 6 * 3'600'000;
  c.delivery.max_defer_delay_ms = 5'000;
  // 3 attempts + a deferral every 5 s for 6 h + margin.
  EXPECT_EQ(rd::jetstream_max_deliver(c), 3 + 4320 + 100);
  c.delivery.give_up_after_ms = 20'000;
  EXPECT_EQ(rd::jetstream_max_deliver(c), 3 + 4 + 100);
  c.nats.max_deliver = -1;
  EXPECT_EQ(rd::jetstream_max_deliver(c), -1);  // unlimited attempts: no limit either
}
}  // namespace
