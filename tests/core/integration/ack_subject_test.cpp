// rd::parse_ack_subject (how the consumer reads a job's delivery count, stream sequence and
// time) against nats.c's natsMsg_GetMetaData on messages a real nats-server delivered, first and
// redelivered; and the forms it must leave to nats.c.
#include "ack_subject.hpp"

#include <gtest/gtest.h>
#include <nats/nats.h>

#include <string>

#include "test_support.hpp"

namespace rdtest {
namespace {

using rd::parse_ack_subject;

TEST(AckSubject, ReadsWhatNatsCReadsFromRealDeliveriesAndRedeliveries) {
  NatsServer nats;
  JsClient js(nats.url());
  js.ensure_routes_stream();
  for (int i = 0; i < 3; ++i) js.publish("routes.tenant-a", "job " + std::to_string(i));

  natsSubscription* sub = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = "ROUTES";
  ASSERT_EQ(js_PullSubscribe(&sub, js.js(), "routes.>", "ack-subject-test", nullptr, &so, &err),
            NATS_OK)
      << err;
  int compared = 0;
  // Round 1 naks everything at once; round 2 sees each message delivered a second time.
  for (int round = 1; round <= 2; ++round) {
    natsMsgList list{};
    ASSERT_EQ(natsSubscription_Fetch(&list, sub, 3, 5000, &err), NATS_OK) << err;
    ASSERT_EQ(list.Count, 3);
    for (int i = 0; i < list.Count; ++i) {
      natsMsg* m = list.Msgs[i];
      jsMsgMetaData* meta = nullptr;
      ASSERT_EQ(natsMsg_GetMetaData(&meta, m), NATS_OK);
      const char* reply = natsMsg_GetReply(m);
      ASSERT_NE(reply, nullptr);
      const auto ours = parse_ack_subject(reply);
      ASSERT_TRUE(ours.has_value()) << "a subject nats-server wrote was not read: " << reply;
      EXPECT_EQ(ours->delivered, meta->NumDelivered) << reply;
      EXPECT_EQ(ours->delivered, static_cast<uint64_t>(round)) << reply;
      EXPECT_EQ(ours->stream_seq, meta->Sequence.Stream) << reply;
      EXPECT_EQ(ours->timestamp_ns, meta->Timestamp) << reply;
      EXPECT_GT(ours->timestamp_ns, 1'600'000'000'000'000'000) << reply;
      jsMsgMetaData_Destroy(meta);
      if (round == 1) {
        EXPECT_EQ(natsMsg_Nak(m, nullptr), NATS_OK);
      } else {
        EXPECT_EQ(natsMsg_Ack(m, nullptr), NATS_OK);
      }
      ++compared;
    }
    natsMsgList_Destroy(&list);
  }
  EXPECT_EQ(compared, 6);
  natsSubscription_Destroy(sub);
}

TEST(AckSubject, ReadsBothFormsNatsServerWrites) {
  const auto v1 =
      parse_ack_subject("$JS.ACK.ROUTES.route-delivery.3.12345.77.1733550000000000001.5");
  ASSERT_TRUE(v1.has_value());
  EXPECT_EQ(v1->delivered, 3u);
  EXPECT_EQ(v1->stream_seq, 12345u);
  EXPECT_EQ(v1->timestamp_ns, 1733550000000000001);
  // With a domain ("_" = none) and an account hash, and a random last token.
  const auto v2 = parse_ack_subject(
      "$JS.ACK.hub.a1b2c3.ROUTES.route-delivery.4.99.12.1733550000000000002.0.xYz");
  ASSERT_TRUE(v2.has_value());
  EXPECT_EQ(v2->delivered, 4u);
  EXPECT_EQ(v2->stream_seq, 99u);
  EXPECT_EQ(v2->timestamp_ns, 1733550000000000002);
  EXPECT_TRUE(parse_ack_subject("$JS.ACK._.a1b2c3.ROUTES.c.1.2.3.4.5.t").has_value());
}

TEST(AckSubject, LeavesEveryOtherFormToNatsC) {
  for (const char* s : {
           "",
           "$JS.ACK",
           "_INBOX.abc",
           "$JS.ACK.ROUTES.c.3.12345.77.1733550000000000000",          // 8 tokens
           "$JS.ACK.hub.h.ROUTES.c.3.12345.77.1733550000000000000",    // 10
           "$JS.ACK.hub.h.ROUTES.c.3.12345.77.1733550000000000000.5",  // 11: not what servers write
           "$JS.ACK.a.b.ROUTES.c.3.4.5.6.7.t.extra",                   // 13
           "$JS.NAK.ROUTES.c.3.12345.77.1733550000000000000.5",
           "$JS.ACK..c.3.12345.77.1733550000000000000.5",  // no stream
           "$JS.ACK.ROUTES..3.12345.77.1733550000000000000.5",
           "$JS.ACK.ROUTES.c.x.12345.77.1733550000000000000.5",
           "$JS.ACK.ROUTES.c.-3.12345.77.1733550000000000000.5",
           "$JS.ACK.ROUTES.c.+3.12345.77.1733550000000000000.5",
           "$JS.ACK.ROUTES.c.3.12345.77.1733550000000000000.",
           "$JS.ACK.ROUTES.c.3.12345.77.99999999999999999999.5",  // past uint64
           "$JS.ACK.ROUTES.c.3.12345.77.9223372036854775808.5",   // past int64
           "$JS.ACK.ROUTES.c.3 .12345.77.1733550000000000000.5",
       }) {
    EXPECT_FALSE(parse_ack_subject(s).has_value()) << s;
  }
}

}  // namespace
}  // namespace rdtest
