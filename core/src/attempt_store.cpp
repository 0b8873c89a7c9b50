#include "attempt_store.hpp"

#include <time.h>

#include <cstdlib>

#include "logging.hpp"
#include "nats_client.hpp"

namespace rd {
namespace {
// Entries outlive the longest a job may wait by this much (redeliveries after give_up_after).
constexpr int64_t kTtlMarginMs = 3'600'000;
constexpr int64_t kMaxBytes = 256ll << 20;
constexpr int64_t kReadTimeoutMs = 1000;
constexpr int64_t kSkipAfterErrorNs = 5'000'000'000;

int64_t mono_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}
}  // namespace

AttemptStore::AttemptStore(const Config& config, natsConnection* nc, jsCtx* js)
    : config_(config),
      nc_(nc),
      js_(js),
      bucket_(config.nats.attempts_bucket),
      prefix_("$KV." + config.nats.attempts_bucket + ".") {}

AttemptStore::~AttemptStore() {
  if (kv_ != nullptr) kvStore_Destroy(kv_);
  if (kv_js_ != nullptr) jsCtx_Destroy(kv_js_);
}

bool AttemptStore::open() {
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = kReadTimeoutMs;
  if (natsConnection_JetStream(&kv_js_, nc_, &jo) != NATS_OK) {
    kv_js_ = nullptr;
    log::error("attempt_store_unavailable",
               {log::kv("bucket", bucket_), log::kv("error", "cannot create a JetStream context")});
    return false;
  }
  // As many replicas as the stream whose jobs it counts: a node lost must not lose the counts.
  int replicas = config_.nats.replicas;
  jsStreamInfo* si = nullptr;
  if (js_GetStreamInfo(&si, js_, config_.nats.stream.c_str(), nullptr, nullptr) == NATS_OK) {
    if (si->Config != nullptr && si->Config->Replicas > replicas) replicas = si->Config->Replicas;
    jsStreamInfo_Destroy(si);
  }
  natsStatus s = js_KeyValue(&kv_, kv_js_, bucket_.c_str());
  if (s != NATS_OK) {
    kv_ = nullptr;
    kvConfig kc;
    kvConfig_Init(&kc);
    kc.Bucket = bucket_.c_str();
    kc.Description = "route-delivery: failed attempts per job (stream sequence)";
    kc.History = 1;
    kc.TTL = (config_.delivery.give_up_after_ms + kTtlMarginMs) * 1'000'000;
    kc.MaxBytes = kMaxBytes;
    kc.StorageType = js_FileStorage;
    kc.Replicas = replicas;
    s = js_CreateKeyValue(&kv_, kv_js_, &kc);
    if (s != NATS_OK) {
      kv_ = nullptr;
      // A bucket created meanwhile by another instance binds now.
      if (js_KeyValue(&kv_, kv_js_, bucket_.c_str()) != NATS_OK) {
        kv_ = nullptr;
        log::error("attempt_store_unavailable",
                   {log::kv("bucket", bucket_), log::kv("error", nats_error_text("key-value", s)),
                    log::kv("effect",
                            "attempts are counted by JetStream's delivery count, which also "
                            "counts deferrals: jobs may be dead-lettered before nats.max_deliver "
                            "real attempts"),
                    log::kv("fix",
                            "allow the account to create the bucket, or create it: nats kv "
                            "add " +
                                bucket_ + " --history 1")});
        return false;
      }
    } else {
      log::info("attempt_store_created",
                {log::kv("bucket", bucket_), log::kv("replicas", replicas)});
    }
  }
  return true;
}

std::string AttemptStore::subject(uint64_t stream_seq) const {
  return prefix_ + std::to_string(stream_seq);
}

// Values: "<failed>" or "<failed> dl <reason>".
std::optional<AttemptStore::Entry> AttemptStore::read(uint64_t stream_seq) {
  if (kv_ == nullptr) return std::nullopt;
  if (mono_ns() < skip_until_ns_.load(std::memory_order_relaxed)) return std::nullopt;
  kvEntry* e = nullptr;
  const std::string key = std::to_string(stream_seq);
  const natsStatus s = kvStore_Get(&e, kv_, key.c_str());
  if (s == NATS_NOT_FOUND) return Entry{};
  if (s != NATS_OK) {
    read_errors_.fetch_add(1, std::memory_order_relaxed);
    skip_until_ns_.store(mono_ns() + kSkipAfterErrorNs, std::memory_order_relaxed);
    return std::nullopt;
  }
  Entry out;
  if (kvEntry_Operation(e) == kvOp_Put) {
    const std::string value(static_cast<const char*>(kvEntry_Value(e)),
                            static_cast<size_t>(kvEntry_ValueLen(e)));
    char* end = nullptr;
    out.failed = static_cast<uint32_t>(std::strtoul(value.c_str(), &end, 10));
    const size_t rest = static_cast<size_t>(end - value.c_str());
    if (value.compare(rest, 4, " dl ") == 0) {
      out.dead_letter = true;
      out.reason = value.substr(rest + 4);
    }
  }
  kvEntry_Destroy(e);
  return out;
}

void AttemptStore::record_dead_letter(uint64_t stream_seq, uint32_t failed,
                                      const std::string& reason) {
  if (kv_ == nullptr) return;
  const std::string value = std::to_string(failed) + " dl " + reason;
  natsConnection_Publish(nc_, subject(stream_seq).c_str(), value.data(),
                         static_cast<int>(value.size()));
}

void AttemptStore::record(uint64_t stream_seq, uint32_t failed) {
  if (kv_ == nullptr) return;
  const std::string value = std::to_string(failed);
  natsConnection_Publish(nc_, subject(stream_seq).c_str(), value.data(),
                         static_cast<int>(value.size()));
}

void AttemptStore::forget(uint64_t stream_seq) {
  if (kv_ == nullptr) return;
  natsMsg* m = nullptr;
  const std::string subj = subject(stream_seq);
  if (natsMsg_Create(&m, subj.c_str(), nullptr, nullptr, 0) != NATS_OK) return;
  natsMsgHeader_Set(m, "KV-Operation", "DEL");
  natsConnection_PublishMsg(nc_, m);
  natsMsg_Destroy(m);
}

}  // namespace rd
