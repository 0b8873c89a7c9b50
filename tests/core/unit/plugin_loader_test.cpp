#include "plugin_loader.hpp"

#include <gtest/gtest.h>

#include "config.hpp"
#include "metrics.hpp"
#include "plugin_host.hpp"
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
  EXPECT_NE(r.find("host speaks ABI 1.2"), std::string::npos) << r;
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

// ---- ABI 1.2 config schema, and plugins built before it ----

namespace schema {

rd::PluginScan load(const std::string& sub) {
  rd::PluginScan scan = rd::scan_plugins(fixture(sub));
  EXPECT_EQ(scan.loaded.size(), 1u) << (scan.refused.empty() ? "" : scan.refused[0].reason);
  return scan;
}

// The errors resolving `yaml` against the plugin, or "" when it is accepted.
std::string errors(const rd::LoadedPlugin& p, const std::string& yaml,
                   const rd::Environment& env = {}) {
  const rd::Config c = rd::load_config_text(yaml, "t.yaml", env);
  try {
    rd::resolve_plugin_config(c, p.name, *p.descriptor, env, 30'000);
    return "";
  } catch (const rd::ConfigError& e) {
    return e.what();
  }
}

// What PluginSet::init says (config, then xValidate) without creating anything.
std::string init_errors(const std::string& sub, const std::string& yaml,
                        const rd::Environment& env = {}) {
  const rd::Config c = rd::load_config_text(yaml, "t.yaml", env);
  rd::Metrics metrics;
  rd::PluginSet set;
  try {
    set.init(rd::scan_plugins(fixture(sub)), c, env, metrics, 30'000, false);
    return "";
  } catch (const std::exception& e) {
    return e.what();
  }
}

}  // namespace schema

TEST(PluginLoader, OldMinorPluginKeysAreReadWithTheirOwnLayout) {
  const rd::PluginScan scan = schema::load("old_minor");
  ASSERT_EQ(scan.loaded.size(), 1u);
  const rd::LoadedPlugin& p = scan.loaded[0];
  EXPECT_EQ(p.abi_minor, 1u);
  ASSERT_EQ(p.descriptor->config_key_count, 3u);
  const char* names[] = {"count", "label", "delay"};
  for (uint32_t i = 0; i < 3; ++i) {
    const rd_config_key k = rd::config_key_at(*p.descriptor, i);
    EXPECT_STREQ(k.name, names[i]) << i;
    EXPECT_EQ(k.flags, 0u) << i;
    EXPECT_EQ(k.allowed_values, nullptr) << i;
  }
  EXPECT_STREQ(rd::config_key_at(*p.descriptor, 1).env, "OLD_MINOR_LABEL");
  EXPECT_STREQ(rd::config_key_at(*p.descriptor, 2).default_value, "1s");
}

TEST(PluginLoader, OldMinorPluginConfigResolvesWithoutConstraintsOrValidate) {
  const rd::PluginScan scan = schema::load("old_minor");
  ASSERT_EQ(scan.loaded.size(), 1u);
  // Its xValidate exists in memory but the plugin says 1.1: the host must not call it.
  EXPECT_EQ(rd::validate_fn(*scan.loaded[0].descriptor), nullptr);
  const std::string yaml = "plugins:\n  old_minor:\n    count: -7\n    delay: 5ms\n";
  EXPECT_EQ(schema::errors(scan.loaded[0], yaml, {{"OLD_MINOR_LABEL", "zz"}}), "");
  const rd::Config c = rd::load_config_text(yaml, "t.yaml", {});
  const rd::PluginConfig pc = rd::resolve_plugin_config(c, "old_minor", *scan.loaded[0].descriptor,
                                                        {{"OLD_MINOR_LABEL", "zz"}}, 30'000);
  EXPECT_EQ(pc.json, R"({"count":-7,"delay":5,"label":"zz"})");
  EXPECT_EQ(schema::init_errors("old_minor", yaml), "");
}

TEST(PluginLoader, OldMinorPluginBadIntNamesNoInternalRange) {
  const rd::PluginScan scan = schema::load("old_minor");
  ASSERT_EQ(scan.loaded.size(), 1u);
  const std::string e = schema::errors(scan.loaded[0], "plugins:\n  old_minor:\n    count: x1\n");
  EXPECT_NE(e.find("t.yaml:3: plugins.old_minor.count: must be an integer, got 'x1'"),
            std::string::npos)
      << e;
  EXPECT_EQ(e.find("4611686018427387904"), std::string::npos) << e;
}

TEST(PluginLoader, DeclaredRangeIsEnforcedAndStated) {
  const rd::PluginScan scan = schema::load("schema");
  ASSERT_EQ(scan.loaded.size(), 1u);
  const auto& p = scan.loaded[0];
  const std::string base = "plugins:\n  schema:\n    token: t\n";
  EXPECT_EQ(schema::errors(p, base), "");
  std::string e = schema::errors(p, base + "    port: 0\n");
  EXPECT_NE(
      e.find("t.yaml:4: plugins.schema.port: must be an integer between 1 and 65535, got '0'"),
      std::string::npos)
      << e;
  e = schema::errors(p, base + "    port: 65536\n");
  EXPECT_NE(e.find("between 1 and 65535, got '65536'"), std::string::npos) << e;
  EXPECT_EQ(schema::errors(p, base + "    port: 65535\n"), "");
  e = schema::errors(p, base + "    wait: 50ms\n");
  EXPECT_NE(e.find("plugins.schema.wait: must be a duration between 100ms and 1m, got 50ms"),
            std::string::npos)
      << e;
  EXPECT_EQ(schema::errors(p, base + "    wait: 1m\n"), "");
}

TEST(PluginLoader, DeclaredAllowedValuesAreEnforced) {
  const rd::PluginScan scan = schema::load("schema");
  ASSERT_EQ(scan.loaded.size(), 1u);
  const auto& p = scan.loaded[0];
  const std::string base = "plugins:\n  schema:\n    token: t\n";
  std::string e = schema::errors(p, base + "    mode: slow\n");
  EXPECT_NE(e.find("plugins.schema.mode: must be one of fast, safe, got 'slow'"), std::string::npos)
      << e;
  EXPECT_EQ(schema::errors(p, base + "    mode: safe\n"), "");
  e = schema::errors(p, base + "    tags: [a, c]\n");
  EXPECT_NE(e.find("plugins.schema.tags: must be one of a, b, got 'c'"), std::string::npos) << e;
  EXPECT_EQ(schema::errors(p, base + "    tags: [b, a]\n"), "");
}

TEST(PluginLoader, RequiredKeyMustBeSetNonEmpty) {
  const rd::PluginScan scan = schema::load("schema");
  ASSERT_EQ(scan.loaded.size(), 1u);
  const auto& p = scan.loaded[0];
  std::string e = schema::errors(p, "plugins:\n  schema:\n    port: 80\n");
  EXPECT_NE(e.find("t.yaml:2: plugins.schema.token: is required and not set: set it under "
                   "plugins.schema in the config file or in env SCHEMA_TOKEN"),
            std::string::npos)
      << e;
  e = schema::errors(p, "plugins:\n  schema:\n    token: \"\"\n");
  EXPECT_NE(e.find("t.yaml:3: plugins.schema.token: is required and empty"), std::string::npos)
      << e;
  EXPECT_NE(schema::errors(p, "").find("plugins.schema.token: is required and not set"),
            std::string::npos);
  EXPECT_EQ(schema::errors(p, "", {{"SCHEMA_TOKEN", "x"}}), "");
}

TEST(PluginLoader, XValidateRunsWithoutCreateAndItsMessageIsKept) {
  std::string e = schema::init_errors("schema", "plugins:\n  schema:\n    token: bad\n");
  EXPECT_NE(e.find("plugin 'schema' ("), std::string::npos) << e;
  EXPECT_NE(e.find("refuses its configuration: plugins.schema.token: refused by xValidate"),
            std::string::npos)
      << e;
  EXPECT_EQ(schema::init_errors("schema", "plugins:\n  schema:\n    token: good\n"), "");
}

TEST(PluginLoader, SeveralFoldersLoadTogetherAndDuplicatesAcrossThemStopStartup) {
  rd::PluginScan scan =
      rd::scan_plugins(std::vector<std::string>{fixture("scripted"), fixture("good_second")});
  ASSERT_EQ(scan.loaded.size(), 2u);
  EXPECT_EQ(scan.loaded[0].name, "scripted");
  EXPECT_EQ(scan.loaded[1].destination_type, "second");
  try {
    rd::scan_plugins(std::vector<std::string>{fixture("good_second"), fixture("good_second")});
    FAIL() << "the same plugin from two folders accepted";
  } catch (const rd::PluginError& e) {
    EXPECT_NE(std::string(e.what()).find("good_second.so"), std::string::npos) << e.what();
  }
}

TEST(PluginLoader, RefusesInconsistentKeyConstraints) {
  const std::string r = refusal("bad_schema");
  EXPECT_NE(r.find("declares a min/max on config key 'label', which is neither RD_CONFIG_INT nor "
                   "DURATION"),
            std::string::npos)
      << r;
}
