// `dlq list` / `dlq replay` on the JetStream dead-letter stream (JetStreamDlqAdmin) against a real
// nats-server: records written by the real sink, listed and replayed as the CLI does.
#include "dlq_admin_jetstream.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <vector>

#include "dead_letter_jetstream.hpp"
#include "test_support.hpp"

namespace {

using rd::DeadLetterEntry;
using rd::DeadLetterRecord;
using rd::DlqSelection;

DeadLetterRecord make_record(const std::string& tenant, int64_t route, bool valid = true) {
  static std::atomic<int> seq{0};
  DeadLetterRecord r;
  r.tenant_id = tenant;
  r.route_id = route;
  r.topic = tenant + "/dev-1/telemetry";
  r.payload_json = R"({"device_id":"dev-1"})";
  r.destination_type = "webhook";
  r.destination_config_json = R"({"url":"https://example.com/hook"})";
  r.error = "HTTP 503";
  r.attempts = 3;
  r.message_id = "ROUTES:" + std::to_string(++seq);  // the sink stores one record per message id
  r.subject = "routes." + tenant;
  r.original = valid ? rdtest::make_job(tenant, route, "webhook", r.destination_config_json,
                                        r.payload_json, r.topic)
                     : "not json";
  r.job_valid = valid;
  return r;
}

class JetStreamDlqAdmin : public ::testing::Test {
 protected:
  void SetUp() override {
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    cfg.Name = "ROUTES_DLQ";
    const char* subjects[] = {"dlq.routes.>"};
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    jsStreamInfo* si = nullptr;
    jsErrCode err = static_cast<jsErrCode>(0);
    ASSERT_EQ(js_AddStream(&si, js_.js(), &cfg, nullptr, &err), NATS_OK);
    jsStreamInfo_Destroy(si);
  }

  // Writes through the real sink; returns the entry's id (its stream sequence).
  int64_t write(const DeadLetterRecord& r) {
    sink_.write(r);
    return static_cast<int64_t>(js_.stream_msgs("ROUTES_DLQ"));
  }

  rdtest::NatsServer server_;
  rdtest::JsClient js_{server_.url()};
  rd::JetStreamDeadLetterSink sink_{js_.js(), js_.conn(), "ROUTES_DLQ", "dlq.routes"};
  rd::JetStreamDlqAdmin admin_{js_.js(), "ROUTES_DLQ", "dlq.routes"};
  std::vector<int64_t> published_;
  rd::DlqPublish publish_ = [this](const DeadLetterEntry& e) { published_.push_back(e.id); };
};

TEST_F(JetStreamDlqAdmin, ListsNewestFirstPerTenantWithLimit) {
  const int64_t a1 = write(make_record("tenant-a", 1));
  write(make_record("tenant-b", 1));
  const int64_t a2 = write(make_record("tenant-a", 2));
  const auto all = admin_.list(std::nullopt, 10);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].id, a2);
  EXPECT_EQ(all[2].id, a1);
  const auto a = admin_.list(std::string("tenant-a"), 1);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].id, a2);
  EXPECT_EQ(a[0].record.route_id, 2);
  EXPECT_TRUE(a[0].record.job_valid);
  EXPECT_FALSE(a[0].replayed_at_ms);
}

TEST_F(JetStreamDlqAdmin, ReplayByIdOnceThenRefusedUnlessForced) {
  const int64_t id = write(make_record("tenant-a", 1));
  DlqSelection sel;
  sel.id = id;
  EXPECT_EQ(admin_.replay(sel, false, publish_).replayed.size(), 1u);
  EXPECT_EQ(published_, (std::vector<int64_t>{id}));
  const auto listed = admin_.list(std::nullopt, 10);
  ASSERT_EQ(listed.size(), 1u) << "the replay marker is not listed as a dead letter";
  EXPECT_TRUE(listed[0].replayed_at_ms);

  EXPECT_THROW(admin_.replay(sel, false, publish_), rd::DlqAlreadyReplayed);
  EXPECT_EQ(admin_.replay(sel, true, publish_).replayed.size(), 1u);
  EXPECT_EQ(published_.size(), 2u);

  sel.id = id + 100;
  EXPECT_THROW(admin_.replay(sel, false, publish_), rd::DlqAdminError);
  const int64_t bad = write(make_record("tenant-a", 1, false));
  sel.id = bad;
  EXPECT_THROW(admin_.replay(sel, true, publish_), rd::DlqAdminError) << "an invalid job";
  EXPECT_EQ(published_.size(), 2u);
}

TEST_F(JetStreamDlqAdmin, ReplayByTenantAndRouteOldestFirstSkipsReplayedAndInvalid) {
  const int64_t r1 = write(make_record("tenant-a", 1));
  const int64_t bad = write(make_record("tenant-a", 1, false));
  write(make_record("tenant-a", 2));
  write(make_record("tenant-b", 1));
  const int64_t r1b = write(make_record("tenant-a", 1));
  DlqSelection sel;
  sel.tenant = "tenant-a";
  sel.route_id = 1;
  auto report = admin_.replay(sel, false, publish_);
  EXPECT_EQ(published_, (std::vector<int64_t>{r1, r1b}));
  ASSERT_EQ(report.invalid.size(), 1u);
  EXPECT_EQ(report.invalid[0].id, bad);

  report = admin_.replay(sel, false, publish_);
  EXPECT_TRUE(report.replayed.empty());
  EXPECT_EQ(report.skipped.size(), 2u);
  EXPECT_EQ(published_.size(), 2u);

  const auto now = std::chrono::system_clock::now().time_since_epoch();
  sel.since_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now + std::chrono::minutes(1))
          .count();  // nothing is that new
  EXPECT_TRUE(admin_.replay(sel, true, publish_).replayed.empty());
}

TEST_F(JetStreamDlqAdmin, AFailedPublishIsReportedAndLeftReplayable) {
  const int64_t first = write(make_record("tenant-a", 1));
  const int64_t second = write(make_record("tenant-a", 1));
  DlqSelection sel;
  sel.tenant = "tenant-a";
  const auto report = admin_.replay(sel, false, [&](const DeadLetterEntry& e) {
    if (e.id == first) throw rd::DlqAdminError("NATS is down");
    published_.push_back(e.id);
  });
  ASSERT_EQ(report.failed.size(), 1u);
  EXPECT_EQ(report.failed[0].entry.id, first);
  EXPECT_EQ(report.failed[0].error, "NATS is down");
  EXPECT_EQ(published_, (std::vector<int64_t>{second})) << "the next one still goes";
  EXPECT_EQ(admin_.replay(sel, false, publish_).replayed.size(), 1u);
  EXPECT_EQ(published_, (std::vector<int64_t>{second, first}));
}

}  // namespace
