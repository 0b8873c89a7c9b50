// Loads the example plugin that `sdk_out_of_tree_build` built against the installed SDK (fixture
// "sdk_out_of_tree") through the C ABI, and checks what its README promises.
#include <gtest/gtest.h>
#include <route_delivery/plugin.h>

#include <string>
#include <thread>
#include <vector>

#include "plugin_harness.hpp"
#include "test_support.hpp"

namespace {

using rdtest::JobSpec;
using rdtest::PluginHarness;

const std::string kPlugin = RD_OUT_OF_TREE_PLUGIN;

std::string config_for(const std::string& output) {
  return R"({"output":")" + output + R"("})";
}

TEST(ExamplePlugin, DescriptorDeclaresItsTypeAndOutputKey) {
  PluginHarness h(kPlugin, R"({"output":""})");
  const rd_plugin_descriptor& d = h.descriptor();
  EXPECT_EQ(d.struct_size, sizeof(rd_plugin_descriptor));
  EXPECT_STREQ(d.name, "example");
  EXPECT_STREQ(d.destination_type, "example");
  ASSERT_EQ(d.config_key_count, 1u);
  EXPECT_STREQ(d.config_keys[0].name, "output");
  EXPECT_EQ(d.config_keys[0].type, RD_CONFIG_STRING);
}

TEST(ExamplePlugin, AppendsOneLinePerDeliveredJob) {
  rdtest::TempDir dir;
  const std::string out = dir.file("delivered.txt");
  PluginHarness h(kPlugin, config_for(out));
  JobSpec job;
  job.message_id = "ROUTES:7";
  job.tenant_id = "tenant-b";
  job.route_id = 42;
  job.payload_json = R"({"device_id":"dev-9","temp":-3})";
  auto r = h.deliver_sync(job);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outcome, RD_OUTCOME_OK);
  EXPECT_EQ(r->completions, 1);
  EXPECT_EQ(rdtest::read_lines(out),
            std::vector<std::string>{R"(ROUTES:7 tenant-b 42 {"device_id":"dev-9","temp":-3})"});
  EXPECT_EQ(h.metrics()["example_delivered_total{}"], 1.0);
  bool debug_logged = false;
  for (const auto& line : h.logs()) debug_logged |= line == "0 example: job delivered";
  EXPECT_TRUE(debug_logged);
}

TEST(ExamplePlugin, ConcurrentCompletionsKeepLinesWhole) {
  rdtest::TempDir dir;
  const std::string out = dir.file("delivered.txt");
  // Two instances appending to one file from several threads: every line arrives whole.
  PluginHarness a(kPlugin, config_for(out));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        JobSpec job;
        job.message_id = "ROUTES:" + std::to_string(t * 1000 + i);
        a.deliver_sync(job);
      }
    });
  }
  for (auto& t : threads) t.join();
  const auto lines = rdtest::read_lines(out);
  ASSERT_EQ(lines.size(), 200u);
  for (const auto& line : lines)
    EXPECT_NE(line.find(" tenant-a 1 {\"device_id\""), std::string::npos);
}

TEST(ExamplePlugin, EscapedOutputPathIsDecoded) {
  rdtest::TempDir dir;
  const std::string out = dir.file("with \"quote\" and \xc3\xa9.txt");
  PluginHarness h(kPlugin, R"({"output":")" + dir.path() + R"(/with \"quote\" and \u00e9.txt"})");
  ASSERT_TRUE(h.deliver_sync(JobSpec{}));
  EXPECT_EQ(rdtest::read_lines(out).size(), 1u);
}

TEST(ExamplePlugin, ConfigReaderSkipsOtherValues) {
  rdtest::TempDir dir;
  const std::string out = dir.file("out.txt");
  PluginHarness h(kPlugin, R"({ "a" : {"b":[1,"},\"x",{}]}, "n": -1.5e3, "t": true, "output" : ")" +
                               out + R"(" })");
  ASSERT_TRUE(h.deliver_sync(JobSpec{}));
  EXPECT_EQ(rdtest::read_lines(out).size(), 1u);
}

TEST(ExamplePlugin, MalformedConfigIsACreateError) {
  for (const char* config : {"", "[]", R"({"output":1})", R"({"output":"x)", R"({"output" "x"})"}) {
    EXPECT_THROW(PluginHarness(kPlugin, config), std::runtime_error) << config;
  }
}

TEST(ExamplePlugin, UnwritableOutputIsACreateErrorNamingTheKey) {
  try {
    PluginHarness h(kPlugin, config_for("/nonexistent-dir/out.txt"));
    FAIL() << "xCreate succeeded";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("plugins.example.output"), std::string::npos) << e.what();
  }
}

TEST(ExamplePlugin, EmptyOutputDeliversNowhere) {
  PluginHarness h(kPlugin, R"({"output":""})");
  auto r = h.deliver_sync(JobSpec{});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outcome, RD_OUTCOME_OK);
  std::string detail;
  EXPECT_TRUE(h.health(detail));
  EXPECT_EQ(detail, "no output");
}

}  // namespace
