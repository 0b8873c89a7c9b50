// mqtt_republish's delivery: republishes each job's payload to an MQTT broker over one long-lived
// libmosquitto client, answering a job only once the broker has acknowledged it.
//
// Flow per job: plan (topic template, QoS, retain; permanent on any rule broken; publish_plan.hpp)
// -> DEFER at once while disconnected (the broker could not be tried: no attempt is spent) ->
// mosquitto_publish (the message id maps back to the delivery) -> the on_publish callback
// (PUBACK/PUBCOMP, or socket write for QoS 0) completes it. One network thread runs the connection
// (connect, back-off, reconnect, reading and writing) and also expires publishes that got no
// acknowledgement within publish_timeout; a lost connection fails every unacknowledged publish at
// once as RETRY (it was sent; clean session: nothing is resent after a reconnect) and defers every
// job still waiting for room in the window (never sent).
#pragma once

#include <route_delivery/plugin.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace rd::mqtt_republish {

// The plugin instance, in the shape rd::PluginAdapter expects (mqtt_republish_plugin.cpp).
class Publisher {
 public:
  // Parses plugins.mqtt_republish (config.hpp), starts the network thread and waits up to
  // connect_timeout for the first connection. Throws rd::ConfigKeyError naming a bad key.
  // xValidate: the config checks of create(), connecting nowhere.
  static void validate(const char* config_json);
  static std::unique_ptr<Publisher> create(const rd_host_services* services,
                                           const char* config_json);
  ~Publisher();  // joins the network thread; anything unanswered is answered RETRY
  Publisher(const Publisher&) = delete;
  Publisher& operator=(const Publisher&) = delete;

  // xDeliver: plans and publishes, or completes at once (never blocks on the network).
  void deliver(uint64_t id, const rd_job& job);
  // xDestination: "mqtt://host:port", one key for every job (0 when not configured).
  size_t destination(const rd_job& job, char* key, size_t key_len);
  // xHealth: connected, or since when and why not.
  bool health(std::string& detail);

 private:
  class Impl;
  explicit Publisher(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rd::mqtt_republish
