// /health, /ready and /metrics on http.port (0 turns them off).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

namespace httplib {
class Server;
}

namespace rd {

struct HttpHandlers {
  std::function<std::pair<int, std::string>()> health;  // status code, JSON body
  std::function<bool()> ready;
  std::function<std::string()> metrics;
};

class HttpServer {
 public:
  explicit HttpServer(HttpHandlers handlers);
  ~HttpServer();
  // Binds and starts serving on a thread; throws std::runtime_error when the port cannot be bound.
  void start(const std::string& bind, int port);
  void stop();

 private:
  HttpHandlers handlers_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

}  // namespace rd
