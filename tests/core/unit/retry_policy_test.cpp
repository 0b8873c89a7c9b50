#include "retry_policy.hpp"

#include <gtest/gtest.h>
#include <route_delivery/plugin.h>

namespace {

using rd::Settlement;

TEST(RetryPolicy, DecideFollowsTheContract) {
  EXPECT_EQ(rd::decide(RD_OUTCOME_OK, 1, 3), Settlement::Ack);
  EXPECT_EQ(rd::decide(RD_OUTCOME_OK, 3, 3), Settlement::Ack);
  EXPECT_EQ(rd::decide(RD_OUTCOME_RETRY, 1, 3), Settlement::Nak);
  EXPECT_EQ(rd::decide(RD_OUTCOME_RETRY, 2, 3), Settlement::Nak);
  EXPECT_EQ(rd::decide(RD_OUTCOME_RETRY, 3, 3), Settlement::DeadLetter);  // last attempt
  EXPECT_EQ(rd::decide(RD_OUTCOME_RETRY, 4, 5), Settlement::Nak);     // server's max_deliver, not 3
  EXPECT_EQ(rd::decide(RD_OUTCOME_RETRY, 100, -1), Settlement::Nak);  // unlimited
  EXPECT_EQ(rd::decide(RD_OUTCOME_PERMANENT, 1, 3), Settlement::DeadLetter);
  EXPECT_EQ(rd::decide(42, 1, 3), Settlement::DeadLetter);  // unknown outcome is never acked
}

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
