#include "destination.hpp"

#include <gtest/gtest.h>

namespace {

using rd::CircuitBreaker;
using Gate = CircuitBreaker::Gate;
using Transition = CircuitBreaker::Transition;
constexpr int64_t kSecond = 1'000'000'000;

TEST(CircuitBreaker, OpensAfterConsecutiveFailuresOnly) {
  CircuitBreaker b(3, kSecond);
  EXPECT_EQ(b.failure(0, 1000, "refused"), Transition::none);
  EXPECT_EQ(b.failure(1, 1001, "refused"), Transition::none);
  EXPECT_EQ(b.success(), Transition::none);  // an answer resets the count
  EXPECT_EQ(b.failure(2, 1002, "refused"), Transition::none);
  EXPECT_EQ(b.failure(3, 1003, "refused"), Transition::none);
  EXPECT_EQ(b.gate(4), Gate::pass);
  EXPECT_EQ(b.failure(5, 1005, "timed out"), Transition::opened);
  EXPECT_TRUE(b.open());
  EXPECT_EQ(b.open_since_ms(), 1002);  // since the first failure of the run that opened it
  EXPECT_EQ(b.last_error(), "timed out");
}

TEST(CircuitBreaker, OpenLetsOneProbeThroughPerIntervalAndTheFirstAnswerCloses) {
  CircuitBreaker b(1, kSecond);
  ASSERT_EQ(b.failure(0, 0, "refused"), Transition::opened);
  EXPECT_EQ(b.gate(kSecond / 2), Gate::blocked);  // before the interval
  EXPECT_EQ(b.gate(kSecond), Gate::probe);
  EXPECT_EQ(b.gate(kSecond + 1), Gate::blocked);                      // one probe at a time
  EXPECT_EQ(b.failure(kSecond + 2, 1, "refused"), Transition::none);  // the probe failed
  EXPECT_TRUE(b.open());
  EXPECT_EQ(b.gate(kSecond + 3), Gate::blocked);  // the next probe waits a full interval
  EXPECT_EQ(b.gate(2 * kSecond + 2), Gate::probe);
  EXPECT_EQ(b.success(), Transition::closed);
  EXPECT_FALSE(b.open());
  EXPECT_EQ(b.gate(2 * kSecond + 3), Gate::pass);
}

TEST(CircuitBreaker, CancelledProbeFreesTheNextOne) {
  CircuitBreaker b(1, kSecond);
  ASSERT_EQ(b.failure(0, 0, "x"), Transition::opened);
  ASSERT_EQ(b.gate(kSecond), Gate::probe);
  b.probe_cancelled();
  EXPECT_EQ(b.gate(3 * kSecond), Gate::probe);
}

TEST(CircuitBreaker, ZeroFailuresNeverOpens) {
  CircuitBreaker b(0, kSecond);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(b.failure(i, i, "x"), Transition::none);
  EXPECT_EQ(b.gate(1000), Gate::pass);
}

TEST(Destination, DrainTimeFollowsTheMeasuredRate) {
  rd::Destination d("webhook|http://a:80", 5, kSecond);
  EXPECT_EQ(d.drain_ms(), -1);  // no rate yet
  for (int i = 0; i <= 40; ++i)
    d.count_done(kSecond + static_cast<int64_t>(i) * kSecond / 40);  // 40/s
  d.in_flight = 8;
  for (int i = 0; i < 32; ++i) d.waiting.push_back(static_cast<uint64_t>(i));
  EXPECT_NEAR(static_cast<double>(d.drain_ms()), 1000.0, 50.0);  // 40 jobs at 40/s
}

TEST(DestinationTable, PrunesOnlyIdleClosedDestinations) {
  rd::DestinationTable t(1, kSecond);
  rd::Destination* busy = t.get("a", 0);
  rd::Destination* open = t.get("b", 0);
  t.get("c", 0);
  busy->in_flight = 1;
  open->breaker.failure(0, 0, "down");
  t.prune(120 * kSecond);
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.get("b", 0), open);  // kept: its circuit is open
  EXPECT_TRUE(open->breaker.open());
  EXPECT_EQ(t.get("a", 0), busy);  // stable addresses
}

// A SIGHUP reload's delivery.circuit.*: known destinations count to the new threshold from the
// failures they have seen, and probe at the new interval; new ones start with it.
TEST(DestinationTable, ReloadedCircuitLimitsApplyToKnownAndNewDestinations) {
  rd::DestinationTable t(5, 1000);
  rd::Destination* a = t.get("a", 0);
  EXPECT_EQ(a->breaker.failure(0, 0, "down"), Transition::none);
  t.set_circuit(2, 50);
  EXPECT_EQ(a->breaker.failure(1, 1, "down"), Transition::opened);
  EXPECT_EQ(a->breaker.gate(50'000'000), Gate::blocked);
  EXPECT_EQ(a->breaker.gate(50'000'001), Gate::probe);  // 50 ms after it opened
  rd::Destination* b = t.get("b", 0);
  EXPECT_EQ(b->breaker.failure(0, 0, "down"), Transition::none);
  EXPECT_EQ(b->breaker.failure(1, 1, "down"), Transition::opened);
  t.set_circuit(0, 50);  // 0: never opens
  rd::Destination* c = t.get("c", 0);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(c->breaker.failure(i, i, "down"), Transition::none);
}

}  // namespace
