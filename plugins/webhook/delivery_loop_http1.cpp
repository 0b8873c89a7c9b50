// The delivery loop's own HTTP/1.1 client for plain http:// routes (see delivery_loop.hpp): one
// request at a time per connection, connections kept per destination while the server keeps
// them open, every address judged by the SSRF guard before connecting, names resolved on
// resolver threads (see Resolver) and cached for a minute, responses read by Boost.Beast's parser.
// What it reports is the RequestReport libcurl's transfers give (classify.hpp), with libcurl's
// error codes, so both kinds of request are classified by the same rules.
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

#include "delivery_loop.hpp"
#include "delivery_loop_internal.hpp"

namespace rd::webhook {

namespace {
using detail::kConnTag;
using detail::result;
using detail::retry_now;
using detail::wall_ms;

// libcurl keeps a resolved name for a minute (CURLOPT_DNS_CACHE_TIMEOUT) and closes a connection
// idle for longer than 118 s (CURLOPT_MAXAGE_CONN); the same here.
constexpr auto kDnsLifetime = std::chrono::seconds(60);
constexpr auto kMaxIdleAge = std::chrono::seconds(118);
constexpr size_t kReadChunk = 16 * 1024;
constexpr size_t kMaxDnsEntries = 4096;  // beyond, expired answers are dropped

int64_t ms_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(to - from).count();
}

std::string errno_text(int err) {
  char buf[128];
  // GNU strerror_r returns the message (maybe not in buf).
  return strerror_r(err, buf, sizeof buf);
}
}  // namespace

DeliveryLoop::Conn* DeliveryLoop::new_conn() {
  if (!free_conns_.empty()) {
    Conn* c = conns_[free_conns_.back()].get();
    free_conns_.pop_back();
    return c;
  }
  auto c = std::make_unique<Conn>();
  c->index = static_cast<uint32_t>(conns_.size());
  conns_.push_back(std::move(c));
  return conns_.back().get();
}

// `c` has no socket and no request any more.
void DeliveryLoop::free_conn(Conn* c) {
  c->phase = Conn::Phase::kFree;
  c->job = DeliveryJob();
  c->addresses.clear();
  c->destination_key.clear();
  free_conns_.push_back(c->index);
}

void DeliveryLoop::close_conn(Conn* c) {
  if (c->fd >= 0) {
    // Removed explicitly: a forked child holding the socket would keep it in the epoll set.
    if (c->registered != 0) epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c->fd, nullptr);
    ::close(c->fd);
  }
  c->fd = -1;
  c->registered = 0;
}

void DeliveryLoop::watch(Conn* c, uint32_t events) {
  if (c->registered == events) return;
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = kConnTag | (static_cast<uint64_t>(c->generation & 0x7fffffffu) << 32) | c->index;
  const int op = c->registered != 0 ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
  if (epoll_ctl(epoll_fd_, op, c->fd, &ev) == 0) c->registered = events;
}

// A pooled connection to `destination_key` that is still open, or nullptr.
DeliveryLoop::Conn* DeliveryLoop::take_idle(const std::string& destination_key) {
  auto it = idle_conns_.find(destination_key);
  if (it == idle_conns_.end()) return nullptr;
  auto& pool = it->second;
  const auto now = Clock::now();
  Conn* found = nullptr;
  while (!pool.empty() && found == nullptr) {
    Conn* c = conns_[pool.back()].get();
    pool.pop_back();
    --idle_count_;
    if (now - c->idle_since > kMaxIdleAge) {
      close_conn(c);
      free_conn(c);
    } else {
      found = c;
    }
  }
  if (pool.empty()) idle_conns_.erase(it);
  return found;
}

void DeliveryLoop::timer_link(Conn* c) {
  TimerList& list = timers_[c->job.budget_ms];
  c->timer_prev = list.tail;
  c->timer_next = nullptr;
  if (list.tail != nullptr) {
    list.tail->timer_next = c;
  } else {
    list.head = c;
  }
  list.tail = c;
  c->timed = true;
}

void DeliveryLoop::timer_unlink(Conn* c) {
  if (!c->timed) return;
  TimerList& list = timers_[c->job.budget_ms];
  (c->timer_prev != nullptr ? c->timer_prev->timer_next : list.head) = c->timer_next;
  (c->timer_next != nullptr ? c->timer_next->timer_prev : list.tail) = c->timer_prev;
  c->timer_prev = c->timer_next = nullptr;
  c->timed = false;
}

// Starts `job` on a pooled connection or a new one; its time limit runs from here.
void DeliveryLoop::start_own(DeliveryJob job, HostState& host) {
  Conn* c = take_idle(job.route().destination_key);
  if (c == nullptr) {
    c = new_conn();
    c->destination_key = job.route().destination_key;
    c->reused = false;
  } else {
    c->reused = true;
  }
  c->job = std::move(job);
  ++c->serial;
  c->started = Clock::now();
  c->deadline = c->started + std::chrono::milliseconds(c->job.budget_ms);
  c->retried = false;
  c->sent = false;
  c->in.clear();
  c->reader.reset();
  c->refused = c->allowed = 0;
  c->refusal.clear();
  c->connect_error.clear();
  c->next_address = 0;
  const RequestTemplate& tmpl = *c->job.request;
  build_attempt_headers(tmpl, c->job.body, c->job.webhook_id, wall_ms() / 1000, c->attempt);
  build_http1_request(tmpl, c->attempt, c->job.body, c->out);
  c->out_sent = 0;
  timer_link(c);
  ++host.active;
  in_flight_.fetch_add(1, std::memory_order_relaxed);
  if (c->fd >= 0) {
    c->phase = Conn::Phase::kSending;
    c->sent = true;
    send_some(c);
  } else {
    begin_connect(c);
  }
}

// Finds the addresses of the request's host (an IP literal, the cache, or a resolver thread)
// and connects to the first the SSRF guard allows.
void DeliveryLoop::begin_connect(Conn* c) {
  const RouteConfig& route = c->job.route();
  c->addresses.clear();
  c->next_address = 0;
  if (route.host_literal) {
    Address a;
    a.ip = *route.host_literal;
    if (a.ip.is_v4()) {
      auto* sin = reinterpret_cast<sockaddr_in*>(&a.addr);
      sin->sin_family = AF_INET;
      sin->sin_port = htons(static_cast<uint16_t>(route.port));
      std::memcpy(&sin->sin_addr, a.ip.bytes.data(), 4);
      a.len = sizeof(sockaddr_in);
    } else {
      auto* sin6 = reinterpret_cast<sockaddr_in6*>(&a.addr);
      sin6->sin6_family = AF_INET6;
      sin6->sin6_port = htons(static_cast<uint16_t>(route.port));
      std::memcpy(&sin6->sin6_addr, a.ip.bytes.data(), 16);
      a.len = sizeof(sockaddr_in6);
    }
    c->addresses.push_back(a);
    connect_next(c);
    return;
  }
  if (dns_.size() >= kMaxDnsEntries) {
    // Names come and go with routes: forget the answers that have run out.
    const auto now = Clock::now();
    for (auto it = dns_.begin(); it != dns_.end();) {
      it = !it->second.pending && it->second.expires <= now ? dns_.erase(it) : std::next(it);
    }
  }
  DnsEntry& entry = dns_[route.host_key];
  if (!entry.pending && !entry.addresses.empty() && Clock::now() < entry.expires) {
    c->addresses = entry.addresses;
    connect_next(c);
    return;
  }
  c->phase = Conn::Phase::kResolving;
  entry.waiting.emplace_back(c->index, c->serial);
  if (entry.pending) return;
  entry.pending = true;
  if (!resolver_) resolver_ = std::make_shared<Resolver>(lookup_, ::dup(wake_fd_));
  int start = 0;
  {
    std::lock_guard<std::mutex> lock(resolver_->mu);
    resolver_->queue.push_back(Resolver::Lookup{route.host_key, route.host, route.port});
    start = resolver_->to_start(Clock::now(), resolver_check_);
  }
  resolver_->cv.notify_one();  // an idle thread, if there is one, takes it
  start_resolvers(start);
}

int DeliveryLoop::Resolver::to_start(Clock::time_point now, Clock::time_point& check) {
  int stuck = 0;
  auto oldest_fresh = running.begin();
  while (oldest_fresh != running.end() && now - *oldest_fresh > kStuckLookup) {
    ++stuck;
    ++oldest_fresh;
  }
  // Names queued or being looked up, each needing a thread.
  const size_t names = queue.size() + running.size();
  const auto short_of_threads = [&] { return names > static_cast<size_t>(threads); };
  int start = 0;
  while (short_of_threads() && threads < kMaxResolverThreads &&
         threads - stuck < kResolverThreads) {
    ++threads;
    ++start;
  }
  check = Clock::time_point::max();
  if (short_of_threads() && threads < kMaxResolverThreads) {
    // Held back by kResolverThreads: more may start once the oldest lookup not yet stuck is
    // (or, when all are, the threads just given names are).
    check = (oldest_fresh != running.end() ? *oldest_fresh : now) + kStuckLookup;
  }
  return start;
}

// On the loop's thread, when resolver_check_ has come.
long DeliveryLoop::check_resolver(Clock::time_point now) {
  if (now >= resolver_check_) {
    int start = 0;
    {
      std::lock_guard<std::mutex> lock(resolver_->mu);
      start = resolver_->to_start(now, resolver_check_);
    }
    start_resolvers(start);
    if (resolver_check_ == Clock::time_point::max()) return -1;
  }
  return static_cast<long>(ms_between(now, resolver_check_)) + 1;
}

// Starts `count` resolver threads, already counted in Resolver::threads.
void DeliveryLoop::start_resolvers(int count) {
  for (int i = 0; i < count; ++i) {
    try {
      std::thread(&Resolver::run, resolver_).detach();  // see Resolver: it may outlive the loop
    } catch (const std::system_error&) {
      // Out of threads for now: the names wait for the running ones, and the next check.
      std::lock_guard<std::mutex> lock(resolver_->mu);
      resolver_->threads -= count - i;
      resolver_check_ = std::min(resolver_check_, Clock::now() + kStuckLookup);
      return;
    }
  }
}

void DeliveryLoop::connect_next(Conn* c) {
  const RouteConfig& route = c->job.route();
  while (c->next_address < c->addresses.size()) {
    const Address& a = c->addresses[c->next_address++];
    if (auto why = policy_.check(a.ip)) {
      ++c->refused;
      c->refusal = std::move(*why);
      continue;
    }
    ++c->allowed;
    const int fd = ::socket(a.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      c->connect_error = errno_text(errno);
      continue;
    }
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&a.addr), a.len) != 0 &&
        errno != EINPROGRESS) {
      c->connect_error = errno_text(errno);
      ::close(fd);
      continue;
    }
    c->fd = fd;
    c->registered = 0;
    ++c->generation;
    c->phase = Conn::Phase::kConnecting;
    watch(c, EPOLLOUT);
    return;
  }
  if (c->refused > 0 && c->allowed == 0) {
    finish_own(c, CURLE_COULDNT_CONNECT, c->refusal);
    return;
  }
  finish_own(c, CURLE_COULDNT_CONNECT,
             "Failed to connect to " + route.host + " port " + std::to_string(route.port) +
                 " after " + std::to_string(ms_between(c->started, Clock::now())) +
                 " ms: " + (c->connect_error.empty() ? "no address" : c->connect_error));
}

void DeliveryLoop::conn_ready(Conn* c, uint32_t events) {
  switch (c->phase) {
    case Conn::Phase::kIdle: {
      // A pooled connection became readable or hung up: the server closed it (or sent something
      // unasked). Either way it cannot carry a request any more.
      auto it = idle_conns_.find(c->destination_key);
      if (it != idle_conns_.end()) {
        auto& pool = it->second;
        for (size_t i = 0; i < pool.size(); ++i) {
          if (pool[i] == c->index) {
            pool.erase(pool.begin() + static_cast<std::ptrdiff_t>(i));
            --idle_count_;
            break;
          }
        }
        if (pool.empty()) idle_conns_.erase(it);
      }
      close_conn(c);
      free_conn(c);
      return;
    }
    case Conn::Phase::kConnecting: {
      int err = 0;
      socklen_t len = sizeof err;
      if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      if (err == 0 && (events & (EPOLLERR | EPOLLHUP)) != 0) err = ECONNREFUSED;
      if (err != 0) {
        c->connect_error = errno_text(err);
        close_conn(c);
        connect_next(c);
        return;
      }
      c->phase = Conn::Phase::kSending;
      c->sent = true;
      send_some(c);
      return;
    }
    case Conn::Phase::kSending:
      if ((events & EPOLLIN) != 0) {
        read_some(c);  // an early answer (or a close) before the whole request left
        if (c->phase != Conn::Phase::kSending) return;
      }
      if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) != 0) send_some(c);
      return;
    case Conn::Phase::kReceiving:
      read_some(c);
      return;
    case Conn::Phase::kFree:
    case Conn::Phase::kResolving:
      return;
  }
}

void DeliveryLoop::send_some(Conn* c) {
  while (c->out_sent < c->out.size()) {
    const ssize_t n =
        ::send(c->fd, c->out.data() + c->out_sent, c->out.size() - c->out_sent, MSG_NOSIGNAL);
    if (n > 0) {
      c->out_sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      watch(c, EPOLLIN | EPOLLOUT);
      return;
    }
    broken(c, CURLE_SEND_ERROR, "Send failure: " + errno_text(n < 0 ? errno : EPIPE));
    return;
  }
  c->phase = Conn::Phase::kReceiving;
  watch(c, EPOLLIN);
}

void DeliveryLoop::read_some(Conn* c) {
  char buf[kReadChunk];
  while (true) {
    const ssize_t n = ::recv(c->fd, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      broken(c, CURLE_RECV_ERROR, "Recv failure: " + errno_text(errno));
      return;
    }
    ResponseReader::State state;
    if (n == 0) {
      if (!c->reader.started() && c->in.empty()) {
        broken(c, CURLE_GOT_NOTHING, "Empty reply from server");
        return;
      }
      state = c->reader.feed_eof();
      if (state != ResponseReader::State::kDone) {
        broken(c, CURLE_RECV_ERROR, "the connection closed before the response ended");
        return;
      }
    } else {
      c->in.append(buf, static_cast<size_t>(n));
      state = c->reader.feed(c->in);
    }
    if (state == ResponseReader::State::kDone) {
      finish_own(c, CURLE_OK, std::string());
      return;
    }
    if (state == ResponseReader::State::kError) {
      if (c->reader.body_too_large()) {
        finish_own(c, CURLE_WRITE_ERROR, "response body larger than 1 MiB; stopped reading");
      } else {
        finish_own(c, CURLE_WEIRD_SERVER_REPLY, "malformed HTTP response: " + c->reader.error());
      }
      return;
    }
    if (static_cast<size_t>(n) < sizeof buf) return;  // nothing more now; epoll says when
  }
}

// The connection failed under the request. A pooled connection the server had closed meanwhile
// (it answered nothing) is not the destination's failure: the request goes once more on a new
// connection, as libcurl does.
void DeliveryLoop::broken(Conn* c, CURLcode code, std::string text) {
  if (c->reused && !c->retried && !c->reader.started()) {
    close_conn(c);
    c->reused = false;
    c->retried = true;
    c->sent = false;
    c->out_sent = 0;
    c->in.clear();
    c->reader.reset();
    begin_connect(c);
    return;
  }
  finish_own(c, code, std::move(text));
}

// Reports the request's outcome and keeps the connection for the next request when it can.
void DeliveryLoop::finish_own(Conn* c, CURLcode code, std::string text) {
  const auto now = Clock::now();
  const double seconds = std::chrono::duration<double>(now - c->started).count();
  timer_unlink(c);

  const long status = c->reader.status();
  const bool ssrf = c->refused > 0 && c->allowed == 0;
  Decision decision;
  if (status >= 200 && status <= 299 && !ssrf) {
    decision.disposition = Disposition::kOk;  // decide()'s answer, without building the report
  } else {
    RequestReport r;
    r.code = code;
    r.status = status;
    r.retry_after = c->reader.retry_after();
    r.body = std::move(c->reader.body());
    if (ssrf) r.ssrf_refusal = c->refusal;
    r.curl_error = std::move(text);
    r.host = c->job.route().host_key;
    r.destination = c->job.route().destination_key;
    r.sent = c->sent;
    r.timeout_ms = c->job.budget_ms;
    r.now_ms = wall_ms();
    decision = decide(r, static_cast<size_t>(config_.response_excerpt_bytes));
  }
  const uint64_t delivery_id = c->job.delivery_id;
  // The route (and so the key) lives as long as the job; keep it until the report is made.
  const std::shared_ptr<const RequestTemplate> request = std::move(c->job.request);
  c->job = DeliveryJob();  // drops the payload now

  // Not kept: a server that answered before reading the whole request (it expects the rest).
  const bool keep = code == CURLE_OK && c->reader.keep_alive() && c->in.empty() && c->fd >= 0 &&
                    c->out_sent == c->out.size() &&
                    idle_count_ < static_cast<size_t>(config_.max_idle_connections);
  if (keep) {
    c->phase = Conn::Phase::kIdle;
    c->idle_since = now;
    watch(c, EPOLLIN);  // hear of the server closing it
    idle_conns_[c->destination_key].push_back(c->index);
    ++idle_count_;
  } else {
    close_conn(c);
    free_conn(c);
  }
  in_flight_.fetch_sub(1, std::memory_order_relaxed);
  report(delivery_id, decision, request->route->destination_key, status, ssrf, seconds);
}

// The own client's requests past their time limit end as timeouts; returns ms until the next
// deadline (-1: none running).
long DeliveryLoop::expire_own(Clock::time_point now) {
  long next = -1;
  for (auto it = timers_.begin(); it != timers_.end();) {
    TimerList& list = it->second;
    while (list.head != nullptr && list.head->deadline <= now) {
      Conn* c = list.head;
      const int64_t limit = c->job.budget_ms;
      if (c->phase == Conn::Phase::kResolving) {
        finish_own(c, CURLE_OPERATION_TIMEDOUT,
                   "Resolving timed out after " + std::to_string(limit) + " milliseconds");
      } else if (!c->sent) {
        finish_own(c, CURLE_OPERATION_TIMEDOUT,
                   "Connection timed out after " + std::to_string(limit) + " milliseconds");
      } else {
        finish_own(c, CURLE_OPERATION_TIMEDOUT,
                   "Operation timed out after " + std::to_string(limit) + " milliseconds with " +
                       std::to_string(c->in.size()) + " bytes received");
      }
      // finish_own unlinked it; a timed-out connection is never kept (code is not CURLE_OK).
    }
    if (list.head == nullptr) {
      it = timers_.erase(it);
      continue;
    }
    const long ms = static_cast<long>(ms_between(now, list.head->deadline)) + 1;
    if (next < 0 || ms < next) next = ms;
    ++it;
  }
  return next;
}

// Answers from the resolver threads: connect the requests that waited for them.
void DeliveryLoop::take_resolved() {
  if (!resolver_) return;
  std::vector<Resolved> done;
  {
    std::lock_guard<std::mutex> lock(resolver_->mu);
    done.swap(resolver_->done);
  }
  const auto now = Clock::now();
  for (Resolved& r : done) {
    DnsEntry& entry = dns_[r.host_key];
    entry.pending = false;
    entry.addresses = std::move(r.addresses);
    entry.expires = now + kDnsLifetime;
    std::vector<std::pair<uint32_t, uint64_t>> waiting;
    waiting.swap(entry.waiting);
    const std::vector<Address> addresses = entry.addresses;
    if (addresses.empty()) dns_.erase(r.host_key);  // failures are not cached
    for (const auto& [index, serial] : waiting) {
      Conn* c = conns_[index].get();
      if (c->serial != serial || c->phase != Conn::Phase::kResolving) continue;  // timed out
      if (addresses.empty()) {
        finish_own(c, CURLE_COULDNT_RESOLVE_HOST,
                   "Could not resolve host: " + c->job.route().host + " (" + r.error + ")");
        continue;
      }
      c->addresses = addresses;
      c->next_address = 0;
      connect_next(c);
    }
  }
}

void DeliveryLoop::Resolver::run(std::shared_ptr<Resolver> self) {
  pthread_setname_np(pthread_self(), "rd-webhook-dns");
  while (true) {
    Lookup lookup;
    std::list<Clock::time_point>::iterator mine;  // in self->running
    {
      std::unique_lock<std::mutex> lock(self->mu);
      ++self->idle;
      // An idle thread ends after a while: names are looked up once a minute at most.
      const bool more = self->cv.wait_for(lock, std::chrono::seconds(10),
                                          [&] { return self->stop || !self->queue.empty(); });
      --self->idle;
      if (self->stop || !more) {
        --self->threads;
        return;
      }
      lookup = std::move(self->queue.front());
      self->queue.pop_front();
      mine = self->running.insert(self->running.end(), Clock::now());
    }
    Resolved r;
    r.host_key = lookup.host_key;
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    // No AI_ADDRCONFIG: with only loopback configured (a container without a network) glibc
    // would return no address for "localhost"; an address family the host cannot reach fails at
    // connect() and the next address is tried.
    addrinfo* list = nullptr;
    const std::string port = std::to_string(lookup.port);
    const int rc = self->lookup(lookup.host.c_str(), port.c_str(), &hints, &list);
    if (rc != 0) {
      r.error = gai_strerror(rc);
    } else {
      for (addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
        auto ip = from_sockaddr(ai->ai_addr, ai->ai_addrlen);
        if (!ip || ai->ai_addrlen > sizeof(sockaddr_storage)) continue;
        Address a;
        std::memcpy(&a.addr, ai->ai_addr, ai->ai_addrlen);
        a.len = static_cast<socklen_t>(ai->ai_addrlen);
        a.ip = *ip;
        r.addresses.push_back(a);
      }
      freeaddrinfo(list);
      if (r.addresses.empty()) r.error = "no IPv4 or IPv6 address";
    }
    {
      std::lock_guard<std::mutex> lock(self->mu);
      self->running.erase(mine);
      if (self->stop) {
        --self->threads;
        return;
      }
      self->done.push_back(std::move(r));
    }
    const uint64_t one = 1;
    if (::write(self->wake_fd, &one, sizeof one) < 0) {
      // Only if the counter were near 2^64: the loop is awake anyway then.
    }
  }
}

// At shutdown: a request that went out may have arrived (retry); one that never left costs no
// attempt (defer). Pooled connections are closed.
void DeliveryLoop::shutdown_own() {
  const Decision sent = retry_now("webhook plugin is shutting down");
  const Decision unsent =
      result(Disposition::kDefer, "webhook plugin is shutting down, request not sent");
  for (auto& owned : conns_) {
    Conn* c = owned.get();
    if (c->phase == Conn::Phase::kFree) continue;
    const bool running = c->phase != Conn::Phase::kIdle;
    const uint64_t id = c->job.delivery_id;
    const bool was_sent = c->sent;
    timer_unlink(c);
    close_conn(c);
    free_conn(c);
    if (running) {
      in_flight_.fetch_sub(1, std::memory_order_relaxed);
      sink_.complete(id, was_sent ? sent : unsent);
    }
  }
  idle_conns_.clear();
  idle_count_ = 0;
  timers_.clear();
  if (resolver_) {
    {
      std::lock_guard<std::mutex> lock(resolver_->mu);
      resolver_->stop = true;
    }
    resolver_->cv.notify_all();
    resolver_.reset();
    resolver_check_ = Clock::time_point::max();
  }
}

}  // namespace rd::webhook
