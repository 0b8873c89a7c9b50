// Horizontal scale-out: several daemons with the same configuration bind the same durable
// consumer. They share the work (each delivers a fair share), with no failures every job is
// delivered exactly once in total, and an instance stopped with SIGTERM mid-stream hands the jobs
// it had not finished back to the others without losing any.
#include <gtest/gtest.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>
#include <thread>

#include "chaos_support.hpp"
#include "test_support.hpp"

using namespace rdtest;
using namespace rdtest::chaos;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

// Small in-flight windows, so a backlog forms and every instance stays busy.
std::string config_yaml(const NatsServer& nats, const std::string& plugins,
                        const std::string& shutdown_grace = "20s") {
  return "nats:\n  url: " + nats.url() +
         "\n  max_deliver: 3\n  ack_wait: 30s\n  backoff: [100ms]\n  fetch_batch: 16\n"
         "delivery:\n  max_in_flight: 32\n  shutdown_grace: " +
         shutdown_grace + "\nplugins:\n  dir: " + plugins + "\n";
}

std::string scripted_job(const std::string& record, const std::string& entry, int i) {
  return make_job("tenant-" + std::to_string(i % 3), 5, "test",
                  json{{"script", {entry}}, {"record", record}}.dump(),
                  json{{"device_id", "dev-1"}, {"id", i}}.dump());
}

struct Cluster {
  NatsServer nats;
  JsClient js{nats.url()};
  PluginFolder plugins{{scripted_plugin()}};
  TempDir tmp{"rdtest-scale"};
  std::string record = tmp.file("attempts.txt");
  std::vector<std::unique_ptr<Daemon>> daemons;

  Cluster(int instances, const std::string& shutdown_grace = "20s") {
    js.ensure_routes_stream();
    for (int i = 0; i < instances; ++i) {
      daemons.push_back(
          std::make_unique<Daemon>(config_yaml(nats, plugins.path(), shutdown_grace)));
    }
    for (auto& d : daemons) {
      if (!d->wait_ready(30s)) throw std::runtime_error("daemon not ready:\n" + d->log());
    }
  }
  void publish(int n, const std::string& entry) {
    for (int i = 0; i < n; ++i)
      js.publish("routes.tenant-" + std::to_string(i % 3), scripted_job(record, entry, i));
  }
  std::string logs() const {
    std::string out;
    for (size_t i = 0; i < daemons.size(); ++i) {
      out += "---- daemon " + std::to_string(i) + " ----\n" + daemons[i]->log();
    }
    return out;
  }
};

class ScaleOut : public ::testing::TestWithParam<int> {};

TEST_P(ScaleOut, InstancesShareTheWorkAndDeliverEveryJobExactlyOnce) {
  ASSERT_EQ(::access(daemon_path().c_str(), X_OK), 0) << daemon_path() << " is missing";
  const int instances = GetParam();
  const int n = 4000;
  Cluster c(instances);
  c.publish(n, "slow:30");
  ASSERT_TRUE(drained(c.js, 120s)) << c.logs();
  ASSERT_TRUE(wait_until(
      [&] {
        int64_t sum = 0;
        for (auto& d : c.daemons) sum += delivered(*d);
        return sum >= n;
      },
      10s));

  int64_t total = 0;
  for (int i = 0; i < instances; ++i) {
    const int64_t mine = delivered(*c.daemons[i]);
    total += mine;
    std::cout << "instance " << i << " delivered " << mine << " of " << n << "\n";
    // A fair share is n / instances; each must carry at least 45% of it.
    EXPECT_GE(mine, static_cast<int64_t>(0.45 * n / instances))
        << "instance " << i << " did not get a fair share";
    EXPECT_EQ(health(*c.daemons[i]).value("dead_lettered", -1), 0);
  }
  EXPECT_EQ(total, n) << "delivered counts across the instances";

  const auto attempts = read_attempts(c.record);
  std::map<std::string, int> per_job;
  for (const auto& a : attempts) {
    ++per_job[a.message_id];
    EXPECT_EQ(a.attempt, 1) << a.message_id << " was redelivered";
  }
  EXPECT_EQ(attempts.size(), static_cast<size_t>(n));
  EXPECT_EQ(per_job.size(), static_cast<size_t>(n)) << "every job reached a plugin";
  for (const auto& [id, count] : per_job)
    EXPECT_EQ(count, 1) << id << " was delivered " << count << " times";
  EXPECT_EQ(c.js.stream_msgs("ROUTES_DLQ"), 0u);
}

INSTANTIATE_TEST_SUITE_P(Instances, ScaleOut, ::testing::Values(2, 3),
                         [](const auto& info) { return std::to_string(info.param) + "Daemons"; });

// The number after `key=` in the first log line with `event`, or -1.
int64_t log_number(const std::string& log, const std::string& event, const std::string& key) {
  const std::regex re(event + "[^\n]* " + key + "=([0-9]+)");
  std::smatch m;
  return std::regex_search(log, m, re) ? std::stoll(m[1].str()) : -1;
}

TEST(ScaleOutStop, SigtermedInstanceHandsItsUnfinishedJobsToTheOthers) {
  ASSERT_EQ(::access(daemon_path().c_str(), X_OK), 0) << daemon_path() << " is missing";
  const int n = 300;
  // Deliveries take 3 s and there is no grace period: with a backlog left, each instance has its
  // 32 jobs in hand but for a few milliseconds every 3 s, so the stopped one has unfinished jobs
  // to hand back whatever the speed of the build (sanitizers included).
  Cluster c(3, "0s");
  c.publish(n, "slow:3000");
  // Past the first round (3 x 32 jobs), so the stopped instance has delivered some too.
  ASSERT_TRUE(wait_until([&] { return read_attempts(c.record).size() >= 110; }, 60s)) << c.logs();
  Daemon& stopped = *c.daemons[0];
  ASSERT_TRUE(wait_until([&] { return health(stopped).value("in_flight", 0) > 0; }, 10s));
  stopped.stop(30s);
  ASSERT_EQ(stopped.exit_code(), 0) << stopped.log();
  const std::string log = stopped.log();
  const int64_t stopped_delivered = log_number(log, "shutdown_complete", "delivered");
  const int64_t handed_back = std::max<int64_t>(log_number(log, "shutdown_nakked", "jobs"), 0);
  // Of those, the ones its plugin had (the others waited for their destination's share, or were
  // fetched and never handed out): only these reached the plugin a first time.
  const int64_t handed_back_from_plugin =
      std::max<int64_t>(log_number(log, "shutdown_nakked", "in_plugin"), 0);
  ASSERT_GE(stopped_delivered, 0) << log;
  std::cout << "stopped instance delivered " << stopped_delivered << ", handed back " << handed_back
            << "\n";
  EXPECT_GT(handed_back, 0) << "the test did not stop the instance mid-delivery";

  ASSERT_TRUE(drained(c.js, 120s)) << c.logs();
  ASSERT_TRUE(wait_until(
      [&] { return delivered(*c.daemons[1]) + delivered(*c.daemons[2]) + stopped_delivered >= n; },
      10s));
  const int64_t others = delivered(*c.daemons[1]) + delivered(*c.daemons[2]);
  EXPECT_EQ(stopped_delivered + others, n) << "each job delivered once across the instances";

  const auto attempts = read_attempts(c.record);
  std::set<std::string> jobs;
  for (const auto& a : attempts) {
    jobs.insert(a.message_id);
    // A job handed back at shutdown was interrupted, not failed: it spent no attempt.
    EXPECT_EQ(a.attempt, 1) << a.message_id;
  }
  EXPECT_EQ(jobs.size(), static_cast<size_t>(n)) << "jobs lost";
  // The only second deliveries are the jobs the stopped instance handed back (nak'd on shutdown).
  const int64_t redelivered = static_cast<int64_t>(attempts.size() - jobs.size());
  EXPECT_EQ(redelivered, handed_back_from_plugin);
  EXPECT_EQ(c.js.stream_msgs("ROUTES_DLQ"), 0u);
}

}  // namespace
