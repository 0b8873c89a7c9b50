// Fuzzes the route job parser: any bytes must give a valid job or a reason, never a crash, and
// the single-pass scanner must read every input the way nlohmann::json does (job_oracle.hpp).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "job.hpp"
#include "job_oracle.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static rd::JobParse parse;  // reused like the consumer reuses its slots
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  rd::parse_job(text, "tenant-a", 1 << 20, parse);
  if (!parse.ok && parse.error.empty()) __builtin_trap();  // a rejection must say why
  if (parse.ok && (parse.job.tenant_id != "tenant-a" || parse.job.destination_type.empty()))
    __builtin_trap();
  if (!rd_test::job_oracle_mismatch(text).empty()) __builtin_trap();
  return 0;
}
