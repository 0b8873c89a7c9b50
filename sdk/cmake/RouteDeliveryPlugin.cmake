# route_delivery_add_plugin(<name> [NO_INSTALL] [OUTPUT_DIR <dir>] <source>...)
#
# Builds a route-delivery plugin: a MODULE library named <name>.so (no "lib" prefix) with hidden
# visibility, linked against the SDK only. The one exported symbol is rd_plugin_entry
# (RD_PLUGIN_EXPORT). In the route-delivery tree the .so lands in build/lib/route-delivery/plugins.
function(route_delivery_add_plugin name)
  cmake_parse_arguments(RDP "NO_INSTALL" "OUTPUT_DIR" "" ${ARGN})
  add_library(${name} MODULE ${RDP_UNPARSED_ARGUMENTS})
  if(NOT TARGET RouteDelivery::sdk)
    message(FATAL_ERROR "route_delivery_add_plugin(${name}): target RouteDelivery::sdk is missing; "
                        "call find_package(RouteDeliverySDK 1 REQUIRED) first")
  endif()
  target_link_libraries(${name} PRIVATE RouteDelivery::sdk)
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    POSITION_INDEPENDENT_CODE ON)
  if(RDP_OUTPUT_DIR)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${RDP_OUTPUT_DIR})
  elseif(DEFINED RD_PLUGIN_OUTPUT_DIR)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${RD_PLUGIN_OUTPUT_DIR})
  endif()
  if(NOT RDP_NO_INSTALL)
    if(DEFINED RD_PLUGIN_INSTALL_DIR)
      install(TARGETS ${name} LIBRARY DESTINATION ${RD_PLUGIN_INSTALL_DIR})
    else()
      # Always lib/, not CMAKE_INSTALL_LIBDIR: the daemon scans <exe dir>/../lib/route-delivery/plugins
      # whatever the platform calls its library folder.
      install(TARGETS ${name} LIBRARY DESTINATION lib/route-delivery/plugins)
    endif()
  endif()
  # Refuse undefined symbols at link time rather than at dlopen time.
  if(NOT CMAKE_SYSTEM_NAME STREQUAL "Darwin" AND NOT RD_SANITIZE)
    target_link_options(${name} PRIVATE "LINKER:--no-undefined")
  endif()
  # Hidden visibility does not hide C++ template instantiations from namespace std (libstdc++
  # declares it visibility("default")), nor GNU-unique statics: C++ plugins exported dozens of
  # weak std:: symbols. A version script makes rd_plugin_entry the only exported symbol.
  if(NOT CMAKE_SYSTEM_NAME STREQUAL "Darwin")
    set(_rdp_map ${CMAKE_CURRENT_BINARY_DIR}/${name}.exports.map)
    file(GENERATE OUTPUT ${_rdp_map} CONTENT "{\n  global: rd_plugin_entry;\n  local: *;\n};\n")
    target_link_options(${name} PRIVATE "LINKER:--version-script=${_rdp_map}")
    set_property(TARGET ${name} APPEND PROPERTY LINK_DEPENDS ${_rdp_map})
  endif()
endfunction()
