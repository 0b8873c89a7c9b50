// The webhook plugin's event thread: one libcurl multi handle that runs every request of the
// hosts assigned to it, reusing connections (keep-alive, HTTP/2 multiplexing over TLS) from one
// pool, with a cap on concurrent requests per host so one slow endpoint cannot take every slot.
// The thread waits in epoll and drives libcurl with curl_multi_socket_action, so each wake-up
// costs only the transfers whose sockets are ready; easy handles keep their fixed options between
// requests.
//
// Plain http:// requests (RouteConfig::own_client) do not go through libcurl: the loop runs them
// itself on the same epoll set, HTTP/1.1 over keep-alive connections from its own pool, with the
// response read by Boost.Beast's parser (http1_response.hpp) and names resolved on resolver
// threads, where a name whose DNS does not answer holds up no other (kStuckLookup). libcurl's
// per-request work (URL parsing, header assembly, option handling, a poll() per reuse) cost more
// than the rest of a delivery together; see docs/performance.md, issue 14. The SSRF guard judges
// every address before connecting, as it does for libcurl's sockets, and the outcome is the same
// RequestReport, classified by the same rules. https:// (TLS, HTTP/2) stays with libcurl.
//
// A job's time limit counts from the moment it is handed to libcurl (or sent), never from its wait
// in the per-host queue: the plugin tells the host through DeliverySink::started
// (services->started) at that moment, and the host's own timeout starts then too.
#pragma once

#include <curl/curl.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "address_policy.hpp"
#include "classify.hpp"
#include "config.hpp"
#include "http1_response.hpp"
#include "request_builder.hpp"

struct addrinfo;

namespace rd::webhook {

using Clock = std::chrono::steady_clock;

// One job attempt handed to the loop. Owns copies of everything it needs.
struct DeliveryJob {
  uint64_t delivery_id = 0;
  std::shared_ptr<const RequestTemplate> request;  // the route and its fixed request parts
  std::string body;
  std::string webhook_id;
  int64_t budget_ms = 0;  // time allowed for the request, from when it is handed to libcurl
  // Only for a host that does not take `started` (ABI 1.0) and so times the job out from
  // xDeliver: accepted + budget, past which a job still queued is given back unsent.
  Clock::time_point queue_deadline = Clock::time_point::max();

  const RouteConfig& route() const { return *request->route; }
};

// What the loop reports back; implemented by the plugin (completions, metrics).
class DeliverySink {
 public:
  virtual ~DeliverySink() = default;
  virtual void complete(uint64_t delivery_id, const Decision& decision) = 0;
  // The job leaves the per-host queue to be sent now (before its `complete`). False: the host
  // withdrew it (its destination's circuit opened while it waited): defer it, unsent.
  virtual bool started(uint64_t delivery_id) = 0;
  // One finished HTTP request: status (0 = no response) and its duration.
  virtual void request_finished(long status, double seconds) = 0;
  virtual void ssrf_refused() = 0;
  virtual void queue_rejected() = 0;
  // This loop's current requests in flight and waiting for a slot (loop `index`).
  virtual void gauges(int index, int64_t in_flight, int64_t queued) = 0;
};

// How the own client looks up a name, with getaddrinfo's contract (the list it returns is freed
// with freeaddrinfo). Called on the resolver threads, possibly after the loop is gone.
using NameLookup = std::function<int(const char* host, const char* service, const addrinfo* hints,
                                     addrinfo** result)>;

class DeliveryLoop {
 public:
  // `expire_queued`: give back queued jobs past their queue_deadline (a host without `started`).
  // `lookup`: empty = getaddrinfo; tests pass one that makes chosen names slow.
  DeliveryLoop(int index, const PluginConfig& config, const AddressPolicy& policy,
               DeliverySink& sink, bool expire_queued, NameLookup lookup = {});
  // Stops the thread; a request in flight completes as retry, a job never sent as defer.
  ~DeliveryLoop();
  DeliveryLoop(const DeliveryLoop&) = delete;
  DeliveryLoop& operator=(const DeliveryLoop&) = delete;

  // Any thread; returns at once.
  void submit(DeliveryJob job);

  // The own client's name lookups (resolver threads, blocking getaddrinfo): up to
  // kResolverThreads at once. One running longer than kStuckLookup (a name whose DNS servers do
  // not answer) stops counting, so that it cannot hold up the names behind it; a loop's threads
  // stay at most kMaxResolverThreads however many such names there are.
  static constexpr int kResolverThreads = 8;
  static constexpr int kMaxResolverThreads = 64;
  static constexpr std::chrono::milliseconds kStuckLookup{250};

  int64_t in_flight() const { return in_flight_.load(std::memory_order_relaxed); }
  int64_t queued() const { return queued_.load(std::memory_order_relaxed); }

 private:
  struct Transfer;
  struct Conn;  // one connection of the loop's own HTTP/1.1 client
  // Requests of one time limit, in the order they started (so in deadline order).
  struct TimerList {
    Conn* head = nullptr;
    Conn* tail = nullptr;
  };
  struct Address {
    sockaddr_storage addr{};
    socklen_t len = 0;
    IpAddress ip;
  };
  struct Resolved {  // a name a resolver thread looked up
    std::string host_key;
    std::vector<Address> addresses;
    std::string error;  // why there are none
  };
  struct DnsEntry {
    std::vector<Address> addresses;
    Clock::time_point expires{};
    bool pending = false;
    std::vector<std::pair<uint32_t, uint64_t>> waiting;  // conn index and request serial
  };
  struct HostState {
    int64_t active = 0;
    std::deque<DeliveryJob> waiting;  // not handed to libcurl yet: no clock runs for them
    bool restart_pending = false;     // in restart_
  };
  // A socket libcurl uses, as this loop's epoll set knows it.
  struct SocketState {
    uint32_t registered = 0;  // events in the epoll set; 0 = not in it
    uint32_t wanted = 0;      // events libcurl waits for; 0 = it does not watch the socket now
    bool ours = false;        // opened by open_socket, closed through close_socket
    bool tls = false;         // opened for an https:// route
  };

  void run();
  void admit(DeliveryJob job);
  void start(DeliveryJob job, HostState& host);
  void read_messages();
  long wake_answered();
  void finish(Transfer* t, CURLcode code);
  void start_waiting(const std::string& destination_key);
  void expire_waiting(Clock::time_point now);
  void shutdown_all();
  void publish_gauges(bool force);
  Transfer* new_transfer();
  void release_transfer(Transfer* t);
  void socket_ready(int fd, uint32_t events);
  void set_epoll(int fd, SocketState& s, uint32_t events);

  // The loop's own HTTP/1.1 client (delivery_loop_http1.cpp).
  void start_own(DeliveryJob job, HostState& host);
  Conn* new_conn();
  void free_conn(Conn* c);
  Conn* take_idle(const std::string& destination_key);
  void begin_connect(Conn* c);
  void connect_next(Conn* c);
  void conn_ready(Conn* c, uint32_t events);
  void send_some(Conn* c);
  void read_some(Conn* c);
  void broken(Conn* c, CURLcode code, std::string text);
  void finish_own(Conn* c, CURLcode code, std::string text);
  void close_conn(Conn* c);
  void watch(Conn* c, uint32_t events);
  void timer_link(Conn* c);
  void timer_unlink(Conn* c);
  long expire_own(Clock::time_point now);  // ms until the next deadline, -1 none
  void take_resolved();
  long check_resolver(Clock::time_point now);  // ms until the next check, -1 none
  void start_resolvers(int count);
  void shutdown_own();
  void report(uint64_t delivery_id, const Decision& decision, const std::string& destination,
              long status, bool ssrf_refused, double seconds);
  void restart_queues();

  static curl_socket_t open_socket(void* clientp, curlsocktype purpose, curl_sockaddr* address);
  static int close_socket(void* clientp, curl_socket_t fd);
  static int on_socket(CURL* easy, curl_socket_t fd, int what, void* userp, void* socketp);
  static size_t on_body(char* data, size_t size, size_t n, void* userp);
  static size_t on_header(char* data, size_t size, size_t n, void* userp);

  const int index_;
  const PluginConfig& config_;
  const AddressPolicy& policy_;
  DeliverySink& sink_;
  const bool expire_queued_;
  const NameLookup lookup_;

  CURLM* multi_ = nullptr;
  CURLSH* share_ = nullptr;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: submit() and the destructor wake the thread through it
  std::unordered_map<int, SocketState> sockets_;
  std::vector<std::unique_ptr<Transfer>> active_;     // requests in the multi handle
  std::vector<std::unique_ptr<Transfer>> idle_;       // configured easy handles ready for reuse
  std::unordered_map<std::string, HostState> hosts_;  // by RouteConfig::destination_key
  Clock::time_point last_expiry_{};
  Clock::time_point last_gauges_{};
  int64_t published_in_flight_ = 0;  // what publish_gauges last reported
  int64_t published_queued_ = 0;

  // Transfers in active_ whose response head has ended, and how often each is run again while
  // it stays there (wake_answered).
  int64_t answered_ = 0;
  static constexpr long kWakeAnsweredMs = 50;

  // The own client: connections by index (epoll data: kConnTag | index), idle ones by
  // destination (last used first), running requests by time limit, the DNS cache.
  std::vector<std::unique_ptr<Conn>> conns_;
  std::vector<uint32_t> free_conns_;
  std::unordered_map<std::string, std::vector<uint32_t>> idle_conns_;
  size_t idle_count_ = 0;
  std::unordered_map<int64_t, TimerList> timers_;
  std::unordered_map<std::string, DnsEntry> dns_;
  std::vector<std::string> restart_;  // destinations whose queues may move (see report())
  struct Resolver;                    // shared with its thread, which outlives the loop if need be
  std::shared_ptr<Resolver> resolver_;  // created at the first name to look up
  // When names wait for a resolver thread that the limits did not allow yet: look again then
  // (check_resolver). max = nothing waits.
  Clock::time_point resolver_check_ = Clock::time_point::max();

  std::mutex mu_;  // guards inbox_, wake_pending_ and stop_
  std::vector<DeliveryJob> inbox_;
  bool wake_pending_ = false;  // wake_fd_ was written since the thread last took the inbox
  bool stop_ = false;

  std::atomic<int64_t> in_flight_{0};
  std::atomic<int64_t> queued_{0};
  std::thread thread_;
};

}  // namespace rd::webhook
