// The bundled `postgresql` destination plugin: the entry point and the descriptor. The config keys
// are in config.hpp, the delivery in writer.hpp; README.md describes what users see.
#include <iterator>
#include <route_delivery/plugin.hpp>

#include "config.hpp"
#include "writer.hpp"

RD_DEFINE_CPP_PLUGIN(rd::postgresql::Writer, "postgresql", "1.0.0", "postgresql",
                     "inserts (tenant_id, topic, payload) into config.table under the tenant's "
                     "row-level security context",
                     rd::postgresql::kConfigKeys, std::size(rd::postgresql::kConfigKeys))
