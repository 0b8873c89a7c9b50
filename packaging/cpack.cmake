# Debian packages with CPack: `route-delivery` (daemon, bundled plugins, example config as
# /etc/route-delivery/route-delivery.yaml, systemd unit, system user made in postinst) and
# `route-delivery-dev` (the plugin SDK: C header, C++ helper, CMake package).
#
#   cmake -S . -B build-deb -DCMAKE_BUILD_TYPE=Release -DRD_BUILD_TESTS=OFF -DRD_BUILD_BENCH=OFF \
#         -DCMAKE_INSTALL_PREFIX=/usr -DRD_DEB_PACKAGE=ON
#   cmake --build build-deb -j && (cd build-deb && cpack -G DEB)
#
# scripts/package-test does that and installs the result in a fresh bookworm root.

if(RD_DEB_PACKAGE)
  if(NOT CMAKE_INSTALL_PREFIX STREQUAL "/usr")
    message(FATAL_ERROR "RD_DEB_PACKAGE=ON needs -DCMAKE_INSTALL_PREFIX=/usr")
  endif()
  # Absolute destinations: only for the package (a plain `cmake --install --prefix` must not
  # write to /etc).
  install(FILES config/route-delivery.example.yaml DESTINATION /etc/route-delivery
          RENAME route-delivery.yaml)
  install(FILES packaging/systemd/route-delivery.service DESTINATION /lib/systemd/system)
  install(FILES README.md docs/operations.md docs/configuration.md
          DESTINATION share/doc/route-delivery)
  install(FILES docs/plugin-authoring.md DESTINATION share/doc/route-delivery-dev COMPONENT sdk)
endif()

set(CPACK_PACKAGE_NAME route-delivery)
set(CPACK_PACKAGE_VENDOR "route-delivery")
set(CPACK_PACKAGE_CONTACT "route-delivery maintainers <route-delivery@localhost>")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_GENERATOR DEB)
set(CPACK_STRIP_FILES ON)   # the Release binaries, without their symbol tables
set(CPACK_DEB_COMPONENT_INSTALL ON)
# "Unspecified" = every install() rule without a component: the daemon and the plugins.
set(CPACK_COMPONENTS_ALL Unspecified sdk)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://example.invalid/route-delivery")

set(CPACK_DEBIAN_UNSPECIFIED_PACKAGE_NAME route-delivery)
set(CPACK_DEBIAN_UNSPECIFIED_PACKAGE_SHLIBDEPS ON)   # Depends from dpkg-shlibdeps
set(CPACK_DEBIAN_UNSPECIFIED_PACKAGE_DEPENDS "passwd")
set(CPACK_DEBIAN_UNSPECIFIED_PACKAGE_SUGGESTS "nats-server, postgresql-client")
# Descriptions: the first line is the synopsis, the rest the extended description (CPack indents
# it; an empty line is a paragraph break). CPACK_PACKAGE_DESCRIPTION_SUMMARY stays unset, or CPack
# would put it in front of both.
set(CPACK_DEBIAN_UNSPECIFIED_DESCRIPTION
"deliver NATS JetStream route jobs to webhook, MQTT and PostgreSQL
route-delivery consumes route jobs from the JetStream stream ROUTES and
delivers each through a destination plugin (webhook, mqtt_republish,
postgresql; loaded from /usr/lib/route-delivery/plugins), with central
retry, back-off and dead-lettering.

The service runs as the system user route-delivery (systemd unit
route-delivery.service), configured by /etc/route-delivery/route-delivery.yaml
and /etc/default/route-delivery.")
set(CPACK_DEBIAN_UNSPECIFIED_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/packaging/debian/postinst
    ${PROJECT_SOURCE_DIR}/packaging/debian/prerm
    ${PROJECT_SOURCE_DIR}/packaging/debian/postrm
    ${PROJECT_SOURCE_DIR}/packaging/debian/conffiles)
set(CPACK_DEBIAN_UNSPECIFIED_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_DEBIAN_SDK_PACKAGE_NAME route-delivery-dev)
set(CPACK_DEBIAN_SDK_PACKAGE_DEPENDS "cmake (>= 3.20)")
set(CPACK_DEBIAN_SDK_PACKAGE_RECOMMENDS "route-delivery (= ${PROJECT_VERSION}-1)")
set(CPACK_DEBIAN_SDK_PACKAGE_SECTION devel)
set(CPACK_DEBIAN_SDK_DESCRIPTION
"plugin SDK for route-delivery
The C header route_delivery/plugin.h (the stable plugin ABI), the C++
helper header and the CMake package RouteDeliverySDK, so that an
out-of-tree destination plugin builds with find_package(RouteDeliverySDK)
and route_delivery_add_plugin().")

include(CPack)
