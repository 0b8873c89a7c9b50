#include "max_deliveries.hpp"

#include <time.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "job.hpp"
#include "logging.hpp"
#include "thread_name.hpp"

namespace rd {

std::string advisory_stream_name(const Config::Nats& cfg) {
  return cfg.stream + "_ADVISORIES";
}

std::string advisory_subject(const Config::Nats& cfg) {
  return "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + cfg.stream + "." + cfg.consumer;
}

MaxDeliveriesWatcher::MaxDeliveriesWatcher(const Config& config, NatsClient& nats,
                                           DeadLetterSink& sink, Metrics& metrics)
    : config_(config), nats_(nats), sink_(sink), metrics_(metrics) {}

MaxDeliveriesWatcher::~MaxDeliveriesWatcher() {
  stop();
  if (sub_ != nullptr) natsSubscription_Destroy(sub_);
}

bool MaxDeliveriesWatcher::start() {
  const auto& n = config_.nats;
  const std::string stream = advisory_stream_name(n);
  const std::string durable = n.consumer + "-max-deliveries";
  try {
    jsStreamInfo* si = nullptr;
    jsErrCode err = static_cast<jsErrCode>(0);
    if (js_GetStreamInfo(&si, nats_.js(), stream.c_str(), nullptr, &err) == NATS_OK) {
      jsStreamInfo_Destroy(si);
    } else {
      const std::string subject = advisory_subject(n);
      const char* subjects[] = {subject.c_str()};
      jsStreamConfig cfg;
      jsStreamConfig_Init(&cfg);
      cfg.Name = stream.c_str();
      cfg.Subjects = subjects;
      cfg.SubjectsLen = 1;
      cfg.Storage = js_FileStorage;
      cfg.Retention = js_WorkQueuePolicy;
      cfg.MaxAge = 7LL * 24 * 3600 * 1'000'000'000;
      cfg.Replicas = n.replicas;
      natsStatus s = js_AddStream(&si, nats_.js(), &cfg, nullptr, &err);
      if (s != NATS_OK && err != JSStreamNameExistErr)
        throw NatsError(nats_error_text("create " + stream, s, err));
      if (si) jsStreamInfo_Destroy(si);
    }
    jsConsumerInfo* ci = nullptr;
    if (js_GetConsumerInfo(&ci, nats_.js(), stream.c_str(), durable.c_str(), nullptr, &err) ==
        NATS_OK) {
      jsConsumerInfo_Destroy(ci);
    } else {
      jsConsumerConfig cc;
      jsConsumerConfig_Init(&cc);
      cc.Durable = durable.c_str();
      cc.AckPolicy = js_AckExplicit;
      cc.AckWait = 60LL * 1'000'000'000;
      natsStatus s = js_AddConsumer(&ci, nats_.js(), stream.c_str(), &cc, nullptr, &err);
      if (s != NATS_OK && err != JSConsumerNameExistErr) {
        throw NatsError(nats_error_text("create consumer " + durable, s, err));
      }
      if (ci) jsConsumerInfo_Destroy(ci);
    }
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = stream.c_str();
    so.Consumer = durable.c_str();
    const std::string subject = advisory_subject(n);
    natsStatus s =
        js_PullSubscribe(&sub_, nats_.js(), subject.c_str(), durable.c_str(), nullptr, &so, &err);
    if (s != NATS_OK) throw NatsError(nats_error_text("subscribe " + durable, s, err));
  } catch (const std::exception& e) {
    log::error(
        "max_deliveries_watch_unavailable",
        {log::kv("error", e.what()), log::kv("effect",
                                             "jobs abandoned by a crash on their last attempt are "
                                             "not dead-lettered automatically")});
    return false;
  }
  thread_ = std::thread([this] {
    name_thread("rd-maxdeliver");
    loop();
  });
  return true;
}

void MaxDeliveriesWatcher::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void MaxDeliveriesWatcher::loop() {
  while (!stop_) {
    if (!nats_.connected()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      continue;
    }
    natsMsgList list{};
    jsErrCode err = static_cast<jsErrCode>(0);
    natsStatus s = natsSubscription_Fetch(&list, sub_, 16, 500, &err);
    if (s != NATS_OK) {
      natsMsgList_Destroy(&list);
      if (s != NATS_TIMEOUT) std::this_thread::sleep_for(std::chrono::milliseconds(500));
      continue;
    }
    for (int i = 0; i < list.Count; ++i) {
      natsMsg* m = list.Msgs[i];
      const std::string body(natsMsg_GetData(m), static_cast<size_t>(natsMsg_GetDataLength(m)));
      if (handle(body)) {
        natsMsg_Ack(m, nullptr);
      } else {
        natsMsg_NakWithDelay(m, 5000, nullptr);
      }
    }
    natsMsgList_Destroy(&list);
  }
}

bool MaxDeliveriesWatcher::handle(const std::string& advisory) {
  const auto j = nlohmann::json::parse(advisory, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("stream_seq"))
    return true;  // not ours to fix
  const uint64_t seq = j.value("stream_seq", uint64_t{0});
  const int64_t deliveries = j.value("deliveries", int64_t{0});
  const std::string& stream = config_.nats.stream;
  natsMsg* m = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  natsStatus s = js_GetMsg(&m, nats_.js(), stream.c_str(), seq, nullptr, &err);
  if (s == NATS_NOT_FOUND || err == JSNoMessageFoundErr) return true;  // settled after all
  if (s != NATS_OK) return false;
  DeadLetterRecord r;
  const std::string subject = natsMsg_GetSubject(m);
  const std::string_view data(natsMsg_GetData(m), static_cast<size_t>(natsMsg_GetDataLength(m)));
  JobParse parse;
  parse_job(data, subject_tenant(subject, config_.nats.subject_prefix),
            static_cast<size_t>(config_.delivery.max_job_bytes), parse);
  r.tenant_id = parse.job.tenant_id;
  if (parse.job.has_route_id) r.route_id = parse.job.route_id;
  r.topic = parse.job.topic;
  r.payload_json = parse.job.payload_json;
  r.destination_type = parse.job.destination_type;
  r.destination_config_json = parse.job.destination_config_json;
  r.error = "JetStream stopped redelivering after " + std::to_string(deliveries) +
            " deliveries (max_deliver) without a result from route-delivery; the last attempt was "
            "interrupted "
            "(crash or shutdown)";
  r.attempts = static_cast<uint32_t>(deliveries);
  r.message_id = stream + ":" + std::to_string(seq);
  r.subject = subject;
  r.original.assign(data);
  r.job_valid = parse.ok;
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  r.failed_at_ms = static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
  natsMsg_Destroy(m);
  try {
    sink_.write(r);
  } catch (const std::exception& e) {
    metrics_.dead_letter_errors++;
    log::error("dead_letter_failed",
               {log::kv("sink", sink_.name()), log::kv("message_id", r.message_id),
                log::kv("error", e.what()), log::kv("action", "retrying the advisory later")});
    return false;
  }
  // The consumer will never deliver it again; remove it so the work queue does not keep it forever.
  js_DeleteMsg(nats_.js(), stream.c_str(), seq, nullptr, &err);
  metrics_.dead_lettered++;
  log::warn("dead_lettered_abandoned",
            {log::kv("message_id", r.message_id), log::kv("deliveries", deliveries)});
  return true;
}

}  // namespace rd
