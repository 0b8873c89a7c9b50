#include "delivery_loop.hpp"

#include <strings.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <stdexcept>

#include "request_builder.hpp"

namespace webhook {

namespace {
// Response bytes kept for the failure reason, and read at most before the connection is dropped
// (reading a modest body to its end keeps the connection reusable).
constexpr size_t kKeepBodyBytes = 4096;
constexpr size_t kMaxReadBytes = 1 << 20;

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t ms_until(Clock::time_point deadline, Clock::time_point now) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
}

Decision retry_now(std::string reason, int64_t retry_after_ms = -1) {
  Decision d;
  d.disposition = Disposition::kRetry;
  d.retry_after_ms = retry_after_ms;
  d.reason = std::move(reason);
  return d;
}
}  // namespace

struct DeliveryLoop::Transfer {
  DeliveryLoop* loop = nullptr;
  DeliveryJob job;
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  std::string body;  // first kKeepBodyBytes of the response
  size_t body_read = 0;
  std::string retry_after;
  long header_status = 0;  // status line seen by on_header
  std::string refusal;
  int refused = 0;
  int allowed = 0;
  int64_t timeout_ms = 0;
  Clock::time_point started;
  char error[CURL_ERROR_SIZE] = {0};
};

DeliveryLoop::DeliveryLoop(int index, const PluginConfig& config, const AddressPolicy& policy,
                           DeliverySink& sink, std::string user_agent)
    : index_(index),
      config_(config),
      policy_(policy),
      sink_(sink),
      user_agent_(std::move(user_agent)) {
  multi_ = curl_multi_init();
  share_ = curl_share_init();
  if (multi_ == nullptr || share_ == nullptr) {
    if (multi_ != nullptr) curl_multi_cleanup(multi_);
    if (share_ != nullptr) curl_share_cleanup(share_);
    throw std::runtime_error("webhook: cannot create libcurl multi/share handle");
  }
  // Only this loop's thread uses the share, so it needs no lock callbacks. The connection pool and
  // DNS cache live in the multi handle; the share adds TLS session resumption across handles.
  curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  curl_multi_setopt(multi_, CURLMOPT_PIPELINING, static_cast<long>(CURLPIPE_MULTIPLEX));
  curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS,
                    static_cast<long>(config_.max_connections_per_host));
  curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, static_cast<long>(config_.max_idle_connections));
  thread_ = std::thread([this] { run(); });
}

DeliveryLoop::~DeliveryLoop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  curl_multi_wakeup(multi_);
  if (thread_.joinable()) thread_.join();
  for (CURL* e : idle_easy_) curl_easy_cleanup(e);
  curl_multi_cleanup(multi_);
  curl_share_cleanup(share_);
}

void DeliveryLoop::submit(DeliveryJob job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    inbox_.push_back(std::move(job));
  }
  curl_multi_wakeup(multi_);
}

void DeliveryLoop::run() {
  std::vector<DeliveryJob> incoming;
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) break;
      incoming.swap(inbox_);
    }
    for (DeliveryJob& job : incoming) admit(std::move(job));
    incoming.clear();

    int running = 0;
    curl_multi_perform(multi_, &running);
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      Transfer* t = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &t);
      const CURLcode code = msg->data.result;
      finish(t, code);  // invalidates msg
    }

    const auto now = Clock::now();
    int poll_ms = 1000;
    if (queued_.load(std::memory_order_relaxed) > 0) {
      if (now - last_expiry_ >= std::chrono::milliseconds(50)) {
        expire_waiting(now);
        last_expiry_ = now;
      }
      poll_ms = 50;
    }
    publish_gauges(false);
    // curl_multi_poll returns early for libcurl's own timeouts, socket activity and wakeups.
    curl_multi_poll(multi_, nullptr, 0, poll_ms, nullptr);
  }
  shutdown_all();
}

void DeliveryLoop::admit(DeliveryJob job) {
  HostState& host = hosts_[job.route->host_key];
  if (host.active < config_.max_connections_per_host && host.waiting.empty()) {
    const std::string key = job.route->host_key;
    start(std::move(job), host);
    if (host.active == 0) hosts_.erase(key);  // it finished at once (deadline already passed)
    return;
  }
  if (static_cast<int64_t>(host.waiting.size()) >= config_.max_queued_per_host) {
    sink_.queue_rejected();
    sink_.complete(
        job.delivery_id,
        retry_now(std::to_string(host.waiting.size()) + " requests already wait for " +
                      job.route->host_key + " (max_connections_per_host=" +
                      std::to_string(config_.max_connections_per_host) +
                      ", max_queued_per_host=" + std::to_string(config_.max_queued_per_host) + ")",
                  1000));
    return;
  }
  host.waiting.push_back(std::move(job));
  queued_.fetch_add(1, std::memory_order_relaxed);
}

void DeliveryLoop::start(DeliveryJob job, HostState& host) {
  const auto now = Clock::now();
  const int64_t remaining = ms_until(job.deadline, now);
  if (remaining <= 0) {
    sink_.complete(job.delivery_id,
                   retry_now("timed out after " + std::to_string(job.budget_ms) +
                             " ms waiting for a free connection to " + job.route->host_key +
                             " (max_connections_per_host=" +
                             std::to_string(config_.max_connections_per_host) + ")"));
    return;
  }
  auto t = std::make_unique<Transfer>();
  t->loop = this;
  t->job = std::move(job);
  t->timeout_ms = remaining;
  t->started = now;
  if (!idle_easy_.empty()) {
    t->easy = idle_easy_.back();
    idle_easy_.pop_back();
    curl_easy_reset(t->easy);
  } else {
    t->easy = curl_easy_init();
  }
  if (t->easy == nullptr) {
    sink_.complete(t->job.delivery_id, retry_now("webhook: out of memory creating a request"));
    return;
  }

  const RouteConfig& route = *t->job.route;
  const OutgoingRequest req =
      build_request(route, t->job.body, t->job.webhook_id, wall_ms() / 1000, user_agent_);
  for (const std::string& h : req.headers) {
    curl_slist* next = curl_slist_append(t->headers, h.c_str());
    if (next == nullptr) break;
    t->headers = next;
  }

  CURL* e = t->easy;
  curl_easy_setopt(e, CURLOPT_PRIVATE, t.get());
  curl_easy_setopt(e, CURLOPT_URL, route.url.c_str());
  if (route.method != "POST") curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, route.method.c_str());
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->job.body.data());
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t->job.body.size()));
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  // Proxies from the environment would make the SSRF check see the proxy, not the destination.
  curl_easy_setopt(e, CURLOPT_PROXY, "");
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(remaining));
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(remaining));
  curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, &DeliveryLoop::open_socket);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, t.get());
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &DeliveryLoop::on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, t.get());
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &DeliveryLoop::on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, t.get());
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!config_.ca_file.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, config_.ca_file.c_str());
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS));
  // Over TLS, wait for a connection being set up in case it negotiates HTTP/2 and can multiplex;
  // over plain HTTP (always HTTP/1.1 here) that would serialise requests on one connection.
  if (route.scheme == "https") curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_SHARE, share_);

  if (curl_multi_add_handle(multi_, e) != CURLM_OK) {
    curl_slist_free_all(t->headers);
    curl_easy_cleanup(e);
    sink_.complete(t->job.delivery_id, retry_now("webhook: libcurl refused a new request"));
    return;
  }
  ++host.active;
  in_flight_.fetch_add(1, std::memory_order_relaxed);
  transfers_.emplace(e, std::move(t));
}

void DeliveryLoop::finish(Transfer* t, CURLcode code) {
  CURL* e = t->easy;
  const auto now = Clock::now();
  const double seconds = std::chrono::duration<double>(now - t->started).count();

  RequestReport report;
  report.code = code;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &report.status);
  // libcurl 7.88 reports CURLE_HTTP2_STREAM with no response code when an HTTP/2 server answers
  // before it has read the whole request body and then resets the stream with NO_ERROR (nginx's
  // `return 200` does this); the status line we saw is the server's answer.
  if (report.status == 0) report.status = t->header_status;
  report.retry_after = std::move(t->retry_after);
  report.body = std::move(t->body);
  if (t->refused > 0 && t->allowed == 0) report.ssrf_refusal = std::move(t->refusal);
  report.curl_error = t->error;
  report.host = t->job.route->host_key;
  report.timeout_ms = t->job.budget_ms;  // the configured limit, not what was left of it
  report.now_ms = wall_ms();
  const Decision decision = decide(report, static_cast<size_t>(config_.response_excerpt_bytes));

  // Release the slot before reporting, so whoever sees the completion also sees it gone.
  const uint64_t delivery_id = t->job.delivery_id;
  const std::string host_key = t->job.route->host_key;
  curl_multi_remove_handle(multi_, e);
  curl_slist_free_all(t->headers);
  if (idle_easy_.size() < static_cast<size_t>(config_.max_idle_connections)) {
    idle_easy_.push_back(e);
  } else {
    curl_easy_cleanup(e);
  }
  transfers_.erase(e);  // destroys *t
  in_flight_.fetch_sub(1, std::memory_order_relaxed);
  auto it = hosts_.find(host_key);
  if (it != hosts_.end()) --it->second.active;

  if (!report.ssrf_refusal.empty()) {
    sink_.ssrf_refused();
  } else {
    sink_.request_finished(report.status, seconds);
  }
  sink_.complete(delivery_id, decision);
  start_waiting(host_key);
}

void DeliveryLoop::start_waiting(const std::string& host_key) {
  auto it = hosts_.find(host_key);
  if (it == hosts_.end()) return;
  HostState& host = it->second;
  while (host.active < config_.max_connections_per_host && !host.waiting.empty()) {
    DeliveryJob job = std::move(host.waiting.front());
    host.waiting.pop_front();
    queued_.fetch_sub(1, std::memory_order_relaxed);
    start(std::move(job), host);
  }
  if (host.active == 0 && host.waiting.empty()) hosts_.erase(it);
}

void DeliveryLoop::expire_waiting(Clock::time_point now) {
  for (auto& [key, host] : hosts_) {
    auto& q = host.waiting;
    for (auto it = q.begin(); it != q.end();) {
      if (it->deadline <= now) {
        sink_.complete(it->delivery_id,
                       retry_now("timed out after " + std::to_string(it->budget_ms) +
                                 " ms waiting for a free connection to " + key +
                                 " (max_connections_per_host=" +
                                 std::to_string(config_.max_connections_per_host) + ")"));
        it = q.erase(it);
        queued_.fetch_sub(1, std::memory_order_relaxed);
      } else {
        ++it;
      }
    }
  }
}

void DeliveryLoop::shutdown_all() {
  const Decision d = retry_now("webhook plugin is shutting down");
  for (auto& [easy, t] : transfers_) {
    curl_multi_remove_handle(multi_, easy);
    curl_slist_free_all(t->headers);
    curl_easy_cleanup(easy);
    sink_.complete(t->job.delivery_id, d);
  }
  transfers_.clear();
  for (auto& [key, host] : hosts_) {
    for (const DeliveryJob& job : host.waiting) sink_.complete(job.delivery_id, d);
  }
  hosts_.clear();
  std::vector<DeliveryJob> rest;
  {
    std::lock_guard<std::mutex> lock(mu_);
    rest.swap(inbox_);
  }
  for (const DeliveryJob& job : rest) sink_.complete(job.delivery_id, d);
  in_flight_.store(0);
  queued_.store(0);
  publish_gauges(true);
}

void DeliveryLoop::publish_gauges(bool force) {
  const auto now = Clock::now();
  if (!force && now - last_gauges_ < std::chrono::milliseconds(250)) return;
  last_gauges_ = now;
  sink_.gauges(index_, in_flight(), queued());
}

curl_socket_t DeliveryLoop::open_socket(void* clientp, curlsocktype purpose,
                                        curl_sockaddr* address) {
  auto* t = static_cast<Transfer*>(clientp);
  if (purpose != CURLSOCKTYPE_IPCXN || address == nullptr) return CURL_SOCKET_BAD;
  const auto ip = from_sockaddr(&address->addr, address->addrlen);
  if (!ip) {
    ++t->refused;
    t->refusal = "destination address family " + std::to_string(address->family) +
                 " is not IPv4 or IPv6; refused";
    return CURL_SOCKET_BAD;
  }
  if (auto why = t->loop->policy_.check(*ip)) {
    ++t->refused;
    t->refusal = std::move(*why);
    return CURL_SOCKET_BAD;
  }
  ++t->allowed;
  return ::socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

size_t DeliveryLoop::on_body(char* data, size_t size, size_t n, void* userp) {
  auto* t = static_cast<Transfer*>(userp);
  const size_t len = size * n;
  if (t->body.size() < kKeepBodyBytes) {
    t->body.append(data, std::min(len, kKeepBodyBytes - t->body.size()));
  }
  t->body_read += len;
  if (t->body_read > kMaxReadBytes) return 0;  // stop reading a huge body; the status decides
  return len;
}

size_t DeliveryLoop::on_header(char* data, size_t size, size_t n, void* userp) {
  auto* t = static_cast<Transfer*>(userp);
  const size_t len = size * n;
  std::string_view line(data, len);
  if (line.rfind("HTTP/", 0) == 0) {
    t->retry_after.clear();  // a new response (after 1xx) starts
    // "HTTP/1.1 200 OK", "HTTP/2 200": remember the status ourselves, since libcurl can lose it
    // when the server resets the stream right after answering (see finish()).
    const size_t sp = line.find(' ');
    if (sp != std::string_view::npos && line.size() >= sp + 4) {
      long status = 0;
      for (size_t i = sp + 1; i < sp + 4; ++i) {
        if (line[i] < '0' || line[i] > '9') return len;
        status = status * 10 + (line[i] - '0');
      }
      t->header_status = status;
    }
  } else if (line.size() > 12 && strncasecmp(line.data(), "retry-after:", 12) == 0) {
    t->retry_after.assign(line.substr(12));
  }
  return len;
}

}  // namespace webhook
