// A 3-node nats-server cluster on loopback with ROUTES replicated three times. The daemon is given
// all three URLs; the node it is connected to is killed (SIGKILL) mid-stream. It reconnects to a
// surviving node, keeps delivering, and every job arrives (at-least-once) with none dead-lettered.
//
// Cluster setup (the same as an operator's, on one host):
//   nats-server -a 127.0.0.1 -p <client port> -js -sd <own store dir> -n node<i> -m <monitor port>
//     --cluster_name rd --cluster nats://127.0.0.1:<cluster port>
//     --routes nats://127.0.0.1:<the other two cluster ports>
// ROUTES is created beforehand with Replicas 3 (work queue, routes.>, file storage); the daemon
// creates its durable consumer (which inherits the stream's three replicas) and ROUTES_DLQ /
// ROUTES_ADVISORIES with one replica each.
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
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

struct NatsCluster {
  static constexpr int kNodes = 3;
  std::array<int, kNodes> client{}, route{}, monitor{};
  std::array<std::unique_ptr<NatsServer>, kNodes> nodes;

  NatsCluster() {
    for (int i = 0; i < kNodes; ++i) {
      client[i] = free_port();
      route[i] = free_port();
      monitor[i] = free_port();
    }
    for (int i = 0; i < kNodes; ++i) {
      std::string routes;
      for (int j = 0; j < kNodes; ++j) {
        if (j == i) continue;
        routes += (routes.empty() ? "" : ",") + std::string("nats://127.0.0.1:") +
                  std::to_string(route[j]);
      }
      nodes[i] = std::make_unique<NatsServer>(
          std::vector<std::string>{"-n", "node" + std::to_string(i + 1), "-m",
                                   std::to_string(monitor[i]), "--cluster_name", "rd", "--cluster",
                                   "nats://127.0.0.1:" + std::to_string(route[i]), "--routes",
                                   routes},
          client[i]);
    }
  }
  std::string urls(int except = -1) const {
    std::string out;
    for (int i = 0; i < kNodes; ++i) {
      if (i == except) continue;
      out += (out.empty() ? "" : ",") + nodes[i]->url();
    }
    return out;
  }
  int index_of_port(int port) const {
    for (int i = 0; i < kNodes; ++i) {
      if (client[i] == port) return i;
    }
    return -1;
  }
};

// "ROUTES R3 leader=node2 ...": replicas and leader of the streams and the durable consumer.
std::string placement(JsClient& js) {
  auto describe = [](const jsClusterInfo* c) {
    if (c == nullptr) return std::string("(no cluster info)");
    std::string out = "R" + std::to_string(c->ReplicasLen + 1) +
                      " leader=" + (c->Leader != nullptr ? c->Leader : "?") + " peers=";
    for (int i = 0; i < c->ReplicasLen; ++i)
      out += std::string(i ? "," : "") + c->Replicas[i]->Name;
    return out;
  };
  std::string out;
  for (const char* stream : {"ROUTES", "ROUTES_DLQ", "ROUTES_ADVISORIES"}) {
    jsStreamInfo* si = nullptr;
    jsErrCode err = static_cast<jsErrCode>(0);
    if (js_GetStreamInfo(&si, js.js(), stream, nullptr, &err) == NATS_OK) {
      out += std::string(stream) + " " + describe(si->Cluster) + "; ";
      jsStreamInfo_Destroy(si);
    }
  }
  jsConsumerInfo* ci = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  if (js_GetConsumerInfo(&ci, js.js(), "ROUTES", "route-delivery", nullptr, &err) == NATS_OK) {
    out += "consumer route-delivery " + describe(ci->Cluster);
    jsConsumerInfo_Destroy(ci);
  }
  return out;
}

TEST(NatsCluster, KillingTheConnectedNodeLosesNoJob) {
  ASSERT_EQ(::access(daemon_path().c_str(), X_OK), 0) << daemon_path() << " is missing";
  NatsCluster cluster;
  {
    Publisher setup(cluster.urls());
    const std::string err = create_routes_stream(setup.js(), "ROUTES", 3, 10min, 60s);
    ASSERT_EQ(err, "") << "ROUTES (R3) could not be created";
  }
  PluginFolder plugins({scripted_plugin()});
  TempDir tmp("rdtest-cluster");
  const std::string record = tmp.file("attempts.txt");
  const std::string config =
      "nats:\n  max_deliver: 5\n  ack_wait: 5s\n  backoff: [200ms, 1s]\n  fetch_batch: 32\n"
      "delivery:\n  max_in_flight: 64\nplugins:\n  dir: " +
      plugins.path() + "\n";
  Daemon daemon(config, {{"NATS_URL", cluster.urls()}});
  ASSERT_TRUE(daemon.wait_ready(60s)) << daemon.log();
  const int victim = cluster.index_of_port(connected_port(daemon.log()));
  {
    // Where the daemon's consumer and streams live (printed for the operations notes).
    JsClient probe(cluster.nodes[0]->url());
    std::cout << "placement: " << placement(probe) << "\n";
  }
  ASSERT_GE(victim, 0) << "which node is the daemon on?\n" << daemon.log();

  // Jobs go in through the other two nodes, so the publisher is not disturbed by the kill.
  Publisher pub(cluster.urls(victim));
  const int n = 3000;
  std::thread publisher([&] {
    for (int i = 0; i < n; ++i) {
      pub.publish(
          "routes.tenant-a",
          make_job("tenant-a", 9, "test", json{{"script", {"slow:20"}}, {"record", record}}.dump(),
                   json{{"device_id", "dev-2"}, {"id", i}}.dump()),
          "job-" + std::to_string(i));
    }
  });
  const bool started = wait_until([&] { return read_attempts(record).size() >= n / 4; }, 60s);
  const size_t at_kill = read_attempts(record).size();
  if (started) cluster.nodes[victim]->kill_hard();
  publisher.join();
  ASSERT_TRUE(started) << daemon.log();
  std::cout << "killed node" << victim + 1 << " (the daemon's) after " << at_kill << " of " << n
            << " attempts\n";
  EXPECT_LT(at_kill, static_cast<size_t>(n)) << "the node was not killed mid-stream";

  // The daemon moves to a surviving node and carries on.
  ASSERT_TRUE(wait_until(
      [&] {
        const int now = cluster.index_of_port(connected_port(daemon.log()));
        return now >= 0 && now != victim;
      },
      30s))
      << daemon.log();
  EXPECT_NE(daemon.log().find("nats_reconnected"), std::string::npos);

  JsClient js(cluster.nodes[(victim + 1) % NatsCluster::kNodes]->url());  // a survivor
  ASSERT_TRUE(drained(js, 120s)) << daemon.log();
  const auto attempts = read_attempts(record);
  std::set<std::string> jobs;
  for (const auto& a : attempts) jobs.insert(a.message_id);
  EXPECT_EQ(jobs.size(), static_cast<size_t>(n)) << "every job reached the plugin";
  for (int seq = 1; seq <= n; ++seq) {
    EXPECT_EQ(jobs.count("ROUTES:" + std::to_string(seq)), 1u) << "ROUTES:" << seq << " missing";
  }
  const json h = health(daemon);
  std::cout << "delivered " << h.value("delivered", -1) << " (duplicates "
            << h.value("delivered", 0) - n << "), attempts recorded " << attempts.size() << "\n";
  EXPECT_GE(h.value("delivered", 0), n);
  EXPECT_EQ(h.value("dead_lettered", -1), 0) << "nothing may be dead-lettered";
  EXPECT_EQ(h.value("status", ""), "ok");
  // ROUTES_DLQ has one replica and may have lived on the killed node; when readable it is empty.
  EXPECT_EQ(js.stream_msgs("ROUTES_DLQ"), 0u);
}

// The daemon creates ROUTES_DLQ with one replica when it is missing; an operator who creates it
// with three beforehand keeps dead-lettering working when a node dies. Half the jobs fail
// permanently while the daemon's node is killed: each has exactly one dead-letter record.
TEST(NatsCluster, ReplicatedDeadLetterStreamKeepsDeadLetteringThroughANodeLoss) {
  ASSERT_EQ(::access(daemon_path().c_str(), X_OK), 0) << daemon_path() << " is missing";
  NatsCluster cluster;
  {
    Publisher setup(cluster.urls());
    ASSERT_EQ(create_routes_stream(setup.js(), "ROUTES", 3, 10min, 60s), "");
    ASSERT_EQ(create_stream(setup.js(), "ROUTES_DLQ", {"dlq.routes.>"}, false, 3, 2min, 60s), "");
  }
  PluginFolder plugins({scripted_plugin()});
  TempDir tmp("rdtest-cluster-dlq");
  const std::string record = tmp.file("attempts.txt");
  const std::string config =
      "nats:\n  max_deliver: 5\n  ack_wait: 5s\n  backoff: [200ms, 1s]\n  fetch_batch: 32\n"
      "delivery:\n  max_in_flight: 64\nplugins:\n  dir: " +
      plugins.path() + "\n";
  Daemon daemon(config, {{"NATS_URL", cluster.urls()}});
  ASSERT_TRUE(daemon.wait_ready(60s)) << daemon.log();
  const int victim = cluster.index_of_port(connected_port(daemon.log()));
  ASSERT_GE(victim, 0) << daemon.log();

  Publisher pub(cluster.urls(victim));
  const int n = 1000;
  std::thread publisher([&] {
    for (int i = 0; i < n; ++i) {
      const std::string entry = i % 2 == 0 ? "slow:20" : "permanent";
      pub.publish(
          "routes.tenant-a",
          make_job("tenant-a", 9, "test", json{{"script", {entry}}, {"record", record}}.dump(),
                   json{{"device_id", "dev-2"}, {"id", i}}.dump()),
          "job-" + std::to_string(i));
    }
  });
  const bool started = wait_until([&] { return read_attempts(record).size() >= n / 4; }, 60s);
  if (started) cluster.nodes[victim]->kill_hard();
  publisher.join();
  ASSERT_TRUE(started) << daemon.log();

  JsClient js(cluster.nodes[(victim + 1) % NatsCluster::kNodes]->url());
  ASSERT_TRUE(drained(js, 120s)) << daemon.log();
  ASSERT_TRUE(wait_until([&] { return js.stream_msgs("ROUTES_DLQ") >= n / 2; }, 30s))
      << js.stream_msgs("ROUTES_DLQ") << " dead letters\n"
      << daemon.log();
  std::this_thread::sleep_for(1s);
  std::map<int, int> per_job;
  for (const json& r : dead_letters(js)) ++per_job[r["payload"].value("id", -1)];
  EXPECT_EQ(per_job.size(), static_cast<size_t>(n / 2));
  for (const auto& [id, count] : per_job) {
    EXPECT_EQ(id % 2, 1) << "job " << id << " should have been delivered";
    EXPECT_EQ(count, 1) << "job " << id << " has " << count << " dead-letter records";
  }
  std::set<std::string> delivered_ok;
  for (const auto& a : read_attempts(record)) {
    if (a.entry == "slow:20") delivered_ok.insert(a.message_id);
  }
  EXPECT_EQ(delivered_ok.size(), static_cast<size_t>(n / 2));
}

}  // namespace
