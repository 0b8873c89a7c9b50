// `route-delivery plugin-test FILE.so [--config FILE]` against real plugins: the bundled ones pass
// every rule, and the scripted test plugin, made to break one rule at a time, fails naming it.
#include <gtest/gtest.h>

#include <string>

#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;

rdtest::CommandResult plugin_test(const std::string& so, const std::string& config_yaml = "") {
  std::vector<std::string> argv{rdtest::daemon_path(), "plugin-test", so};
  rdtest::TempDir tmp("rdtest-plugin-test");
  if (!config_yaml.empty()) {
    rdtest::write_file(tmp.file("config.yaml"), config_yaml);
    argv.push_back("--config");
    argv.push_back(tmp.file("config.yaml"));
  }
  return rdtest::run_command(argv, {}, 120s);
}

std::string scripted_so() {
  return rdtest::test_plugin_dir() + "/scripted/scripted.so";
}

std::string with_override(const std::string& entry) {
  return "plugins:\n  scripted:\n    override: " + entry + "\n";
}

TEST(PluginTestCommand, BundledPluginsPassEveryRule) {
  for (const std::string name : {"webhook", "mqtt_republish", "postgresql"}) {
    const auto r = plugin_test(rdtest::plugin_dir() + "/" + name + ".so");
    EXPECT_EQ(r.status, 0) << name << "\n" << r.output;
    EXPECT_NE(r.output.find("plugin-test: all rules held"), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("FAIL "), std::string::npos) << r.output;
  }
}

TEST(PluginTestCommand, ScriptedPluginThatBehavesPasses) {
  const auto r = plugin_test(scripted_so(), with_override("async"));
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("PASS complete every job exactly once"), std::string::npos) << r.output;
}

TEST(PluginTestCommand, NeverCompletingFailsNamingTheRule) {
  const auto r = plugin_test(scripted_so(), with_override("never"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("FAIL complete every job exactly once: 200 of 200 never completed"),
            std::string::npos)
      << r.output;
}

TEST(PluginTestCommand, CompletingTwiceFailsNamingTheRule) {
  const auto r = plugin_test(scripted_so(), with_override("twice"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("FAIL complete every job exactly once: 0 of 200 never completed"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("200 completed more than once"), std::string::npos) << r.output;
}

TEST(PluginTestCommand, ThrowingFailsNamingTheRule) {
  const auto r = plugin_test(scripted_so(), with_override("throw"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("FAIL no exception escapes deliver(): 200 jobs failed by an exception: "
                          "plugin exception: scripted exception"),
            std::string::npos)
      << r.output;
}

TEST(PluginTestCommand, ResultWithoutReasonFailsNamingTheRule) {
  const auto r = plugin_test(scripted_so(), with_override("noreason"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("FAIL a known outcome, with a reason unless OK"), std::string::npos)
      << r.output;
}

TEST(PluginTestCommand, ExportingMoreThanTheEntryFails) {
  const auto r = plugin_test(rdtest::test_plugin_dir() + "/extra_export/extra_export.so");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("FAIL export nothing but rd_plugin_entry: 1 more symbols exported "
                          "(extra_export_helper)"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("PASS complete every job exactly once"), std::string::npos) << r.output;
}

TEST(PluginTestCommand, MissingEntryIsNamed) {
  const auto r = plugin_test(rdtest::test_plugin_dir() + "/broken_nosym/broken_nosym.so");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("FAIL load through the host's ABI checks"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("does not export rd_plugin_entry"), std::string::npos) << r.output;
}

TEST(PluginTestCommand, WrongAbiMajorIsNamed) {
  const auto r = plugin_test(rdtest::test_plugin_dir() + "/broken_major/broken_major.so");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_NE(r.output.find("was built for plugin ABI 2."), std::string::npos) << r.output;
}

}  // namespace
