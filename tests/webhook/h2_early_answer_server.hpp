// An HTTPS server that speaks just enough HTTP/2 (RFC 9113, over TLS with ALPN "h2") to answer
// every request on its head, before the request body has arrived: the order in which nginx's
// `return 200` answers, and any server that decides before reading the body may. It makes that
// order certain rather than a race: its initial stream window is 0, so the client cannot send
// the body until the answer (HEADERS 200 with END_STREAM) and a WINDOW_UPDATE arrive together.
// The client therefore reads the whole answer first and closes the stream with the END_STREAM
// of its body. Bodies are still read and kept, so a test can check that each one arrived.
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

namespace rdtest {

class H2EarlyAnswerServer {
 public:
  // A self-signed certificate for 127.0.0.1 in `dir` (cert() is also its CA file); listens on a
  // free loopback port from construction to destruction. Throws std::runtime_error on failure.
  explicit H2EarlyAnswerServer(const TempDir& dir);
  ~H2EarlyAnswerServer();
  H2EarlyAnswerServer(const H2EarlyAnswerServer&) = delete;
  H2EarlyAnswerServer& operator=(const H2EarlyAnswerServer&) = delete;

  std::string url() const { return "https://127.0.0.1:" + std::to_string(port_) + "/hook"; }
  const std::string& cert() const { return cert_; }
  std::vector<std::string> bodies();  // every request body received whole, in arrival order
  int connections() const { return connections_.load(); }

 private:
  void serve();
  void serve_connection(int fd);

  std::string cert_, key_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::mutex mu_;
  std::vector<std::string> bodies_;
  std::thread thread_;
};

}  // namespace rdtest
