// The bundled `webhook` destination plugin: the entry point and the descriptor, and the glue
// between the C ABI and the delivery loops (delivery_loop.hpp): metrics, the route cache, the
// destination key. The config keys are in config.hpp; README.md describes what users see.
#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <route_delivery/plugin.hpp>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "address_policy.hpp"
#include "classify.hpp"
#include "config.hpp"
#include "delivery_loop.hpp"
#include "request_builder.hpp"
#include "signing.hpp"

namespace rd::webhook {
namespace {

constexpr const char* kPluginVersion = "1.0.0";

struct LoopGauge {
  std::atomic<int64_t> in_flight{0};
  std::atomic<int64_t> queued{0};
};

class WebhookPlugin final : public DeliverySink {
 public:
  // Jobs wait in per-host queues; the loop reports each one when it is sent (services->started),
  // so the host's timeout, like the request's, counts from then.
  static constexpr bool kReportsStarted = true;

  // xValidate: the config checks of create() (allowed_networks parsed), starting nothing.
  static void validate(const char* config_json) {
    parse_plugin_config(config_json != nullptr ? config_json : "{}");
  }

  static std::unique_ptr<WebhookPlugin> create(const rd_host_services* services,
                                               const char* config_json) {
    PluginConfig config = parse_plugin_config(config_json != nullptr ? config_json : "{}");
    if (!config.ca_file.empty()) {
      if (FILE* f = std::fopen(config.ca_file.c_str(), "r")) {
        std::fclose(f);
      } else {
        throw std::invalid_argument("plugins.webhook.ca_file: cannot read \"" + config.ca_file +
                                    "\"");
      }
    }
    return std::unique_ptr<WebhookPlugin>(new WebhookPlugin(services, std::move(config)));
  }

  ~WebhookPlugin() override {
    loops_.clear();  // joins the threads; unfinished work completes as retry
    curl_global_cleanup();
  }

  void deliver(uint64_t delivery_id, const rd_job& job) {
    const std::string_view cfg(job.destination_config_json, job.destination_config_json_len);
    const CachedRoute route = lookup_route(cfg);
    if (!route.request) {
      completer_.permanent(delivery_id, route.error);
      return;
    }
    const RouteConfig& rc = *route.request->route;
    if (rc.host_literal) {
      // An IP literal in the URL (in any spelling) is judged before any network access.
      if (auto why = policy_.check(*rc.host_literal)) {
        ssrf_refused();
        completer_.permanent(delivery_id, *why);
        return;
      }
    }
    DeliveryJob dj;
    dj.delivery_id = delivery_id;
    dj.request = route.request;
    dj.body.assign(job.payload_json, job.payload_json_len);
    dj.webhook_id = webhook_id(rd::view(job.tenant_id, job.tenant_id_len), job.route_id,
                               rd::view(job.message_id, job.message_id_len));
    int64_t budget = config_.timeout_ms;
    if (rc.timeout_ms > 0) budget = std::min(budget, rc.timeout_ms);
    if (job.timeout_ms > 0) budget = std::min(budget, job.timeout_ms);
    dj.budget_ms = budget;
    if (!host_takes_started_) dj.queue_deadline = Clock::now() + std::chrono::milliseconds(budget);
    loops_[route.loop]->submit(std::move(dj));
  }

  // "scheme://host:port" of the route's URL (see RouteConfig::destination_key); 0 when the route
  // config is invalid (its deliver fails permanently anyway). Parsing is cached: deliver() of the
  // same job finds the route already parsed.
  size_t destination(const rd_job& job, char* key, size_t key_len) {
    const CachedRoute route = lookup_route(
        std::string_view(job.destination_config_json, job.destination_config_json_len));
    if (!route.request) return 0;
    const std::string& text = route.request->route->destination_key;
    const size_t n = std::min(text.size(), key_len);
    std::memcpy(key, text.data(), n);
    return n;
  }

  bool health(std::string& detail) {
    // loops_ only changes in the constructor and destructor, never while the host calls this.
    int64_t in_flight = 0, queued = 0;
    for (const auto& loop : loops_) {
      in_flight += loop->in_flight();
      queued += loop->queued();
    }
    detail = "in_flight=" + std::to_string(in_flight) + " queued=" + std::to_string(queued);
    return true;
  }

  // ---- DeliverySink (called from the loop threads) ----
  void complete(uint64_t delivery_id, const Decision& d) override {
    switch (d.disposition) {
      case Disposition::kOk:
        completer_.ok(delivery_id);
        break;
      case Disposition::kRetry:
        completer_.retry(delivery_id, d.reason, d.retry_after_ms);
        break;
      case Disposition::kPermanent:
        completer_.permanent(delivery_id, d.reason);
        break;
      case Disposition::kDefer:
        completer_.defer(delivery_id, d.reason, d.retry_after_ms);
        break;
    }
  }

  bool started(uint64_t delivery_id) override { return completer_.started(delivery_id); }

  void request_finished(long status, double seconds) override {
    const int cls = status >= 100 && status <= 599 ? static_cast<int>(status / 100) : 0;
    add(by_class_[cls], 1.0);
    if (latency_ >= 0) services_->histogram_observe(services_->host, latency_, seconds);
  }

  void ssrf_refused() override { add(ssrf_refused_, 1.0); }
  void queue_rejected() override { add(queue_rejected_, 1.0); }

  void gauges(int index, int64_t in_flight, int64_t queued) override {
    loop_gauges_[static_cast<size_t>(index)].in_flight.store(in_flight, std::memory_order_relaxed);
    loop_gauges_[static_cast<size_t>(index)].queued.store(queued, std::memory_order_relaxed);
    int64_t total_in_flight = 0, total_queued = 0;
    for (const LoopGauge& g : loop_gauges_) {
      total_in_flight += g.in_flight.load(std::memory_order_relaxed);
      total_queued += g.queued.load(std::memory_order_relaxed);
    }
    if (in_flight_gauge_ >= 0) {
      services_->gauge_set(services_->host, in_flight_gauge_, static_cast<double>(total_in_flight));
    }
    if (queued_gauge_ >= 0) {
      services_->gauge_set(services_->host, queued_gauge_, static_cast<double>(total_queued));
    }
  }

 private:
  WebhookPlugin(const rd_host_services* services, PluginConfig config)
      : services_(services),
        completer_(services),
        config_(std::move(config)),
        host_takes_started_(RD_HAS_FIELD(services, rd_host_services, started) &&
                            services->abi_minor >= 1 && services->started != nullptr),
        policy_(config_.allowed_networks),
        loop_gauges_(static_cast<size_t>(config_.threads)),
        agent_(std::string("route-delivery/") +
               (services->host_version != nullptr && *services->host_version != '\0'
                    ? services->host_version
                    : kPluginVersion)) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      throw std::runtime_error("webhook: libcurl global initialisation failed");
    }
    register_metrics();
    try {
      for (int64_t i = 0; i < config_.threads; ++i) {
        loops_.push_back(std::make_unique<DeliveryLoop>(static_cast<int>(i), config_, policy_,
                                                        *this, !host_takes_started_));
      }
    } catch (...) {
      loops_.clear();
      curl_global_cleanup();
      throw;
    }
    completer_.log(
        RD_LOG_INFO,
        "webhook plugin ready threads=" + std::to_string(config_.threads) +
            " timeout_ms=" + std::to_string(config_.timeout_ms) +
            " max_connections_per_host=" + std::to_string(config_.max_connections_per_host) +
            " allowed_networks=" + std::to_string(config_.allowed_networks.size()) +
            " ca_file=" + (config_.ca_file.empty() ? "system" : "custom"));
  }

  void register_metrics() {
    auto reg = [&](const char* cls) {
      return services_->counter_register(services_->host, "webhook_requests_total",
                                         (std::string("class=\"") + cls + "\"").c_str(),
                                         "Webhook HTTP requests by response status class");
    };
    by_class_[0] = reg("none");  // no HTTP response: timeout, connection or DNS error
    by_class_[1] = reg("1xx");
    by_class_[2] = reg("2xx");
    by_class_[3] = reg("3xx");
    by_class_[4] = reg("4xx");
    by_class_[5] = reg("5xx");
    latency_ = services_->histogram_register(services_->host, "webhook_request_duration_seconds",
                                             nullptr, "Webhook HTTP request duration");
    ssrf_refused_ = services_->counter_register(
        services_->host, "webhook_ssrf_refused_total", nullptr,
        "Webhook deliveries refused because the destination address is private");
    queue_rejected_ = services_->counter_register(
        services_->host, "webhook_queue_rejected_total", nullptr,
        "Webhook deliveries deferred unsent because their host had too many waiting");
    in_flight_gauge_ = services_->gauge_register(services_->host, "webhook_in_flight", nullptr,
                                                 "Webhook requests in flight");
    queued_gauge_ = services_->gauge_register(services_->host, "webhook_queued", nullptr,
                                              "Webhook requests waiting for a per-host slot");
  }

  // A route's parsed config with its request template (static headers, prepared signing key),
  // or why the config can never be delivered.
  struct CachedRoute {
    std::shared_ptr<const RequestTemplate> request;  // null on error
    std::string error;
    size_t loop = 0;  // the event thread serving its destination
  };

  // Each destination is served by one event thread (its connection cap and pool live there),
  // given out in turn as destinations first appear: hashing the key put two of two destinations
  // on one thread of two. Bounded: past kMaxAssigned keys the table starts again (a destination
  // may then move thread, and briefly have its cap on both).
  size_t loop_for(const std::string& destination_key) {
    if (loops_.size() == 1) return 0;
    constexpr size_t kMaxAssigned = 100000;
    std::lock_guard<std::mutex> lock(assign_mu_);
    auto it = assigned_.find(destination_key);
    if (it != assigned_.end()) return it->second;
    if (assigned_.size() >= kMaxAssigned) assigned_.clear();
    const size_t loop = next_loop_++ % loops_.size();
    assigned_.emplace(destination_key, loop);
    return loop;
  }

  // Routes repeat: parse each distinct destination_config text once.
  CachedRoute lookup_route(std::string_view text) {
    return route_cache_.get(text, [this](std::string_view config) {
      ParsedRoute parsed = parse_route_config(config);
      CachedRoute cached;
      if (parsed.config) {
        cached.loop = loop_for(parsed.config->destination_key);
        cached.request = make_request_template(std::move(parsed.config), agent_);
      } else {
        cached.error = std::move(parsed.error);
      }
      return cached;
    });
  }

  void add(int32_t handle, double v) {
    if (handle >= 0) services_->counter_add(services_->host, handle, v);
  }

  const rd_host_services* services_;
  rd::Completer completer_;
  const PluginConfig config_;
  // The host runs a job's timeout from `started` (ABI 1.1). A 1.0 host runs it from xDeliver, so
  // the loops give back a job still queued when that time is up instead of sending it late.
  const bool host_takes_started_;
  const AddressPolicy policy_;
  std::vector<LoopGauge> loop_gauges_;
  const std::string agent_;  // User-Agent

  int32_t by_class_[6] = {-1, -1, -1, -1, -1, -1};
  int32_t latency_ = -1;
  int32_t ssrf_refused_ = -1;
  int32_t queue_rejected_ = -1;
  int32_t in_flight_gauge_ = -1;
  int32_t queued_gauge_ = -1;

  rd::RouteCache<CachedRoute> route_cache_;  // shared by deliver() and destination()
  std::mutex assign_mu_;                     // guards assigned_ and next_loop_
  std::unordered_map<std::string, size_t> assigned_;
  size_t next_loop_ = 0;

  std::vector<std::unique_ptr<DeliveryLoop>> loops_;  // last: destroyed (joined) first
};

}  // namespace
}  // namespace rd::webhook

RD_DEFINE_CPP_PLUGIN(rd::webhook::WebhookPlugin, "webhook", rd::webhook::kPluginVersion, "webhook",
                     "HTTP webhook delivery: signed, SSRF-guarded, connection-reusing (libcurl)",
                     rd::webhook::kConfigKeys, std::size(rd::webhook::kConfigKeys))
