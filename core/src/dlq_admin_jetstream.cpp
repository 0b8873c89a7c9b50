#include "dlq_admin_jetstream.hpp"

#include <limits>
#include <utility>

#include "dead_letter_jetstream.hpp"
#include "nats_client.hpp"

namespace rd {

JetStreamDlqAdmin::JetStreamDlqAdmin(jsCtx* js, std::string stream, std::string subject_prefix)
    : js_(js), stream_(std::move(stream)), prefix_(std::move(subject_prefix)) {}

std::string JetStreamDlqAdmin::marker_subject(int64_t seq) const {
  return prefix_ + "._replayed." + std::to_string(seq);
}

std::vector<DeadLetterEntry> JetStreamDlqAdmin::read(const std::optional<std::string>& tenant,
                                                     size_t limit) {
  std::vector<DeadLetterEntry> out;
  jsStreamInfo* si = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&si, js_, stream_.c_str(), nullptr, &err);
  if (s != NATS_OK) throw DlqAdminError(nats_error_text("dead-letter stream " + stream_, s, err));
  const uint64_t first = si->State.FirstSeq, last = si->State.LastSeq;
  jsStreamInfo_Destroy(si);
  for (uint64_t seq = last; seq >= first && seq > 0 && out.size() < limit; --seq) {
    natsMsg* m = nullptr;
    if (js_GetMsg(&m, js_, stream_.c_str(), seq, nullptr, &err) != NATS_OK) continue;
    const std::string subject = natsMsg_GetSubject(m);
    const std::string data(natsMsg_GetData(m), static_cast<size_t>(natsMsg_GetDataLength(m)));
    const int64_t ts = natsMsg_GetTime(m) / 1'000'000;
    natsMsg_Destroy(m);
    if (subject.find("._replayed.") != std::string::npos) continue;
    DeadLetterEntry e;
    if (!parse_dead_letter_record(data, e.record)) continue;
    if (tenant && e.record.tenant_id != *tenant) continue;
    e.id = static_cast<int64_t>(seq);
    e.created_at_ms = ts;
    natsMsg* marker = nullptr;
    if (js_GetLastMsg(&marker, js_, stream_.c_str(), marker_subject(e.id).c_str(), nullptr, &err) ==
        NATS_OK) {
      e.replayed_at_ms = natsMsg_GetTime(marker) / 1'000'000;
      natsMsg_Destroy(marker);
    }
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<DeadLetterEntry> JetStreamDlqAdmin::list(std::optional<std::string> tenant, int limit) {
  return read(tenant, static_cast<size_t>(limit <= 0 ? 100 : limit));
}

DlqReplayReport JetStreamDlqAdmin::replay(const DlqSelection& selection, bool force,
                                          const DlqPublish& publish) {
  if (!selection.id && !selection.tenant) throw DlqAdminError("dlq replay needs --id or --tenant");
  const size_t all = std::numeric_limits<size_t>::max();
  std::vector<DeadLetterEntry> candidates;
  if (selection.id) {
    for (auto& e : read(std::nullopt, all)) {
      if (e.id == *selection.id) candidates.push_back(std::move(e));
    }
    if (candidates.empty()) {
      throw DlqAdminError("no dead letter with id " + std::to_string(*selection.id) +
                          " in stream " + stream_);
    }
    const DeadLetterEntry& e = candidates.front();
    if (e.replayed_at_ms && !force) {
      throw DlqAlreadyReplayed("dead letter " + std::to_string(e.id) +
                               " was already replayed; pass --force to replay it again");
    }
    if (!e.record.job_valid) {
      throw DlqAdminError("dead letter " + std::to_string(e.id) + " holds an invalid job (" +
                          e.record.error +
                          "), which would only fail again: fix it and publish it instead");
    }
  } else {
    for (auto& e : read(selection.tenant, all)) {
      if (selection.route_id && (!e.record.route_id || *e.record.route_id != *selection.route_id))
        continue;
      if (selection.since_ms && e.created_at_ms < *selection.since_ms) continue;
      candidates.push_back(std::move(e));
    }
  }

  DlqReplayReport report;
  // read() goes newest first; replay oldest first.
  for (auto it = candidates.rbegin(); it != candidates.rend(); ++it) {
    DeadLetterEntry& e = *it;
    if (e.replayed_at_ms && !force) {
      report.skipped.push_back(std::move(e));
      continue;
    }
    if (!e.record.job_valid) {
      report.invalid.push_back(std::move(e));
      continue;
    }
    try {
      publish(e);
    } catch (const std::exception& ex) {
      report.failed.push_back({std::move(e), ex.what()});
      continue;
    }
    const std::string marker = marker_subject(e.id);
    jsErrCode err = static_cast<jsErrCode>(0);
    const natsStatus ms = js_Publish(nullptr, js_, marker.c_str(), "1", 1, nullptr, &err);
    if (ms != NATS_OK) {
      report.warnings.push_back("dead letter " + std::to_string(e.id) +
                                " was replayed but could not be marked (" +
                                nats_error_text("publish " + marker, ms, err) +
                                "); a second replay would not be refused");
    }
    report.replayed.push_back(std::move(e));
  }
  return report;
}

}  // namespace rd
