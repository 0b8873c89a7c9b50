// The webhook loop's own HTTP/1.1 client (plain http:// routes): the response reader and the
// request bytes as pure logic, then the real webhook.so against a scripted raw-TCP server that
// does what keep-alive servers do at the edges (close a pooled connection as the next request
// arrives, answer chunked, say Connection: close, send a huge body) and against names, and the
// loop itself with names whose DNS does not answer.
#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <gtest/gtest.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "address_policy.hpp"
#include "config.hpp"
#include "delivery_loop.hpp"
#include "http1_response.hpp"
#include "http_receiver.hpp"
#include "plugin_harness.hpp"
#include "request_builder.hpp"
#include "test_support.hpp"

namespace rdtest {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using rd::webhook::ResponseReader;
using State = ResponseReader::State;

// ---- the response reader ----

TEST(Http1Response, ResponseSplitAcrossReadsIsReadWhole) {
  ResponseReader r(4096, 1 << 20);
  std::string in = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\nContent-Le";
  EXPECT_EQ(r.feed(in), State::kNeedMore);
  in += "ngth: 5\r\n\r\nbu";
  EXPECT_EQ(r.feed(in), State::kNeedMore);
  EXPECT_EQ(r.status(), 503) << "the status is known once the head is in";
  in += "sy";
  EXPECT_EQ(r.feed(in), State::kNeedMore);
  in += "!";
  EXPECT_EQ(r.feed(in), State::kDone);
  EXPECT_EQ(r.status(), 503);
  EXPECT_EQ(r.retry_after(), "7");
  EXPECT_EQ(r.body(), "busy!");
  EXPECT_TRUE(r.keep_alive());
  EXPECT_TRUE(in.empty());
}

TEST(Http1Response, ChunkedBodyAndInterimResponse) {
  ResponseReader r(4096, 1 << 20);
  std::string in =
      "HTTP/1.1 100 Continue\r\n\r\n"
      "HTTP/1.1 429 Too Many Requests\r\nTransfer-Encoding: chunked\r\nretry-after: 3\r\n\r\n"
      "4\r\nslow\r\n5\r\n down\r\n0\r\n\r\n";
  EXPECT_EQ(r.feed(in), State::kDone);
  EXPECT_EQ(r.status(), 429);
  EXPECT_EQ(r.retry_after(), "3");
  EXPECT_EQ(r.body(), "slow down");
  EXPECT_TRUE(r.keep_alive());
}

TEST(Http1Response, BodyRunningToTheCloseEndsAtEof) {
  ResponseReader r(4096, 1 << 20);
  std::string in = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it";
  EXPECT_EQ(r.feed(in), State::kNeedMore);
  EXPECT_EQ(r.feed_eof(), State::kDone);
  EXPECT_EQ(r.body(), "all of it");
  EXPECT_FALSE(r.keep_alive()) << "a body that ends with the connection leaves none to reuse";
}

TEST(Http1Response, KeepsOnlyTheFirstBytesAndStopsAtTheLimit) {
  ResponseReader r(8, 64);
  std::string in = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + std::string(100, 'x');
  EXPECT_EQ(r.feed(in), State::kError);
  EXPECT_TRUE(r.body_too_large());
  EXPECT_EQ(r.status(), 200) << "the status still decides";
  ResponseReader small(8, 1 << 20);
  std::string in2 = "HTTP/1.1 500 Oops\r\nContent-Length: 20\r\n\r\n" + std::string(20, 'y');
  EXPECT_EQ(small.feed(in2), State::kDone);
  EXPECT_EQ(small.body(), std::string(8, 'y'));
}

TEST(Http1Response, NotHttpIsAnErrorAndBytesAfterAResponseStay) {
  ResponseReader r(4096, 1 << 20);
  std::string junk = "SSH-2.0-OpenSSH_9.2\r\n";
  EXPECT_EQ(r.feed(junk), State::kError);
  EXPECT_FALSE(r.error().empty());
  r.reset();
  std::string two = "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\n";
  EXPECT_EQ(r.feed(two), State::kDone);
  EXPECT_EQ(r.status(), 204);
  EXPECT_EQ(two, "HTTP/1.1 200 OK\r\n") << "an unasked second response is not swallowed";
}

// ---- the request on the wire ----

TEST(Http1Request, RequestBytesAreWhatLibcurlWouldSend) {
  auto parsed = rd::webhook::parse_route_config(
      R"({"url":"http://hooks.example.com:8080/in/x?a=1&b=2#frag","method":"PUT",
          "headers":{"X-Empty":"","X-Team":"blue"},"secret":"s"})");
  ASSERT_TRUE(parsed.config) << parsed.error;
  ASSERT_TRUE(parsed.config->own_client);
  const auto t = rd::webhook::make_request_template(parsed.config, "route-delivery/test");
  rd::webhook::AttemptHeaders attempt;
  rd::webhook::build_attempt_headers(*t, "{}", "msg_1", 1700000000, attempt);
  std::string out;
  rd::webhook::build_http1_request(*t, attempt, "{}", out);
  const std::string head = out.substr(0, out.find("\r\n\r\n") + 4);
  EXPECT_EQ(out.substr(0, head.size() - 0).rfind("PUT /in/x?a=1&b=2 HTTP/1.1\r\n", 0), 0u) << out;
  EXPECT_NE(head.find("\r\nHost: hooks.example.com:8080\r\n"), std::string::npos) << head;
  EXPECT_NE(head.find("\r\nX-Empty:\r\n"), std::string::npos) << "an empty header is sent empty";
  EXPECT_NE(head.find("\r\nX-Team: blue\r\n"), std::string::npos);
  EXPECT_NE(head.find("\r\nwebhook-id: msg_1\r\n"), std::string::npos);
  EXPECT_NE(head.find("\r\nwebhook-timestamp: 1700000000\r\n"), std::string::npos);
  EXPECT_NE(head.find("\r\nX-Signature-256: sha256="), std::string::npos);
  EXPECT_NE(head.find("\r\nContent-Length: 2\r\n"), std::string::npos);
  EXPECT_EQ(head.find("Expect"), std::string::npos) << "no 100-continue round trip";
  EXPECT_EQ(head.find("frag"), std::string::npos) << "a fragment never leaves the client";
  EXPECT_EQ(out.substr(head.size()), "{}");

  auto v6 = rd::webhook::parse_route_config(R"({"url":"http://[::1]/"})");
  ASSERT_TRUE(v6.config);
  const auto t6 = rd::webhook::make_request_template(v6.config, "ua");
  EXPECT_NE(t6->http1_head.find("POST / HTTP/1.1\r\nHost: [::1]\r\n"), std::string::npos)
      << "the default port is not written; an IPv6 host is bracketed: " << t6->http1_head;
  auto tls = rd::webhook::parse_route_config(R"({"url":"https://hooks.example.com/"})");
  ASSERT_TRUE(tls.config);
  EXPECT_FALSE(tls.config->own_client) << "https stays with libcurl";
  auto user = rd::webhook::parse_route_config(R"({"url":"http://u:p@hooks.example.com/"})");
  ASSERT_TRUE(user.config);
  EXPECT_FALSE(user.config->own_client) << "user info stays with libcurl";
}

// ---- the plugin against a scripted server ----

// A loopback TCP server that runs `script` for each accepted connection on its own thread.
class RawServer {
 public:
  using Script = std::function<void(int fd, int connection)>;
  explicit RawServer(Script script) : script_(std::move(script)) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(listener_, 64) != 0) {
      throw std::runtime_error("RawServer: cannot listen");
    }
    socklen_t len = sizeof a;
    getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~RawServer() {
    stop_ = true;
    ::shutdown(listener_, SHUT_RDWR);
    acceptor_.join();
    for (auto& t : workers_) t.join();
    ::close(listener_);
  }
  int port() const { return port_; }
  int connections() const { return connections_.load(); }
  std::string url(const std::string& host = "127.0.0.1") const {
    return "http://" + host + ":" + std::to_string(port_) + "/hook";
  }

  // One request's bytes (head and Content-Length body), or "" at EOF / after 5 s.
  static std::string read_request(int fd) {
    std::string in;
    char buf[4096];
    const auto until = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < until) {
      const size_t end = in.find("\r\n\r\n");
      if (end != std::string::npos) {
        const size_t cl = in.find("Content-Length: ");
        const size_t body = cl == std::string::npos ? 0 : std::stoul(in.substr(cl + 16));
        if (in.size() >= end + 4 + body) return in;
      }
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) return "";
      in.append(buf, static_cast<size_t>(n));
    }
    return "";
  }
  static void send_all(int fd, const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
      const ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return;
      off += static_cast<size_t>(n);
    }
  }

 private:
  void accept_loop() {
    while (!stop_) {
      const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      const int n = ++connections_;
      workers_.emplace_back([this, fd, n] {
        script_(fd, n);
        ::close(fd);
      });
    }
  }
  Script script_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::thread acceptor_;
  std::vector<std::thread> workers_;
};

const std::string kOk = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

std::string so_path() {
  return plugin_dir() + "/webhook.so";
}

JobSpec job_to(const std::string& url, const std::string& message_id = "ROUTES:1") {
  JobSpec j;
  j.destination_config_json = json{{"url", url}}.dump();
  j.message_id = message_id;
  return j;
}

const std::string kAllowLoopback = R"({"timeout": 5000, "allowed_networks": ["127.0.0.0/8"]})";

// A keep-alive server closes an idle connection just as the next request arrives on it: the
// request goes again on a new connection, delivered, and the destination is not blamed.
TEST(Http1Client, PooledConnectionClosedUnderTheNextRequestIsRetriedOnANewOne) {
  std::atomic<int> requests{0};
  RawServer server([&](int fd, int connection) {
    while (true) {
      const std::string req = RawServer::read_request(fd);
      if (req.empty()) return;
      ++requests;
      if (connection == 1 && requests.load() == 2) return;  // closed, unanswered
      RawServer::send_all(fd, kOk);
    }
  });
  PluginHarness h(so_path(), kAllowLoopback);
  for (int i = 1; i <= 3; ++i) {
    const auto res = h.deliver_sync(job_to(server.url(), "ROUTES:" + std::to_string(i)), 10s);
    ASSERT_TRUE(res.has_value());
    EXPECT_EQ(res->outcome, RD_OUTCOME_OK) << "job " << i << ": " << res->reason;
  }
  EXPECT_EQ(requests.load(), 4) << "the second request went twice: on the closed and a new one";
  EXPECT_EQ(server.connections(), 2) << "the new connection carried the third request too";
}

// Connection: close, a chunked answer with Retry-After, and a body over 1 MiB: each classified as
// libcurl's transfers are, and a connection the server will not keep is not reused.
TEST(Http1Client, AnswersAtTheEdgesAreClassifiedAndConnectionsNotReusedWhenTheyCannotBe) {
  RawServer server([&](int fd, int) {
    while (true) {
      const std::string req = RawServer::read_request(fd);
      if (req.empty()) return;
      if (req.find("/close") != std::string::npos) {
        RawServer::send_all(fd,
                            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok");
        return;
      }
      if (req.find("/chunked") != std::string::npos) {
        RawServer::send_all(fd,
                            "HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n"
                            "Retry-After: 2\r\n\r\n6\r\nmainte\r\n5\r\nnance\r\n0\r\n\r\n");
        continue;
      }
      if (req.find("/huge") != std::string::npos) {
        const std::string body(2 << 20, 'z');
        RawServer::send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: " +
                                    std::to_string(body.size()) + "\r\n\r\n" + body);
        continue;
      }
      RawServer::send_all(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope");
    }
  });
  PluginHarness h(so_path(), kAllowLoopback);
  const std::string base = "http://127.0.0.1:" + std::to_string(server.port());

  auto closed = h.deliver_sync(job_to(base + "/close"), 10s);
  ASSERT_TRUE(closed.has_value());
  EXPECT_EQ(closed->outcome, RD_OUTCOME_OK) << closed->reason;
  auto chunked = h.deliver_sync(job_to(base + "/chunked"), 10s);
  ASSERT_TRUE(chunked.has_value());
  EXPECT_EQ(chunked->outcome, RD_OUTCOME_RETRY) << chunked->reason;
  EXPECT_EQ(chunked->retry_after_ms, 2000);
  EXPECT_NE(chunked->reason.find("HTTP 503"), std::string::npos) << chunked->reason;
  EXPECT_NE(chunked->reason.find("maintenance"), std::string::npos) << chunked->reason;
  EXPECT_EQ(server.connections(), 2) << "Connection: close was honoured";
  auto huge = h.deliver_sync(job_to(base + "/huge"), 10s);
  ASSERT_TRUE(huge.has_value());
  EXPECT_EQ(huge->outcome, RD_OUTCOME_OK) << "the status decides: " << huge->reason;
  auto missing = h.deliver_sync(job_to(base + "/missing"), 10s);
  ASSERT_TRUE(missing.has_value());
  EXPECT_EQ(missing->outcome, RD_OUTCOME_PERMANENT) << missing->reason;
  EXPECT_NE(missing->reason.find("HTTP 404"), std::string::npos) << missing->reason;
  EXPECT_EQ(server.connections(), 3) << "the connection with 1 MiB unread was not reused";
}

// Names go through the resolver thread; the address it finds is judged by the SSRF guard like
// a literal one, and a name that does not resolve is not the destination's failure.
TEST(Http1Client, NamesAreResolvedAndTheirAddressesJudged) {
  RawServer server([&](int fd, int) {
    while (!RawServer::read_request(fd).empty()) RawServer::send_all(fd, kOk);
  });
  {
    PluginHarness h(so_path(), kAllowLoopback);
    for (int i = 0; i < 3; ++i) {  // the first resolves, the others find the name cached
      const auto res = h.deliver_sync(job_to(server.url("localhost")), 10s);
      ASSERT_TRUE(res.has_value());
      EXPECT_EQ(res->outcome, RD_OUTCOME_OK) << res->reason;
    }
    const auto nowhere = h.deliver_sync(job_to("http://no-such-host.invalid/hook"), 20s);
    ASSERT_TRUE(nowhere.has_value());
    EXPECT_EQ(nowhere->outcome, RD_OUTCOME_DEFER) << nowhere->reason;
    EXPECT_NE(nowhere->reason.find("Could not resolve host: no-such-host.invalid"),
              std::string::npos)
        << nowhere->reason;
  }
  PluginHarness strict(so_path(), R"({"timeout": 5000})");
  const auto refused = strict.deliver_sync(job_to(server.url("localhost")), 10s);
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->outcome, RD_OUTCOME_PERMANENT) << refused->reason;
  EXPECT_NE(refused->reason.find("allowed_networks"), std::string::npos) << refused->reason;
  EXPECT_EQ(server.connections(), 1) << "no connection to a refused address";
}

// A server that accepts the connection and reads the request but never answers: the request
// was sent, so the timeout spends the attempt (retry), and it comes when the limit says.
TEST(Http1Client, SilentServerTimesOutAfterTheRequestLeft) {
  std::atomic<bool> got{false};
  RawServer server([&](int fd, int) {
    if (!RawServer::read_request(fd).empty()) got = true;
    std::this_thread::sleep_for(1500ms);
  });
  PluginHarness h(so_path(), R"({"timeout": 400, "allowed_networks": ["127.0.0.0/8"]})");
  const auto t0 = std::chrono::steady_clock::now();
  const auto res = h.deliver_sync(job_to(server.url()), 10s);
  const auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_TRUE(res.has_value());
  EXPECT_TRUE(got.load());
  EXPECT_EQ(res->outcome, RD_OUTCOME_RETRY) << res->reason;
  EXPECT_NE(res->reason.find("timed out after 400 ms"), std::string::npos) << res->reason;
  EXPECT_GE(took, 380ms);
  EXPECT_LT(took, 1400ms);
}

// A payload far larger than a socket buffer leaves in pieces (send, wait for room, send on) and
// arrives whole; the connection then carries the next, small, request.
TEST(Http1Client, LargePayloadLeavesInPiecesAndArrivesWhole) {
  HttpReceiver rx;
  PluginHarness h(so_path(), kAllowLoopback);
  std::string big = R"({"blob":")";
  for (size_t i = 0; big.size() < 900 * 1024; ++i) big += static_cast<char>('a' + i % 26);
  big += R"("})";
  JobSpec job = job_to(rx.url());
  job.payload_json = big;
  const auto res = h.deliver_sync(job, 10s);
  ASSERT_TRUE(res.has_value());
  EXPECT_EQ(res->outcome, RD_OUTCOME_OK) << res->reason;
  JobSpec small = job_to(rx.url(), "ROUTES:2");
  small.payload_json = R"({"n":2})";
  const auto res2 = h.deliver_sync(small, 10s);
  ASSERT_TRUE(res2.has_value());
  EXPECT_EQ(res2->outcome, RD_OUTCOME_OK) << res2->reason;
  const auto reqs = rx.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].body, big);
  EXPECT_EQ(reqs[0].header("Content-Length"), std::to_string(big.size()));
  EXPECT_EQ(reqs[1].body, R"({"n":2})");
  EXPECT_EQ(rx.connections(), 1);
}

// ---- names whose DNS does not answer (the loop itself, with a fake lookup) ----

// The names' DNS: a lookup of a name starting with "slow-" blocks until release() (then fails as
// a DNS server that never answered does); any other name is 127.0.0.1. Shared with the lookup,
// which resolver threads may still run after the test's loop is gone.
struct SlowDns {
  std::mutex mu;
  std::condition_variable cv;
  bool released = false;
  int inside = 0;       // lookups blocked now
  int most_inside = 0;  // at once, ever
  std::map<std::string, int> calls;

  void release() {
    {
      std::lock_guard<std::mutex> lock(mu);
      released = true;
    }
    cv.notify_all();
  }
  bool wait_inside(int n, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, timeout, [&] { return inside >= n; });
  }
};

rd::webhook::NameLookup slow_lookup(std::shared_ptr<SlowDns> dns) {
  return [dns](const char* host, const char* service, const addrinfo* hints, addrinfo** out) {
    const std::string name = host;
    if (name.rfind("slow-", 0) != 0) return getaddrinfo("127.0.0.1", service, hints, out);
    std::unique_lock<std::mutex> lock(dns->mu);
    ++dns->calls[name];
    dns->most_inside = std::max(dns->most_inside, ++dns->inside);
    dns->cv.notify_all();
    dns->cv.wait(lock, [&] { return dns->released; });
    --dns->inside;
    return EAI_AGAIN;
  };
}

// Resolver threads alive in this process (they name themselves rd-webhook-dns).
int resolver_threads() {
  int n = 0;
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return -1;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    if (read_file(std::string("/proc/self/task/") + e->d_name + "/comm") == "rd-webhook-dns\n") ++n;
  }
  closedir(dir);
  return n;
}

// What the loop reports, by delivery id, with when it arrived.
class RecordingSink : public rd::webhook::DeliverySink {
 public:
  struct Done {
    rd::webhook::Decision decision;
    std::chrono::steady_clock::time_point at;
  };
  void complete(uint64_t delivery_id, const rd::webhook::Decision& decision) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_[delivery_id] = Done{decision, std::chrono::steady_clock::now()};
    }
    cv_.notify_all();
  }
  bool started(uint64_t) override { return true; }
  void request_finished(long, double) override {}
  void ssrf_refused() override {}
  void queue_rejected() override {}
  void gauges(int, int64_t, int64_t) override {}

  std::optional<Done> wait_for(uint64_t delivery_id, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return done_.count(delivery_id) != 0; })) return {};
    return done_[delivery_id];
  }
  bool wait_for_count(size_t n, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return done_.size() >= n; });
  }
  std::map<uint64_t, Done> done() {
    std::lock_guard<std::mutex> lock(mu_);
    return done_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint64_t, Done> done_;
};

// One loop as the plugin runs it (loopback allowed), with `lookup` for its names.
struct LoopUnderTest {
  explicit LoopUnderTest(rd::webhook::NameLookup lookup)
      : policy({*rd::webhook::parse_cidr("127.0.0.0/8")}) {
    static const bool curl_ready = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
    EXPECT_TRUE(curl_ready);
    loop = std::make_unique<rd::webhook::DeliveryLoop>(0, config, policy, sink, false,
                                                       std::move(lookup));
  }
  void submit(uint64_t delivery_id, const std::string& url, int64_t budget_ms) {
    const auto parsed = rd::webhook::parse_route_config(json{{"url", url}}.dump());
    ASSERT_TRUE(parsed.config) << parsed.error;
    ASSERT_TRUE(parsed.config->own_client);
    rd::webhook::DeliveryJob job;
    job.delivery_id = delivery_id;
    job.request = rd::webhook::make_request_template(parsed.config, "route-delivery/test");
    job.body = R"({"n":)" + std::to_string(delivery_id) + "}";
    job.webhook_id = "msg_" + std::to_string(delivery_id);
    job.budget_ms = budget_ms;
    loop->submit(std::move(job));
  }

  rd::webhook::PluginConfig config;
  rd::webhook::AddressPolicy policy;
  RecordingSink sink;
  std::unique_ptr<rd::webhook::DeliveryLoop> loop;  // last: stopped before what it uses
};

std::string slow_url(int i, int port) {
  return "http://slow-" + std::to_string(i) + ".test:" + std::to_string(port) + "/hook";
}

// Twenty names whose DNS servers do not answer take more resolver threads than a loop runs at
// once; a name that resolves at once still is looked up, and its job delivered, at once. The
// slow names' jobs are not tried and so cost no attempt (defer), and each name is looked up once
// however many jobs wait for it.
TEST(Http1Client, SlowNamesDoNotHoldUpAnotherName) {
  HttpReceiver rx;
  auto dns = std::make_shared<SlowDns>();
  LoopUnderTest t(slow_lookup(dns));
  constexpr int kSlow = 20;
  for (int i = 0; i < kSlow; ++i) {
    t.submit(100 + 2 * i, slow_url(i, rx.port()), 2000);
    t.submit(101 + 2 * i, slow_url(i, rx.port()), 2000);
  }
  ASSERT_TRUE(dns->wait_inside(8, 5s)) << "the resolver threads are busy with slow names";

  const auto t0 = std::chrono::steady_clock::now();
  t.submit(1, "http://good.test:" + std::to_string(rx.port()) + "/hook", 5000);
  const auto good = t.sink.wait_for(1, 10s);
  ASSERT_TRUE(good.has_value());
  EXPECT_EQ(good->decision.disposition, rd::webhook::Disposition::kOk) << good->decision.reason;
  // Looked up once the slow names ahead of it have threads: about 2 * kStuckLookup here.
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(good->at - t0);
  EXPECT_LT(took, 1500ms) << "a good name waited " << took.count() << " ms for slow ones";
  EXPECT_EQ(rx.request_count(), 1u);

  ASSERT_TRUE(t.sink.wait_for_count(1 + 2 * kSlow, 10s));
  for (const auto& [id, done] : t.sink.done()) {
    if (id == 1) continue;
    EXPECT_EQ(done.decision.disposition, rd::webhook::Disposition::kDefer)
        << id << ": " << done.decision.reason;
    EXPECT_NE(done.decision.reason.find("request not sent"), std::string::npos)
        << done.decision.reason;
    EXPECT_NE(done.decision.reason.find("Resolving timed out after 2000 milliseconds"),
              std::string::npos)
        << done.decision.reason;
  }
  {
    std::lock_guard<std::mutex> lock(dns->mu);
    EXPECT_EQ(dns->calls.size(), static_cast<size_t>(kSlow)) << "every slow name is looked up";
    for (const auto& [name, calls] : dns->calls) EXPECT_EQ(calls, 1) << name;
  }
  dns->release();
}

// A flood of such names grows the resolver threads to their cap and no further; the loop then
// stops while every one of them is still in a lookup, and they end later without touching it.
TEST(Http1Client, SlowNameFloodIsCappedAndTheLoopStopsWithLookupsStuck) {
  ASSERT_TRUE(wait_until([] { return resolver_threads() == 0; }, 10s))
      << "resolver threads of an earlier test are still alive";
  auto dns = std::make_shared<SlowDns>();
  {
    LoopUnderTest t(slow_lookup(dns));
    constexpr int kNames = 200;
    for (int i = 0; i < kNames; ++i) t.submit(1000 + i, slow_url(i, 9), 1000);

    constexpr int kCap = rd::webhook::DeliveryLoop::kMaxResolverThreads;
    int most_threads = 0;
    std::optional<std::chrono::steady_clock::time_point> full;
    const auto until = std::chrono::steady_clock::now() + 10s;
    // Until the cap is reached, then a while longer (several kStuckLookup periods).
    while (std::chrono::steady_clock::now() < until &&
           (!full || std::chrono::steady_clock::now() - *full < 1s)) {
      most_threads = std::max(most_threads, resolver_threads());
      if (!full && dns->wait_inside(kCap, 0ms)) full = std::chrono::steady_clock::now();
      std::this_thread::sleep_for(10ms);
    }
    EXPECT_TRUE(full.has_value()) << "the stuck lookups never filled the cap";
    EXPECT_LE(most_threads, kCap);
    {
      std::lock_guard<std::mutex> lock(dns->mu);
      EXPECT_EQ(dns->most_inside, kCap);
      EXPECT_EQ(dns->inside, kCap);
    }
    ASSERT_TRUE(t.sink.wait_for_count(kNames, 10s));
    for (const auto& [id, done] : t.sink.done()) {
      EXPECT_EQ(done.decision.disposition, rd::webhook::Disposition::kDefer)
          << id << ": " << done.decision.reason;
    }
  }  // the loop is gone; its resolver threads are all still in the lookup
  EXPECT_EQ(resolver_threads(), rd::webhook::DeliveryLoop::kMaxResolverThreads);
  dns->release();
  EXPECT_TRUE(wait_until([] { return resolver_threads() == 0; }, 10s))
      << resolver_threads() << " resolver threads did not end";
  std::lock_guard<std::mutex> lock(dns->mu);
  EXPECT_EQ(dns->inside, 0);
}

}  // namespace
}  // namespace rdtest
