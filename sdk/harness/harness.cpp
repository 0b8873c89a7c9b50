// The harness of <route_delivery/harness.hpp> (installed as RouteDelivery::plugin_harness).
#include <dlfcn.h>
#include <time.h>

#include <route_delivery/harness.hpp>
#include <stdexcept>

namespace rd::harness {

namespace {
PluginHarness* self(rd_host* host) {
  return reinterpret_cast<PluginHarness*>(host);
}
}  // namespace

PluginHarness::PluginHarness(const std::string& so_path, const std::string& config_json) {
  handle_ = ::dlopen(so_path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle_ == nullptr) throw std::runtime_error(std::string("dlopen: ") + ::dlerror());
  auto entry = reinterpret_cast<rd_plugin_entry_fn>(::dlsym(handle_, RD_PLUGIN_ENTRY_SYMBOL));
  if (entry == nullptr) throw std::runtime_error("no rd_plugin_entry in " + so_path);
  desc_ = entry();
  if (desc_ == nullptr || desc_->abi_major != RD_ABI_VERSION_MAJOR) {
    throw std::runtime_error("bad descriptor in " + so_path);
  }
  services_.struct_size = sizeof services_;
  services_.abi_minor = RD_ABI_VERSION_MINOR;
  services_.host = reinterpret_cast<rd_host*>(this);
  services_.host_version = "test";
  services_.complete = &on_complete;
  services_.log = &on_log;
  services_.monotonic_ns = &on_mono;
  services_.wall_ms = &on_wall;
  services_.counter_register = &on_register;
  services_.counter_add = &on_add;
  services_.gauge_register = &on_register;
  services_.gauge_set = &on_set;
  services_.histogram_register = &on_register;
  services_.histogram_observe = &on_observe;
  services_.started = &on_started;
  char err[1024] = {0};
  if (desc_->xCreate(&services_, config_json.c_str(), &instance_, err, sizeof err) != 0) {
    throw std::runtime_error(std::string("xCreate failed: ") + err);
  }
}

PluginHarness::~PluginHarness() {
  if (instance_ != nullptr) desc_->xDestroy(instance_);
}

void PluginHarness::fill(OwnedJob& owned) {
  const JobSpec& s = owned.spec;
  rd_job& j = owned.job;
  j.struct_size = sizeof(rd_job);
  j.attempt = s.attempt;
  j.max_attempts = s.max_attempts;
  j.route_id = s.route_id;
  j.timeout_ms = s.timeout_ms;
  j.tenant_id = s.tenant_id.c_str();
  j.tenant_id_len = s.tenant_id.size();
  j.topic = s.topic.c_str();
  j.topic_len = s.topic.size();
  j.payload_json = s.payload_json.c_str();
  j.payload_json_len = s.payload_json.size();
  j.destination_config_json = s.destination_config_json.c_str();
  j.destination_config_json_len = s.destination_config_json.size();
  j.message_id = s.message_id.c_str();
  j.message_id_len = s.message_id.size();
}

std::string PluginHarness::destination(const JobSpec& spec) {
  if (!RD_HAS_FIELD(desc_, rd_plugin_descriptor, xDestination) || desc_->xDestination == nullptr)
    return "";
  OwnedJob owned;
  owned.spec = spec;
  fill(owned);
  char key[512];
  const size_t n = desc_->xDestination(instance_, &owned.job, key, sizeof key);
  return std::string(key, n < sizeof key ? n : sizeof key);
}

bool PluginHarness::started(uint64_t id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = started_.find(id);
  return it != started_.end() && it->second > 0;
}

int32_t PluginHarness::on_started(rd_host* host, uint64_t id) {
  PluginHarness* h = self(host);
  std::lock_guard<std::mutex> lock(h->mu_);
  h->started_[id]++;
  return h->withdraw_ ? 0 : 1;
}

uint64_t PluginHarness::deliver(const JobSpec& spec) {
  auto owned = std::make_unique<OwnedJob>();
  owned->spec = spec;
  fill(*owned);
  uint64_t id;
  const rd_job* job;
  {
    std::lock_guard<std::mutex> lock(mu_);
    id = next_id_++;
    job = &owned->job;
    jobs_[id] = std::move(owned);
  }
  desc_->xDeliver(instance_, id, job);
  return id;
}

std::optional<PluginResult> PluginHarness::wait(uint64_t id, std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_for(lock, timeout, [&] { return results_.count(id) > 0; })) return std::nullopt;
  return results_[id];
}

bool PluginHarness::health(std::string& detail) {
  if (desc_->xHealth == nullptr) return true;
  char buf[1024] = {0};
  const bool ok = desc_->xHealth(instance_, buf, sizeof buf) != 0;
  detail = buf;
  return ok;
}

std::vector<std::string> PluginHarness::logs() const {
  std::lock_guard<std::mutex> lock(mu_);
  return logs_;
}

std::map<std::string, double> PluginHarness::metrics() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<std::string, double> out;
  for (size_t i = 0; i < metric_names_.size(); ++i) out[metric_names_[i]] = metric_values_[i];
  return out;
}

void PluginHarness::on_complete(rd_host* host, uint64_t id, const rd_result* r) {
  PluginHarness* h = self(host);
  std::lock_guard<std::mutex> lock(h->mu_);
  auto& res = h->results_[id];
  if (++res.completions == 1) {
    res.outcome = r->outcome;
    res.retry_after_ms = r->retry_after_ms;
    res.reason.assign(r->reason != nullptr ? r->reason : "",
                      r->reason != nullptr ? r->reason_len : 0);
  }
  h->cv_.notify_all();
}

void PluginHarness::on_log(rd_host* host, int32_t level, const char* msg) {
  PluginHarness* h = self(host);
  std::lock_guard<std::mutex> lock(h->mu_);
  h->logs_.push_back(std::to_string(level) + " " + msg);
}

uint64_t PluginHarness::on_mono(rd_host*) {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

int64_t PluginHarness::on_wall(rd_host*) {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

int32_t PluginHarness::on_register(rd_host* host, const char* name, const char* labels,
                                   const char*) {
  PluginHarness* h = self(host);
  std::lock_guard<std::mutex> lock(h->mu_);
  std::string key = std::string(name) + "{" + (labels ? labels : "") + "}";
  for (size_t i = 0; i < h->metric_names_.size(); ++i) {
    if (h->metric_names_[i] == key) return static_cast<int32_t>(i);
  }
  h->metric_names_.push_back(key);
  h->metric_values_.push_back(0);
  return static_cast<int32_t>(h->metric_names_.size() - 1);
}

void PluginHarness::on_add(rd_host* host, int32_t handle, double v) {
  PluginHarness* h = self(host);
  std::lock_guard<std::mutex> lock(h->mu_);
  if (handle >= 0 && static_cast<size_t>(handle) < h->metric_values_.size())
    h->metric_values_[handle] += v;
}

void PluginHarness::on_set(rd_host* host, int32_t handle, double v) {
  PluginHarness* h = self(host);
  std::lock_guard<std::mutex> lock(h->mu_);
  if (handle >= 0 && static_cast<size_t>(handle) < h->metric_values_.size())
    h->metric_values_[handle] = v;
}

void PluginHarness::on_observe(rd_host* host, int32_t handle, double) {
  on_add(host, handle, 1.0);
}

}  // namespace rd::harness
