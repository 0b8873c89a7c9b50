// Safety net for jobs JetStream gave up on without the host settling them (the daemon crashed or
// was stopped during the job's last attempt). The server announces each with a MAX_DELIVERIES
// advisory; we capture those advisories in a stream (so none is missed while no daemon runs),
// and for each one fetch the job by sequence, dead-letter it, and remove it from the work queue.
#pragma once

#include <nats/nats.h>

#include <atomic>
#include <string>
#include <thread>

#include "config.hpp"
#include "dead_letter.hpp"
#include "metrics.hpp"
#include "nats_client.hpp"

namespace rd {

std::string advisory_stream_name(const Config::Nats& cfg);
std::string advisory_subject(const Config::Nats& cfg);

class MaxDeliveriesWatcher {
 public:
  MaxDeliveriesWatcher(const Config& config, NatsClient& nats, DeadLetterSink& sink,
                       Metrics& metrics);
  ~MaxDeliveriesWatcher();
  // Creates the advisory stream and its durable consumer when missing, then starts the thread.
  // Logs and returns false when that is impossible (the service still runs).
  bool start();
  void stop();

 private:
  void loop();
  // Returns true when the advisory is fully handled (ack it), false to retry later.
  bool handle(const std::string& advisory);

  const Config& config_;
  NatsClient& nats_;
  DeadLetterSink& sink_;
  Metrics& metrics_;
  natsSubscription* sub_ = nullptr;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace rd
