#include "http_server.hpp"

#include <httplib.h>

#include <stdexcept>

namespace rd {

HttpServer::HttpServer(HttpHandlers handlers) : handlers_(std::move(handlers)) {}

HttpServer::~HttpServer() {
  stop();
}

void HttpServer::start(const std::string& bind, int port) {
  server_ = std::make_unique<httplib::Server>();
  server_->new_task_queue = [] { return new httplib::ThreadPool(2); };
  server_->Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    auto [code, body] = handlers_.health();
    res.status = code;
    res.set_content(body, "application/json");
  });
  server_->Get("/ready", [this](const httplib::Request&, httplib::Response& res) {
    const bool ready = handlers_.ready();
    res.status = ready ? 200 : 503;
    res.set_content(ready ? "{\"ready\":true}" : "{\"ready\":false}", "application/json");
  });
  server_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(handlers_.metrics(), "text/plain; version=0.0.4; charset=utf-8");
  });
  if (!server_->bind_to_port(bind.c_str(), port)) {
    throw std::runtime_error(
        "cannot listen on " + bind + ":" + std::to_string(port) +
        " for /health (port in use? set http.port / HEALTH_PORT, or 0 to turn it off)");
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
}

void HttpServer::stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace rd
