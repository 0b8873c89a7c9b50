// Sanity checks of the test-only plugins: each has exactly the property the loader and daemon
// tests rely on, and the scripted plugin does what its script says.
#include <dirent.h>
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <route_delivery/plugin.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "plugin_harness.hpp"
#include "test_support.hpp"

namespace {

using namespace std::chrono_literals;
using rdtest::JobSpec;
using rdtest::PluginHarness;

std::string fixture(const std::string& subdir, const std::string& file) {
  return rdtest::test_plugin_dir() + "/" + subdir + "/" + file;
}

std::set<std::string> files_in(const std::string& dir) {
  std::set<std::string> names;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name != "." && name != "..") names.insert(name);
    }
    ::closedir(d);
  }
  return names;
}

// dlopen()s like the host does; the handle is never closed (plugins are never unloaded).
void* open_plugin(const std::string& path) {
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  const char* error = handle == nullptr ? ::dlerror() : nullptr;
  EXPECT_NE(handle, nullptr) << path << ": " << (error != nullptr ? error : "");
  return handle;
}

const rd_plugin_descriptor* entry_of(const std::string& path) {
  void* handle = open_plugin(path);
  if (handle == nullptr) return nullptr;
  auto entry = reinterpret_cast<rd_plugin_entry_fn>(::dlsym(handle, RD_PLUGIN_ENTRY_SYMBOL));
  EXPECT_NE(entry, nullptr) << path << " has no " << RD_PLUGIN_ENTRY_SYMBOL;
  return entry != nullptr ? entry() : nullptr;
}

constexpr size_t kFullDescriptor = sizeof(rd_plugin_descriptor);

// ---- Folder layout: a daemon pointed at one folder loads exactly these files ----------------

TEST(FixtureFolders, EachHoldsExactlyItsPlugins) {
  EXPECT_EQ(files_in(rdtest::test_plugin_dir() + "/scripted"),
            std::set<std::string>{"scripted.so"});
  EXPECT_EQ(files_in(rdtest::test_plugin_dir() + "/dup_a"),
            (std::set<std::string>{"dup_one.so", "dup_two.so"}));
  for (const char* name : {"broken_major", "broken_small", "broken_nosym", "broken_null",
                           "broken_create", "good_second", "newer_minor"}) {
    EXPECT_EQ(files_in(rdtest::test_plugin_dir() + "/" + name),
              std::set<std::string>{std::string(name) + ".so"});
  }
}

// ---- Broken plugins: broken in exactly one way --------------------------------------------

TEST(BrokenPlugins, MajorIsOneAheadAndNothingElseIsWrong) {
  const rd_plugin_descriptor* d = entry_of(fixture("broken_major", "broken_major.so"));
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->abi_major, RD_ABI_VERSION_MAJOR + 1u);
  EXPECT_EQ(d->struct_size, kFullDescriptor);
  EXPECT_STREQ(d->name, "broken_major");
  EXPECT_NE(d->xCreate, nullptr);
}

TEST(BrokenPlugins, SmallDescriptorCoversOnlyTheVersionFields) {
  const rd_plugin_descriptor* d = entry_of(fixture("broken_small", "broken_small.so"));
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->struct_size, 16u);
  EXPECT_EQ(d->abi_major, static_cast<uint32_t>(RD_ABI_VERSION_MAJOR));
  EXPECT_FALSE(RD_HAS_FIELD(d, rd_plugin_descriptor, name));
  EXPECT_FALSE(RD_HAS_FIELD(d, rd_plugin_descriptor, destination_type));
  EXPECT_FALSE(RD_HAS_FIELD(d, rd_plugin_descriptor, xDeliver));
}

TEST(BrokenPlugins, NoSymHasNoEntryButIsALoadableLibrary) {
  void* handle = open_plugin(fixture("broken_nosym", "broken_nosym.so"));
  ASSERT_NE(handle, nullptr);
  EXPECT_EQ(::dlsym(handle, RD_PLUGIN_ENTRY_SYMBOL), nullptr);
  EXPECT_NE(::dlsym(handle, "route_delivery_plugin_entry"), nullptr);
}

TEST(BrokenPlugins, NullEntryReturnsNull) {
  void* handle = open_plugin(fixture("broken_null", "broken_null.so"));
  ASSERT_NE(handle, nullptr);
  auto entry = reinterpret_cast<rd_plugin_entry_fn>(::dlsym(handle, RD_PLUGIN_ENTRY_SYMBOL));
  ASSERT_NE(entry, nullptr);
  EXPECT_EQ(entry(), nullptr);
}

TEST(BrokenPlugins, DupPluginsAreValidAndClaimTheSameType) {
  const rd_plugin_descriptor* one = entry_of(fixture("dup_a", "dup_one.so"));
  const rd_plugin_descriptor* two = entry_of(fixture("dup_a", "dup_two.so"));
  ASSERT_NE(one, nullptr);
  ASSERT_NE(two, nullptr);
  EXPECT_STREQ(one->name, "dup_one");
  EXPECT_STREQ(two->name, "dup_two");
  EXPECT_STREQ(one->destination_type, "dup");
  EXPECT_STREQ(two->destination_type, "dup");
  PluginHarness a(fixture("dup_a", "dup_one.so"), "{}");
  PluginHarness b(fixture("dup_a", "dup_two.so"), "{}");
  EXPECT_EQ(a.deliver_sync(JobSpec{})->outcome, RD_OUTCOME_OK);
  EXPECT_EQ(b.deliver_sync(JobSpec{})->outcome, RD_OUTCOME_OK);
}

TEST(BrokenPlugins, CreateFailsWithItsMessage) {
  const rd_plugin_descriptor* d = entry_of(fixture("broken_create", "broken_create.so"));
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->struct_size, kFullDescriptor);
  ASSERT_EQ(d->config_key_count, 1u);
  EXPECT_STREQ(d->config_keys[0].name, "x");
  try {
    PluginHarness h(fixture("broken_create", "broken_create.so"), R"({"x":"set"})");
    FAIL() << "xCreate succeeded";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("example create failure: set plugins.broken_create.x"),
              std::string::npos)
        << e.what();
  }
}

// ---- Valid extra plugins ----------------------------------------------------------------

TEST(GoodPlugins, SecondServesTypeSecond) {
  PluginHarness h(fixture("good_second", "good_second.so"), "{}");
  EXPECT_STREQ(h.descriptor().destination_type, "second");
  EXPECT_EQ(h.deliver_sync(JobSpec{})->outcome, RD_OUTCOME_OK);
}

TEST(GoodPlugins, NewerMinorHasALargerDescriptorAndWorks) {
  PluginHarness h(fixture("newer_minor", "newer_minor.so"), "{}");
  EXPECT_EQ(h.descriptor().abi_major, static_cast<uint32_t>(RD_ABI_VERSION_MAJOR));
  EXPECT_EQ(h.descriptor().abi_minor, RD_ABI_VERSION_MINOR + 1u);
  EXPECT_GT(h.descriptor().struct_size, kFullDescriptor);
  EXPECT_EQ(h.deliver_sync(JobSpec{})->outcome, RD_OUTCOME_OK);
}

// ---- scripted ---------------------------------------------------------------------------

class Scripted : public ::testing::Test {
 protected:
  static std::string path() { return fixture("scripted", "scripted.so"); }

  static JobSpec job(const std::string& destination_config, uint32_t attempt = 1) {
    JobSpec j;
    j.destination_config_json = destination_config;
    j.attempt = attempt;
    return j;
  }

  PluginHarness plugin_{path(), R"({"worker_threads":2})"};
};

TEST_F(Scripted, DescriptorAndConfigKeys) {
  const rd_plugin_descriptor& d = plugin_.descriptor();
  EXPECT_STREQ(d.name, "scripted");
  EXPECT_STREQ(d.destination_type, "test");
  ASSERT_EQ(d.config_key_count, 4u);
  EXPECT_STREQ(d.config_keys[2].name, "override");
  EXPECT_STREQ(d.config_keys[3].name, "destination_key");
  EXPECT_EQ(d.config_keys[3].type, RD_CONFIG_BOOL);
  EXPECT_STREQ(d.config_keys[3].default_value, "false");
  EXPECT_STREQ(d.config_keys[0].name, "worker_threads");
  EXPECT_EQ(d.config_keys[0].type, RD_CONFIG_INT);
  EXPECT_STREQ(d.config_keys[0].default_value, "2");
}

TEST_F(Scripted, DeferCompletesDeferWithItsDelay) {
  auto r = plugin_.deliver_sync(job(R"({"script":["defer:1500"]})", 1));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->outcome, RD_OUTCOME_DEFER);
  EXPECT_EQ(r->retry_after_ms, 1500);
  EXPECT_EQ(r->reason, "scripted unavailable at attempt 1");
}

TEST_F(Scripted, RetryThenOkByAttempt) {
  const std::string script = R"({"script":["retry","ok"]})";
  auto first = plugin_.deliver_sync(job(script, 1));
  ASSERT_TRUE(first);
  EXPECT_EQ(first->outcome, RD_OUTCOME_RETRY);
  EXPECT_EQ(first->retry_after_ms, -1);
  EXPECT_EQ(first->reason, "scripted retry at attempt 1");
  auto second = plugin_.deliver_sync(job(script, 2));
  ASSERT_TRUE(second);
  EXPECT_EQ(second->outcome, RD_OUTCOME_OK);
}

TEST_F(Scripted, LastEntryRepeats) {
  auto r = plugin_.deliver_sync(job(R"({"script":["ok","permanent"]})", 5));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outcome, RD_OUTCOME_PERMANENT);
  EXPECT_EQ(r->reason, "scripted permanent failure at attempt 5");
}

TEST_F(Scripted, NoScriptMeansOk) {
  auto r = plugin_.deliver_sync(job("{}"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outcome, RD_OUTCOME_OK);
}

TEST_F(Scripted, RetryWithSuggestedDelay) {
  auto r = plugin_.deliver_sync(job(R"({"script":["retry:1500"]})"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outcome, RD_OUTCOME_RETRY);
  EXPECT_EQ(r->retry_after_ms, 1500);
}

TEST_F(Scripted, NeverCompletes) {
  const uint64_t id = plugin_.deliver(job(R"({"script":["never"]})"));
  EXPECT_FALSE(plugin_.wait(id, 300ms));
}

TEST_F(Scripted, TwiceCompletesTwice) {
  const uint64_t id = plugin_.deliver(job(R"({"script":["twice"]})"));
  auto first = plugin_.wait(id, 5s);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->outcome, RD_OUTCOME_OK);
  EXPECT_TRUE(rdtest::wait_until([&] { return plugin_.wait(id, 0ms)->completions == 2; }, 5s));
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(plugin_.wait(id, 0ms)->completions, 2);
}

TEST_F(Scripted, ThrowBecomesPermanentWithTheExceptionText) {
  auto r = plugin_.deliver_sync(job(R"({"script":["throw"]})"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outcome, RD_OUTCOME_PERMANENT);
  EXPECT_EQ(r->reason, "plugin exception: scripted exception");
  EXPECT_EQ(r->completions, 1);
}

TEST_F(Scripted, SlowCompletesOkAfterTheDelay) {
  const auto start = std::chrono::steady_clock::now();
  const uint64_t id = plugin_.deliver(job(R"({"script":["slow:300"]})"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 200ms) << "deliver must not block";
  auto r = plugin_.wait(id, 5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outcome, RD_OUTCOME_OK);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 300ms);
}

TEST_F(Scripted, AsyncCompletesOk) {
  auto r = plugin_.deliver_sync(job(R"({"script":["async"]})"), 5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->outcome, RD_OUTCOME_OK);
}

TEST_F(Scripted, BadScriptsArePermanent) {
  for (const char* config :
       {"not json", R"({"script":[]})", R"({"script":"ok"})", R"({"script":[1]})",
        R"({"script":["bogus"]})", R"({"script":["slow:x"]})"}) {
    auto r = plugin_.deliver_sync(job(config));
    ASSERT_TRUE(r) << config;
    EXPECT_EQ(r->outcome, RD_OUTCOME_PERMANENT) << config;
    EXPECT_EQ(r->reason.rfind("scripted: ", 0), 0u) << config << " -> " << r->reason;
  }
}

TEST_F(Scripted, RecordsOneLinePerAttempt) {
  rdtest::TempDir dir;
  const std::string record = dir.file("attempts.txt");
  const std::string config = R"({"script":["retry","ok"],"record":")" + record + R"("})";
  JobSpec j = job(config, 1);
  j.message_id = "ROUTES:42";
  const auto before = std::chrono::system_clock::now();
  ASSERT_TRUE(plugin_.deliver_sync(j));
  j.attempt = 2;
  ASSERT_TRUE(plugin_.deliver_sync(j));
  const auto lines = rdtest::read_lines(record);
  ASSERT_EQ(lines.size(), 2u);
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  const int64_t before_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(before.time_since_epoch()).count();
  for (size_t i = 0; i < lines.size(); ++i) {
    char id[64] = {0}, entry[64] = {0};
    unsigned attempt = 0;
    long long wall = 0;
    ASSERT_EQ(std::sscanf(lines[i].c_str(), "%63s %u %lld %63s", id, &attempt, &wall, entry), 4)
        << lines[i];
    EXPECT_STREQ(id, "ROUTES:42");
    EXPECT_EQ(attempt, i + 1);
    EXPECT_GE(wall, before_ms);
    EXPECT_LE(wall, now_ms);
    EXPECT_STREQ(entry, i == 0 ? "retry" : "ok");
  }
  EXPECT_EQ(plugin_.metrics()["scripted_attempts_total{}"], 2.0);
}

TEST_F(Scripted, ManyConcurrentAsyncCompletionsAllArrive) {
  std::vector<uint64_t> ids;
  for (int i = 0; i < 200; ++i) {
    ids.push_back(
        plugin_.deliver(job(i % 2 ? R"({"script":["async"]})" : R"({"script":["slow:5"]})")));
  }
  for (uint64_t id : ids) {
    auto r = plugin_.wait(id, 5s);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->completions, 1);
  }
}

TEST(ScriptedConfig, HealthFollowsConfig) {
  std::string detail;
  PluginHarness healthy(fixture("scripted", "scripted.so"), "{}");
  EXPECT_TRUE(healthy.health(detail));
  PluginHarness sick(fixture("scripted", "scripted.so"), R"({"healthy":false})");
  EXPECT_FALSE(sick.health(detail));
  EXPECT_EQ(detail, "scripted: configured unhealthy");
}

// Off by default: no key for any job, so the host keys every job by its route, as it did before
// the option existed. On: the destination_config's "key", when it has one.
TEST(ScriptedConfig, DestinationKeyIsOptIn) {
  JobSpec keyed, unkeyed;
  keyed.destination_config_json = R"({"script":["ok"],"key":"dest-7"})";
  unkeyed.destination_config_json = R"({"script":["ok"]})";
  PluginHarness off(fixture("scripted", "scripted.so"), "{}");
  EXPECT_EQ(off.destination(keyed), "");
  EXPECT_EQ(off.destination(unkeyed), "");
  PluginHarness on(fixture("scripted", "scripted.so"), R"({"destination_key":true})");
  EXPECT_EQ(on.destination(keyed), "dest-7");
  EXPECT_EQ(on.destination(unkeyed), "");
}

TEST(ScriptedConfig, BadWorkerThreadsIsACreateError) {
  try {
    PluginHarness h(fixture("scripted", "scripted.so"), R"({"worker_threads":0})");
    FAIL() << "xCreate succeeded";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("plugins.scripted.worker_threads"), std::string::npos)
        << e.what();
  }
}

TEST(ScriptedConfig, DestroyJoinsQuicklyWithPendingJobs) {
  std::optional<PluginHarness> h;
  h.emplace(fixture("scripted", "scripted.so"), R"({"worker_threads":3})");
  JobSpec never, slow;
  never.destination_config_json = R"({"script":["never"]})";
  slow.destination_config_json = R"({"script":["slow:60000"]})";
  h->deliver(never);
  const uint64_t slow_id = h->deliver(slow);
  EXPECT_FALSE(h->wait(slow_id, 50ms));
  const auto start = std::chrono::steady_clock::now();
  h.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
}

}  // namespace
