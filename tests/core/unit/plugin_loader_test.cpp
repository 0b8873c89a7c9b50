#include "plugin_loader.hpp"

#include <gtest/gtest.h>

#include "test_support.hpp"

namespace {

std::string fixture(const std::string& sub) {
  return rdtest::test_plugin_dir() + "/" + sub;
}

std::string refusal(const std::string& sub) {
  rd::PluginScan scan = rd::scan_plugins(fixture(sub));
  EXPECT_TRUE(scan.loaded.empty());
  EXPECT_EQ(scan.refused.size(), 1u);
  return scan.refused.empty() ? "" : scan.refused[0].path + ": " + scan.refused[0].reason;
}

TEST(PluginLoader, LoadsAValidPlugin) {
  rd::PluginScan scan = rd::scan_plugins(fixture("scripted"));
  ASSERT_EQ(scan.loaded.size(), 1u);
  EXPECT_EQ(scan.loaded[0].destination_type, "test");
  EXPECT_TRUE(scan.refused.empty());
}

TEST(PluginLoader, RefusesOtherAbiMajorNamingBothVersions) {
  const std::string r = refusal("broken_major");
  EXPECT_NE(r.find(".so"), std::string::npos) << r;
  EXPECT_NE(r.find("plugin ABI 2."), std::string::npos) << r;
  EXPECT_NE(r.find("host speaks ABI 1.1"), std::string::npos) << r;
}

TEST(PluginLoader, RefusesTooSmallDescriptor) {
  const std::string r = refusal("broken_small");
  EXPECT_NE(r.find("descriptor of"), std::string::npos) << r;
  EXPECT_NE(r.find("needs at least"), std::string::npos) << r;
}

TEST(PluginLoader, RefusesMissingEntrySymbol) {
  const std::string r = refusal("broken_nosym");
  EXPECT_NE(r.find("does not export rd_plugin_entry"), std::string::npos) << r;
}

TEST(PluginLoader, RefusesNullDescriptor) {
  const std::string r = refusal("broken_null");
  EXPECT_NE(r.find("returned NULL"), std::string::npos) << r;
}

TEST(PluginLoader, TwoPluginsForOneDestinationTypeStopStartup) {
  try {
    rd::scan_plugins(fixture("dup_a"));
    FAIL() << "duplicate destination_type accepted";
  } catch (const rd::PluginError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("destination_type 'dup'"), std::string::npos) << m;
    EXPECT_NE(m.find("dup_one.so"), std::string::npos) << m;
    EXPECT_NE(m.find("dup_two.so"), std::string::npos) << m;
  }
}

TEST(PluginLoader, MissingFolderIsAClearError) {
  try {
    rd::scan_plugins("/nonexistent/plugins");
    FAIL();
  } catch (const rd::PluginError& e) {
    EXPECT_NE(std::string(e.what()).find("PLUGIN_DIR"), std::string::npos);
  }
}

TEST(PluginLoader, NotAPluginFile) {
  rdtest::TempDir dir;
  rdtest::write_file(dir.file("garbage.so"), "this is not an ELF file");
  rd::PluginScan scan = rd::scan_plugins(dir.path());
  ASSERT_EQ(scan.refused.size(), 1u);
  EXPECT_NE(scan.refused[0].reason.find("cannot be loaded"), std::string::npos);
}

}  // namespace
