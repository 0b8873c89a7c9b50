// The bundled plugins' tests use the harness installed with the SDK (route_delivery/harness.hpp,
// target RouteDelivery::plugin_harness), so third-party authors test against the same one.
#pragma once

#include <route_delivery/harness.hpp>

namespace rdtest {
using namespace rd::harness;  // PluginHarness, JobSpec, PluginResult, ...
}  // namespace rdtest
