// The daemon: wires config, plugins, NATS, the dead-letter sink, the consumer and the endpoints,
// and runs until SIGTERM/SIGINT; SIGHUP reloads the configuration (reload.hpp).
#pragma once

#include "config.hpp"

namespace rd {

// Blocks SIGTERM/SIGINT/SIGHUP (and ignores SIGPIPE) in the calling thread; call first thing in
// main so every thread (ours, nats.c's, plugins') inherits the mask and only the service's signal
// thread sees them.
void block_signals();

// Runs the daemon; returns the process exit code (0 clean shutdown, 2 config/plugin error).
int run_service(const Config& config, const Environment& env);

}  // namespace rd
