// example_test — the example plugin's own test, against the harness installed with the SDK
// (RouteDelivery::plugin_harness, <route_delivery/harness.hpp>). No test framework: it prints
// what failed and exits non-zero, which is all ctest needs. Usage: example_test path/to/example.so
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <route_delivery/harness.hpp>
#include <string>

namespace {
int failures = 0;
void check(bool ok, const std::string& what) {
  if (!ok) {
    std::cerr << "FAIL: " << what << "\n";
    ++failures;
  }
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: example_test EXAMPLE.so\n";
    return 2;
  }
  const std::string output = std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") +
                             "/example_test_output.txt";
  std::remove(output.c_str());
  {
    // xCreate gets the object the host would pass: every declared key present.
    rd::harness::PluginHarness h(argv[1], "{\"output\":\"" + output + "\"}");
    for (int i = 1; i <= 3; ++i) {
      rd::harness::JobSpec job;
      job.message_id = "ROUTES:" + std::to_string(i);
      const auto r = h.deliver_sync(job, std::chrono::seconds(5));
      check(r.has_value(), job.message_id + " was never completed");
      if (!r) continue;
      check(r->outcome == RD_OUTCOME_OK, job.message_id + " outcome " + std::to_string(r->outcome));
      check(r->completions == 1,
            job.message_id + " completed " + std::to_string(r->completions) + " times");
    }
    check(h.metrics()["example_delivered_total{}"] == 3, "example_delivered_total is not 3");
  }  // xDestroy
  std::ifstream in(output);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t lines = 0;
  for (char c : text) lines += c == '\n';
  check(lines == 3, output + " has " + std::to_string(lines) + " lines, not 3");
  check(text.rfind("ROUTES:1 tenant-a 1 ", 0) == 0, "the first line is not ROUTES:1's");
  std::remove(output.c_str());
  if (failures == 0) std::cout << "example_test: ok\n";
  return failures == 0 ? 0 : 1;
}
