#!/usr/bin/env bash
# Builds the SDK example plugin exactly as a third party would, and leaves it in OUT_DIR.
#
#   out_of_tree_build.sh BUILD_DIR OUT_DIR
#
# 1. `cmake --install BUILD_DIR` into a temporary prefix (daemon, plugins, SDK header, CMake package);
# 2. configures sdk/examples/example_plugin as a separate CMake project with only that prefix on
#    CMAKE_PREFIX_PATH, builds it warnings-as-errors, and installs it into the same prefix;
# 3. checks that example.so landed in <prefix>/lib*/route-delivery/plugins next to the bundled
#    plugins and exports rd_plugin_entry and no other symbol;
# 4. copies it to OUT_DIR/example.so and prints that path as the last line of stdout.
#
# Environment: CMAKE (cmake binary, default `cmake`), CC (C compiler for the example). When the main
# build uses RD_SANITIZE, the example is built with the same sanitizers so it can be loaded into
# the instrumented daemon and tests.
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 BUILD_DIR OUT_DIR" >&2
  exit 2
fi
build_dir=$(cd "$1" && pwd)
out_dir=$2
source_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cmake=${CMAKE:-cmake}

work=$(mktemp -d "${TMPDIR:-/tmp}/rd-out-of-tree.XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

step() { echo "== $*" >&2; }
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

step "installing $build_dir into $prefix"
"$cmake" --install "$build_dir" --prefix "$prefix" >"$work/install.log" 2>&1 ||
  { cat "$work/install.log" >&2; fail "cmake --install $build_dir failed"; }
[[ -f $prefix/include/route_delivery/plugin.h ]] || fail "the install has no route_delivery/plugin.h"
config=$(find "$prefix" -name RouteDeliverySDKConfig.cmake | head -n 1)
[[ -n $config ]] || fail "the install has no RouteDeliverySDKConfig.cmake"

configure_args=(-S "$source_dir/sdk/examples/example_plugin" -B "$work/build"
  -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS=-Werror)
if [[ -n ${CC:-} ]]; then configure_args+=(-DCMAKE_C_COMPILER="$CC"); fi
sanitize=$(sed -n 's/^RD_SANITIZE:[A-Z]*=//p' "$build_dir/CMakeCache.txt")
if [[ -n $sanitize ]]; then
  configure_args+=(-DRD_SANITIZE="$sanitize"
    "-DCMAKE_C_FLAGS=-Werror -fsanitize=$sanitize -fno-omit-frame-pointer"
    "-DCMAKE_MODULE_LINKER_FLAGS=-fsanitize=$sanitize"
    "-DCMAKE_CXX_FLAGS=-fsanitize=$sanitize -fno-omit-frame-pointer"
    "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=$sanitize")
fi

step "configuring the example against the installed SDK"
"$cmake" "${configure_args[@]}" >"$work/configure.log" 2>&1 ||
  { cat "$work/configure.log" >&2; fail "configuring sdk/examples/example_plugin failed"; }
step "building the example"
"$cmake" --build "$work/build" >"$work/build.log" 2>&1 ||
  { cat "$work/build.log" >&2; fail "building sdk/examples/example_plugin failed"; }
built=$work/build/example.so
[[ -f $built ]] || fail "the build produced no $built"

step "running the example's own test (the SDK's harness, no test framework)"
ctest=${CTEST:-$(dirname "$(command -v "$cmake")")/ctest}
"$ctest" --test-dir "$work/build" --output-on-failure >"$work/test.log" 2>&1 ||
  { cat "$work/test.log" >&2; fail "the example's test against RouteDelivery::plugin_harness failed"; }

step "installing the example into the same prefix"
"$cmake" --install "$work/build" --prefix "$prefix" >"$work/install-example.log" 2>&1 ||
  { cat "$work/install-example.log" >&2; fail "cmake --install of the example failed"; }
installed=$(find "$prefix" -path '*/route-delivery/plugins/example.so' | head -n 1)
[[ -n $installed ]] || fail "example.so was not installed into <prefix>/lib/route-delivery/plugins"
daemon_plugins=$(dirname "$installed")
[[ -x $prefix/bin/route-delivery ]] || fail "the install has no bin/route-delivery"

step "checking exported symbols"
exported=$(nm -D --defined-only "$built" | awk 'NF == 3 && $2 ~ /^[TDBRVW]$/ { print $3 }' | sort)
[[ $exported == rd_plugin_entry ]] ||
  fail "example.so must export exactly rd_plugin_entry; it exports: $(echo $exported)"

mkdir -p "$out_dir"
cp "$built" "$out_dir/example.so.tmp"
mv -f "$out_dir/example.so.tmp" "$out_dir/example.so"
echo "ok: example.so built against $prefix, installs to ${daemon_plugins#"$prefix"/}" >&2
cd "$out_dir" && echo "$(pwd)/example.so"
