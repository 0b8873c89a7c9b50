// A real HTTP/1.1 webhook receiver for tests: listens on 127.0.0.1 on a free port, keeps
// connections alive, records every request exactly (method, target, headers, body bytes, which
// connection it came on) and answers with whatever the test's handler says (status, headers, body,
// delay). Counts TCP connections and the most requests it was handling at once. Stops (closing
// every connection, cutting delays short) in its destructor, so a failing test still cleans up.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace rdtest {

struct ReceivedRequest {
  std::string method;
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  int connection = 0;                        // 1-based index of the TCP connection it arrived on
  std::chrono::steady_clock::time_point at;  // when it had been read in full
  // Value of the first header called `name` (case-insensitive), or "" when absent.
  std::string header(const std::string& name) const;
  bool has_header(const std::string& name) const;
};

struct ReceiverResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::chrono::milliseconds delay{0};  // before the response is written
};

class HttpReceiver {
 public:
  // `index` counts requests from 0 in arrival order.
  using Handler = std::function<ReceiverResponse(const ReceivedRequest&, size_t index)>;

  // `port` 0 = a free port picked by the kernel; else that port (to bring a dead endpoint back).
  explicit HttpReceiver(Handler handler = nullptr, int port = 0);
  ~HttpReceiver();
  HttpReceiver(const HttpReceiver&) = delete;
  HttpReceiver& operator=(const HttpReceiver&) = delete;

  void set_handler(Handler handler);
  int port() const { return port_; }
  std::string url(const std::string& path = "/hook") const;

  std::vector<ReceivedRequest> requests() const;
  size_t request_count() const;
  int connections() const { return connections_.load(); }
  int max_concurrent() const { return max_concurrent_.load(); }
  bool wait_for_requests(size_t n, std::chrono::milliseconds timeout) const;
  void stop();

 private:
  void accept_loop();
  void serve(int fd, int connection);
  bool wait_readable(int fd, int timeout_ms);  // false when stopping or on timeout

  int listen_fd_ = -1;
  int stop_pipe_[2] = {-1, -1};
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> connections_{0};
  std::atomic<int> active_{0};
  std::atomic<int> max_concurrent_{0};

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  Handler handler_;
  std::vector<ReceivedRequest> requests_;
  std::vector<int> open_fds_;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

// A handler that answers every request 200 after `delay` (a slow endpoint; a long delay is a
// black hole that accepts, reads and never answers until the receiver stops).
inline HttpReceiver::Handler answer_after(std::chrono::milliseconds delay) {
  return [delay](const ReceivedRequest&, size_t) {
    ReceiverResponse r;
    r.delay = delay;
    return r;
  };
}

}  // namespace rdtest
