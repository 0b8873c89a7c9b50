#include "delivery_loop.hpp"

#include <netdb.h>
#include <pthread.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>

#include "delivery_loop_internal.hpp"
#include "tls_sessions.hpp"

namespace rd::webhook {

namespace {
using detail::kKeepBodyBytes;
using detail::kMaxReadBytes;
using detail::result;
using detail::retry_now;
using detail::wall_ms;

// Whether the request of a transfer libcurl has been running left: libcurl got past connecting
// (TCP, and TLS for https) and began the transfer.
bool request_sent(CURL* easy) {
  curl_off_t pretransfer = 0;
  return curl_easy_getinfo(easy, CURLINFO_PRETRANSFER_TIME_T, &pretransfer) == CURLE_OK &&
         pretransfer > 0;
}
}  // namespace

// One request slot: an easy handle with the options every request shares set once, and the
// request's own state. Reused for request after request (see new_transfer / release_transfer).
struct DeliveryLoop::Transfer {
  DeliveryLoop* loop = nullptr;
  size_t slot = 0;  // index in active_ while running
  DeliveryJob job;
  CURL* easy = nullptr;
  AttemptHeaders attempt;
  // The request's header list: nodes pointing at the template's and `attempt`'s lines (libcurl
  // only reads the list; it is not built with curl_slist_append, so never curl_slist_free_all it).
  std::vector<curl_slist> header_nodes;
  std::string body;  // first kKeepBodyBytes of the response
  size_t body_read = 0;
  std::string retry_after;
  long header_status = 0;  // status line seen by on_header
  // The final response's head has ended (on_header saw its blank line): see wake_answered().
  bool answered = false;
  Clock::time_point wake_at{};  // when wake_answered() may run it again
  std::string refusal;
  int refused = 0;
  int allowed = 0;
  int64_t timeout_ms = 0;
  Clock::time_point started;
  char error[CURL_ERROR_SIZE] = {0};

  Transfer() = default;
  Transfer(const Transfer&) = delete;
  Transfer& operator=(const Transfer&) = delete;
  ~Transfer() {
    if (easy != nullptr) curl_easy_cleanup(easy);
  }

  void clear_result() {
    body.clear();
    body_read = 0;
    retry_after.clear();
    header_status = 0;
    answered = false;
    wake_at = {};
    refusal.clear();
    refused = 0;
    allowed = 0;
    error[0] = '\0';  // libcurl writes it only on failure
  }
};

DeliveryLoop::DeliveryLoop(int index, const PluginConfig& config, const AddressPolicy& policy,
                           DeliverySink& sink, bool expire_queued, NameLookup lookup)
    : index_(index),
      config_(config),
      policy_(policy),
      sink_(sink),
      expire_queued_(expire_queued),
      lookup_(lookup ? std::move(lookup) : NameLookup(&::getaddrinfo)) {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  multi_ = curl_multi_init();
  share_ = curl_share_init();
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = wake_fd_;
  if (multi_ == nullptr || share_ == nullptr || epoll_fd_ < 0 || wake_fd_ < 0 ||
      epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0) {
    if (multi_ != nullptr) curl_multi_cleanup(multi_);
    if (share_ != nullptr) curl_share_cleanup(share_);
    if (epoll_fd_ >= 0) ::close(epoll_fd_);
    if (wake_fd_ >= 0) ::close(wake_fd_);
    throw std::runtime_error("webhook: cannot create libcurl multi/share handle or epoll set");
  }
  // Only this loop's thread uses the share, so it needs no lock callbacks. The connection pool and
  // DNS cache live in the multi handle; the share adds TLS session resumption across handles.
  curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  curl_multi_setopt(multi_, CURLMOPT_PIPELINING, static_cast<long>(CURLPIPE_MULTIPLEX));
  curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS,
                    static_cast<long>(config_.max_connections_per_host));
  curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, static_cast<long>(config_.max_idle_connections));
  curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &DeliveryLoop::on_socket);
  curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
  thread_ = std::thread([this] {
    // Named for top -H, perf and /proc (at most 15 characters).
    const std::string name = "rd-webhook-" + std::to_string(index_);
    pthread_setname_np(pthread_self(), name.c_str());
    run();
  });
}

DeliveryLoop::~DeliveryLoop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  const uint64_t one = 1;
  if (::write(wake_fd_, &one, sizeof one) < 0) {
    // The counter cannot overflow with one write per wake-up; nothing else can fail here.
  }
  if (thread_.joinable()) thread_.join();
  idle_.clear();               // easy handles (the Transfer destructor cleans them up)
  curl_multi_cleanup(multi_);  // closes pooled connections through close_socket
  curl_share_cleanup(share_);
  ::close(epoll_fd_);
  ::close(wake_fd_);
}

void DeliveryLoop::submit(DeliveryJob job) {
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    inbox_.push_back(std::move(job));
    wake = !wake_pending_;  // one wake-up per batch: the thread takes the whole inbox at once
    wake_pending_ = true;
  }
  if (wake) {
    const uint64_t one = 1;
    if (::write(wake_fd_, &one, sizeof one) < 0) {
      // EAGAIN only if the counter were near 2^64; the thread is awake anyway then.
    }
  }
}

void DeliveryLoop::run() {
  std::vector<DeliveryJob> incoming;
  constexpr int kMaxEvents = 64;
  epoll_event events[kMaxEvents];
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) break;
      incoming.swap(inbox_);
      wake_pending_ = false;
    }
    for (DeliveryJob& job : incoming) admit(std::move(job));
    incoming.clear();
    take_resolved();
    restart_queues();

    // New requests (and libcurl's own timeouts) are due now: run them.
    long curl_ms = -1;
    curl_multi_timeout(multi_, &curl_ms);
    if (curl_ms == 0) {
      int running = 0;
      curl_multi_socket_action(multi_, CURL_SOCKET_TIMEOUT, 0, &running);
      read_messages();
      restart_queues();
      curl_multi_timeout(multi_, &curl_ms);
    }
    long answered_ms = -1;
    if (answered_ > 0) {
      answered_ms = wake_answered();
      curl_multi_timeout(multi_, &curl_ms);  // it ran transfers, which may have set timers
    }

    const auto now = Clock::now();
    long wait_ms = 1000;
    if (expire_queued_ && queued_.load(std::memory_order_relaxed) > 0) {
      if (now - last_expiry_ >= std::chrono::milliseconds(50)) {
        expire_waiting(now);
        last_expiry_ = now;
      }
      wait_ms = 50;
    }
    publish_gauges(false);
    if (curl_ms >= 0 && curl_ms < wait_ms) wait_ms = curl_ms;
    if (answered_ms >= 0 && answered_ms < wait_ms) wait_ms = answered_ms;
    if (!timers_.empty()) {
      const long own_ms = expire_own(now);
      restart_queues();
      if (own_ms >= 0 && own_ms < wait_ms) wait_ms = own_ms;
    }
    if (resolver_check_ != Clock::time_point::max()) {
      const long dns_ms = check_resolver(now);  // names wait for a resolver thread
      if (dns_ms >= 0 && dns_ms < wait_ms) wait_ms = dns_ms;
    }

    const int n = epoll_wait(epoll_fd_, events, kMaxEvents, static_cast<int>(wait_ms));
    for (int i = 0; i < n; ++i) {
      const uint64_t data = events[i].data.u64;
      if ((data & detail::kConnTag) != 0) {
        Conn* c = conns_[static_cast<uint32_t>(data)].get();
        // Not a socket closed earlier in this batch (its number may be in use again).
        if (c->fd >= 0 && ((data >> 32) & 0x7fffffffu) == (c->generation & 0x7fffffffu)) {
          conn_ready(c, events[i].events);
        }
        continue;
      }
      const int fd = events[i].data.fd;
      if (fd == wake_fd_) {
        uint64_t count = 0;
        if (::read(wake_fd_, &count, sizeof count) < 0) {
          // EAGAIN: already drained.
        }
        continue;
      }
      socket_ready(fd, events[i].events);
    }
    read_messages();
    restart_queues();
  }
  shutdown_all();
}

void DeliveryLoop::socket_ready(int fd, uint32_t events) {
  auto it = sockets_.find(fd);
  if (it == sockets_.end()) return;  // closed since epoll_wait returned
  SocketState& s = it->second;
  if (s.wanted == 0) {
    // An idle pooled connection that stayed in the epoll set (see on_socket) became readable:
    // the server closed it, or sent something unasked. libcurl notices when it next picks the
    // connection; stop hearing about it until then.
    set_epoll(fd, s, 0);
    return;
  }
  int mask = 0;
  if (s.tls) {
    // 0 = "look yourself": libcurl polls the socket for each transfer it runs on it, as
    // curl_multi_perform does. Needed over HTTP/2, where libcurl 7.88 may already have read
    // another stream's response (headers and reset) into its buffers: a transfer handed only
    // "writable" uploads first, hits the closed stream and fails without the status it holds.
  } else {
    if (events & EPOLLIN) mask |= CURL_CSELECT_IN;
    if (events & EPOLLOUT) mask |= CURL_CSELECT_OUT;
    if (events & (EPOLLERR | EPOLLHUP)) mask |= CURL_CSELECT_ERR;
  }
  int running = 0;
  curl_multi_socket_action(multi_, fd, mask, &running);
}

void DeliveryLoop::read_messages() {
  int left = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
    if (msg->msg != CURLMSG_DONE) continue;
    Transfer* t = nullptr;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &t);
    const CURLcode code = msg->data.result;
    finish(t, code);  // invalidates msg
  }
}

// libcurl tells which events it waits for on a socket. A connection going back to the pool gets
// CURL_POLL_REMOVE after every request and is watched again by the next one; the sockets this
// loop opened itself therefore stay in the epoll set while idle (their close goes through
// close_socket, so a stale entry can never outlive the socket), which saves two epoll_ctl calls
// per request. Any other socket (e.g. a resolver's) is added and removed exactly as asked.
int DeliveryLoop::on_socket(CURL*, curl_socket_t fd, int what, void* userp, void*) {
  auto* loop = static_cast<DeliveryLoop*>(userp);
  SocketState& s = loop->sockets_[fd];
  if (what == CURL_POLL_REMOVE) {
    s.wanted = 0;
    if (!s.ours) {
      loop->set_epoll(fd, s, 0);
      loop->sockets_.erase(fd);
    }
    return 0;
  }
  uint32_t events = 0;
  if (what & CURL_POLL_IN) events |= EPOLLIN;
  if (what & CURL_POLL_OUT) events |= EPOLLOUT;
  s.wanted = events;
  if (s.ours && s.registered == events) return 0;
  loop->set_epoll(fd, s, events);
  return 0;
}

void DeliveryLoop::set_epoll(int fd, SocketState& s, uint32_t events) {
  if (events == 0) {
    if (s.registered != 0) epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    s.registered = 0;
    return;
  }
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  int op = s.registered != 0 ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
  if (epoll_ctl(epoll_fd_, op, fd, &ev) != 0) {
    // Our record can lag behind the kernel's (a socket closed and its number reused): retry with
    // the other operation.
    op = errno == ENOENT ? EPOLL_CTL_ADD : errno == EEXIST ? EPOLL_CTL_MOD : -1;
    if (op < 0 || epoll_ctl(epoll_fd_, op, fd, &ev) != 0) {
      s.registered = 0;
      return;
    }
  }
  s.registered = events;
}

void DeliveryLoop::admit(DeliveryJob job) {
  HostState& host = hosts_[job.route().destination_key];
  if (host.active < config_.max_connections_per_host && host.waiting.empty()) {
    const std::string key = job.route().destination_key;
    start(std::move(job), host);
    if (host.active == 0) hosts_.erase(key);  // it could not be started
    return;
  }
  if (static_cast<int64_t>(host.waiting.size()) >= config_.max_queued_per_host) {
    // Saturated: the job is given back unsent, which costs it no attempt.
    sink_.queue_rejected();
    sink_.complete(
        job.delivery_id,
        result(Disposition::kDefer,
               job.route().destination_key +
                   " is saturated, request not sent: " + std::to_string(host.waiting.size()) +
                   " requests already wait for a connection (max_connections_per_host=" +
                   std::to_string(config_.max_connections_per_host) +
                   ", max_queued_per_host=" + std::to_string(config_.max_queued_per_host) + ")",
               1000));
    return;
  }
  host.waiting.push_back(std::move(job));
  queued_.fetch_add(1, std::memory_order_relaxed);
}

DeliveryLoop::Transfer* DeliveryLoop::new_transfer() {
  if (!idle_.empty()) {
    std::unique_ptr<Transfer> t = std::move(idle_.back());
    idle_.pop_back();
    t->slot = active_.size();
    active_.push_back(std::move(t));
    return active_.back().get();
  }
  auto t = std::make_unique<Transfer>();
  t->loop = this;
  t->easy = curl_easy_init();
  if (t->easy == nullptr) return nullptr;
  // Everything every request shares, set once per easy handle.
  CURL* e = t->easy;
  curl_easy_setopt(e, CURLOPT_PRIVATE, t.get());
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  // Proxies from the environment would make the SSRF check see the proxy, not the destination.
  curl_easy_setopt(e, CURLOPT_PROXY, "");
  curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, &DeliveryLoop::open_socket);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, t.get());
  curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, &DeliveryLoop::close_socket);
  curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, this);  // connections outlive the easy handle
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &DeliveryLoop::on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, t.get());
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &DeliveryLoop::on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, t.get());
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!config_.ca_file.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, config_.ca_file.c_str());
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS));
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_SHARE, share_);
  keep_tls_sessions_resumable(e);  // so that the share's sessions survive an idle close
  t->slot = active_.size();
  active_.push_back(std::move(t));
  return active_.back().get();
}

// Takes `t` out of active_ (it must not be in the multi handle any more) and keeps it for reuse.
void DeliveryLoop::release_transfer(Transfer* t) {
  const size_t slot = t->slot;
  std::unique_ptr<Transfer> owned = std::move(active_[slot]);
  if (slot + 1 != active_.size()) {
    active_[slot] = std::move(active_.back());
    active_[slot]->slot = slot;
  }
  active_.pop_back();
  owned->job = DeliveryJob();  // drops the payload and the route now
  if (idle_.size() < static_cast<size_t>(config_.max_idle_connections)) {
    idle_.push_back(std::move(owned));
  }
}

// Hands `job` to libcurl: from here its time limit runs, here and nowhere earlier.
void DeliveryLoop::start(DeliveryJob job, HostState& host) {
  // The host's clock for the job starts now; it may also withdraw a job that waited here while
  // its destination's circuit opened (a dead server is not sent one request per queued job).
  if (!sink_.started(job.delivery_id)) {
    sink_.complete(job.delivery_id,
                   result(Disposition::kDefer, "webhook: " + job.route().destination_key +
                                                   " withdrawn by the host before sending "
                                                   "(its circuit is open)"));
    return;
  }
  if (job.route().own_client) {
    start_own(std::move(job), host);
    return;
  }
  Transfer* t = new_transfer();
  if (t == nullptr) {
    sink_.complete(job.delivery_id, retry_now("webhook: out of memory creating a request"));
    return;
  }
  t->job = std::move(job);
  t->timeout_ms = t->job.budget_ms;
  t->clear_result();

  const RequestTemplate& tmpl = *t->job.request;
  const RouteConfig& route = *tmpl.route;
  build_attempt_headers(tmpl, t->job.body, t->job.webhook_id, wall_ms() / 1000, t->attempt);
  auto& nodes = t->header_nodes;
  nodes.resize(tmpl.leading.size() + t->attempt.count + tmpl.trailing.size());
  size_t n = 0;
  for (const std::string& h : tmpl.leading) nodes[n++].data = const_cast<char*>(h.c_str());
  for (size_t i = 0; i < t->attempt.count; ++i) {
    nodes[n++].data = const_cast<char*>(t->attempt.lines[i].c_str());
  }
  for (const std::string& h : tmpl.trailing) nodes[n++].data = const_cast<char*>(h.c_str());
  for (size_t i = 0; i < n; ++i) nodes[i].next = i + 1 < n ? &nodes[i + 1] : nullptr;

  CURL* e = t->easy;
  curl_easy_setopt(e, CURLOPT_URL, route.url.c_str());
  curl_easy_setopt(
      e, CURLOPT_CUSTOMREQUEST,
      route.method != "POST" ? route.method.c_str() : static_cast<const char*>(nullptr));
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->job.body.data());
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t->job.body.size()));
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, n > 0 ? nodes.data() : nullptr);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(t->timeout_ms));
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(t->timeout_ms));
  // Over TLS, wait for a connection being set up in case it negotiates HTTP/2 and can multiplex;
  // over plain HTTP (always HTTP/1.1 here) that would serialise requests on one connection.
  curl_easy_setopt(e, CURLOPT_PIPEWAIT, route.scheme == "https" ? 1L : 0L);

  // libcurl's clock for this transfer starts now (it runs the new handle on the next
  // socket_action, in this loop iteration); so does the host's.
  t->started = Clock::now();
  if (curl_multi_add_handle(multi_, e) != CURLM_OK) {
    const uint64_t id = t->job.delivery_id;
    release_transfer(t);
    sink_.complete(id, retry_now("webhook: libcurl refused a new request"));
    return;
  }
  ++host.active;
  in_flight_.fetch_add(1, std::memory_order_relaxed);
}

// libcurl 7.88 can leave an HTTP/2 transfer waiting after its whole response has arrived. When
// the server answers and ends its side of the stream before our request body has gone out
// (nginx's `return 200` answers on the request head; so may any server that decides before
// reading the body), libcurl reads the answer, then sends the body, and the END_STREAM of that
// body closes the stream inside the transfer's own send. A stream closed while another transfer
// reads the connection is marked to be run again; one closed in its own send is not, so the
// transfer waits for its socket to become readable, and nothing more comes for a finished
// stream: it ended at its time limit (CURLE_OPERATION_TIMEDOUT with the 200 it had seen, so an
// OK delivery 10 s late; docs/performance.md, issue 14). Unpausing is libcurl's one way to have a
// given transfer read its connection again: the transfer is due at once with the connection's
// read bit set, and that read finds the closed stream and completes it. A transfer whose head
// has come but whose body is still on its way is run once more for nothing, at most every
// kWakeAnsweredMs. Returns the ms until the next such run, -1 for none.
long DeliveryLoop::wake_answered() {
  // libcurl keeps that read bit per connection and the first transfer to run takes it: run every
  // expired timer first, so that the time-out action after each unpause runs that transfer alone.
  long due = 0;
  for (int i = 0; i < 8 && curl_multi_timeout(multi_, &due) == CURLM_OK && due == 0; ++i) {
    int running = 0;
    curl_multi_socket_action(multi_, CURL_SOCKET_TIMEOUT, 0, &running);
  }
  const auto now = Clock::now();
  long next = -1;
  for (const auto& owned : active_) {  // nothing leaves active_ before read_messages()
    Transfer* t = owned.get();
    if (!t->answered) continue;
    if (now < t->wake_at) {
      const long ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(t->wake_at - now).count() + 1;
      if (next < 0 || ms < next) next = ms;
      continue;
    }
    t->wake_at = now + std::chrono::milliseconds(kWakeAnsweredMs);
    if (next < 0 || kWakeAnsweredMs < next) next = kWakeAnsweredMs;
    if (curl_easy_pause(t->easy, CURLPAUSE_RECV) != CURLE_OK) continue;  // libcurl is done with it
    curl_easy_pause(t->easy, CURLPAUSE_CONT);
    int running = 0;
    curl_multi_socket_action(multi_, CURL_SOCKET_TIMEOUT, 0, &running);
  }
  read_messages();
  restart_queues();
  return answered_ > 0 ? next : -1;
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
  report.host = t->job.route().host_key;
  report.destination = t->job.route().destination_key;
  report.sent = request_sent(e);
  report.timeout_ms = t->timeout_ms;
  report.now_ms = wall_ms();
  if (t->answered) --answered_;
  // Release the slot before reporting, so whoever sees the completion also sees it gone.
  const uint64_t delivery_id = t->job.delivery_id;
  curl_multi_remove_handle(multi_, e);
  release_transfer(t);  // `t` may be gone now
  in_flight_.fetch_sub(1, std::memory_order_relaxed);
  const Decision decision = decide(report, static_cast<size_t>(config_.response_excerpt_bytes));
  this->report(delivery_id, decision, report.destination, report.status,
               !report.ssrf_refusal.empty(), seconds);
}

// A finished request (libcurl's or the own client's): classified, counted and completed. Its
// destination's queue moves on in restart_queues(), not from here: a request that fails at once
// (a refused connection) would otherwise start the next from inside this call, and so on down
// the whole queue on the stack.
void DeliveryLoop::report(uint64_t delivery_id, const Decision& decision,
                          const std::string& destination, long status, bool ssrf_refused,
                          double seconds) {
  auto it = hosts_.find(destination);
  if (it != hosts_.end()) {
    --it->second.active;
    if (!it->second.restart_pending) {
      it->second.restart_pending = true;
      restart_.push_back(destination);
    }
  }
  if (ssrf_refused) {
    sink_.ssrf_refused();
  } else {
    sink_.request_finished(status, seconds);
  }
  sink_.complete(delivery_id, decision);
}

void DeliveryLoop::restart_queues() {
  while (!restart_.empty()) {
    std::vector<std::string> keys;
    keys.swap(restart_);
    for (const std::string& key : keys) start_waiting(key);
  }
}

void DeliveryLoop::start_waiting(const std::string& destination_key) {
  auto it = hosts_.find(destination_key);
  if (it == hosts_.end()) return;
  HostState& host = it->second;
  host.restart_pending = false;
  while (host.active < config_.max_connections_per_host && !host.waiting.empty()) {
    DeliveryJob job = std::move(host.waiting.front());
    host.waiting.pop_front();
    queued_.fetch_sub(1, std::memory_order_relaxed);
    start(std::move(job), host);
  }
  if (host.active == 0 && host.waiting.empty()) hosts_.erase(it);
}

// Only for a host without `started`, which times the job out from xDeliver: give the job back
// before that happens rather than send it after the host has stopped waiting for it.
void DeliveryLoop::expire_waiting(Clock::time_point now) {
  for (auto& [key, host] : hosts_) {
    auto& q = host.waiting;
    for (auto it = q.begin(); it != q.end();) {
      if (it->queue_deadline <= now) {
        sink_.complete(
            it->delivery_id,
            result(Disposition::kDefer,
                   "waited " + std::to_string(it->budget_ms) + " ms for a free connection to " +
                       key + ", request not sent (max_connections_per_host=" +
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
  shutdown_own();
  // A request that went out may have arrived: retry. One that never left costs no attempt.
  const Decision sent = retry_now("webhook plugin is shutting down");
  const Decision unsent =
      result(Disposition::kDefer, "webhook plugin is shutting down, request not sent");
  while (!active_.empty()) {
    Transfer* t = active_.back().get();
    const uint64_t id = t->job.delivery_id;
    const bool was_sent = request_sent(t->easy);
    curl_multi_remove_handle(multi_, t->easy);
    release_transfer(t);
    sink_.complete(id, was_sent ? sent : unsent);
  }
  for (auto& [key, host] : hosts_) {
    for (const DeliveryJob& job : host.waiting) sink_.complete(job.delivery_id, unsent);
  }
  hosts_.clear();
  std::vector<DeliveryJob> rest;
  {
    std::lock_guard<std::mutex> lock(mu_);
    rest.swap(inbox_);
  }
  for (const DeliveryJob& job : rest) sink_.complete(job.delivery_id, unsent);
  answered_ = 0;
  in_flight_.store(0);
  queued_.store(0);
  publish_gauges(true);
}

// At most every 250 ms while busy, but at once when a count has dropped to zero, so a drained
// loop never shows requests still in flight (a dashboard would read them as stuck).
void DeliveryLoop::publish_gauges(bool force) {
  const int64_t in_flight_now = in_flight();
  const int64_t queued_now = queued();
  if (!force && in_flight_now == published_in_flight_ && queued_now == published_queued_) return;
  const auto now = Clock::now();
  const bool emptied = (in_flight_now == 0 && published_in_flight_ != 0) ||
                       (queued_now == 0 && published_queued_ != 0);
  if (!force && !emptied && now - last_gauges_ < std::chrono::milliseconds(250)) return;
  last_gauges_ = now;
  published_in_flight_ = in_flight_now;
  published_queued_ = queued_now;
  sink_.gauges(index_, in_flight_now, queued_now);
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
  const int fd = ::socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
  if (fd >= 0)
    t->loop->sockets_[fd] =
        SocketState{0, 0, true, t->job.route().scheme == "https"};  // a fresh socket: not in epoll
  return fd;
}

int DeliveryLoop::close_socket(void* clientp, curl_socket_t fd) {
  auto* loop = static_cast<DeliveryLoop*>(clientp);
  auto it = loop->sockets_.find(fd);
  if (it != loop->sockets_.end()) {
    // Removed explicitly: a forked child holding the socket open would keep it in the set.
    loop->set_epoll(fd, it->second, 0);
    loop->sockets_.erase(it);
  }
  return ::close(fd);
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
  } else if ((line == "\r\n" || line == "\n") && t->header_status >= 200 && !t->answered) {
    t->answered = true;  // the end of a final response's head (a 1xx one is followed by another)
    ++t->loop->answered_;
  }
  return len;
}

}  // namespace rd::webhook
