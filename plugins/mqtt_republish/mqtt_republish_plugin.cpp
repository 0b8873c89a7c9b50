// The bundled `mqtt_republish` destination plugin: the entry point and the descriptor. The config
// keys are in config.hpp, the delivery in publisher.hpp; README.md describes what users see.
#include <iterator>
#include <route_delivery/plugin.hpp>

#include "config.hpp"
#include "publisher.hpp"

RD_DEFINE_CPP_PLUGIN(
    rd::mqtt_republish::Publisher, "mqtt_republish", "1.0.0", "mqtt_republish",
    "republishes the payload to an MQTT broker, ok on the broker's acknowledgement",
    rd::mqtt_republish::kConfigKeys, std::size(rd::mqtt_republish::kConfigKeys))
