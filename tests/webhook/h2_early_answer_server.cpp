#include "h2_early_answer_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>

#include "tls_cert.hpp"

namespace rdtest {

namespace {

// Frame types and flags (RFC 9113, section 6).
constexpr uint8_t kData = 0x0, kHeaders = 0x1, kSettings = 0x4, kPing = 0x6, kGoaway = 0x7,
                  kWindowUpdate = 0x8;
constexpr uint8_t kEndStream = 0x1, kAck = 0x1, kEndHeaders = 0x4, kPadded = 0x8;

std::string frame(uint8_t type, uint8_t flags, uint32_t stream, const std::string& payload) {
  std::string f;
  const size_t n = payload.size();
  f += static_cast<char>((n >> 16) & 0xff);
  f += static_cast<char>((n >> 8) & 0xff);
  f += static_cast<char>(n & 0xff);
  f += static_cast<char>(type);
  f += static_cast<char>(flags);
  for (int shift = 24; shift >= 0; shift -= 8) f += static_cast<char>((stream >> shift) & 0xff);
  return f + payload;
}

std::string u32(uint32_t v) {
  std::string s;
  for (int shift = 24; shift >= 0; shift -= 8) s += static_cast<char>((v >> shift) & 0xff);
  return s;
}

int select_h2(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
              unsigned int inlen, void*) {
  static const unsigned char kH2[] = {2, 'h', '2'};
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, outlen, kH2, sizeof kH2, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;  // the test is about HTTP/2 only
  }
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};

}  // namespace

H2EarlyAnswerServer::H2EarlyAnswerServer(const TempDir& dir)
    : cert_(dir.file("h2-cert.pem")), key_(dir.file("h2-key.pem")) {
  write_self_signed_cert(cert_, key_);
  // A write to a connection the client has closed must fail, not end the test process.
  std::signal(SIGPIPE, SIG_IGN);
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::listen(listen_fd_, 16) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    if (listen_fd_ >= 0) ::close(listen_fd_);
    throw std::runtime_error("H2EarlyAnswerServer: cannot listen on 127.0.0.1");
  }
  port_ = ntohs(a.sin_port);
  thread_ = std::thread([this] { serve(); });
}

H2EarlyAnswerServer::~H2EarlyAnswerServer() {
  stop_ = true;
  thread_.join();
  ::close(listen_fd_);
}

std::vector<std::string> H2EarlyAnswerServer::bodies() {
  std::lock_guard<std::mutex> lock(mu_);
  return bodies_;
}

void H2EarlyAnswerServer::serve() {
  std::vector<std::thread> connections;
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    ++connections_;
    connections.emplace_back([this, fd] {
      serve_connection(fd);
      ::close(fd);
    });
  }
  for (std::thread& t : connections) t.join();
}

void H2EarlyAnswerServer::serve_connection(int fd) {
  std::unique_ptr<SSL_CTX, SslFree> ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx || SSL_CTX_use_certificate_chain_file(ctx.get(), cert_.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx.get(), key_.c_str(), SSL_FILETYPE_PEM) != 1) {
    return;
  }
  SSL_CTX_set_alpn_select_cb(ctx.get(), &select_h2, nullptr);
  std::unique_ptr<SSL, SslFree> ssl(SSL_new(ctx.get()));
  SSL_set_fd(ssl.get(), fd);
  if (SSL_accept(ssl.get()) != 1) return;

  // Blocking reads that give up when the server stops or the peer goes.
  auto read_exact = [&](std::string& out, size_t n) {
    out.resize(n);
    size_t got = 0;
    while (got < n) {
      if (SSL_pending(ssl.get()) == 0) {
        pollfd p{fd, POLLIN, 0};
        const int r = ::poll(&p, 1, 50);
        if (stop_) return false;
        if (r <= 0) continue;
      }
      const int k = SSL_read(ssl.get(), out.data() + got, static_cast<int>(n - got));
      if (k <= 0) return false;
      got += static_cast<size_t>(k);
    }
    return true;
  };
  auto send = [&](const std::string& bytes) {
    return SSL_write(ssl.get(), bytes.data(), static_cast<int>(bytes.size())) ==
           static_cast<int>(bytes.size());
  };

  std::string preface;
  if (!read_exact(preface, 24) || preface != "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") return;
  // SETTINGS_INITIAL_WINDOW_SIZE (0x4) = 0: no request body before our WINDOW_UPDATE.
  if (!send(frame(kSettings, 0, 0, std::string("\x00\x04", 2) + u32(0)))) return;

  std::map<uint32_t, std::string> partial;  // request bodies still arriving, by stream
  std::string head, payload;
  while (read_exact(head, 9)) {
    const size_t len = (static_cast<size_t>(static_cast<uint8_t>(head[0])) << 16) |
                       (static_cast<size_t>(static_cast<uint8_t>(head[1])) << 8) |
                       static_cast<uint8_t>(head[2]);
    const auto type = static_cast<uint8_t>(head[3]);
    const auto flags = static_cast<uint8_t>(head[4]);
    uint32_t stream = 0;
    for (int i = 5; i < 9; ++i) stream = (stream << 8) | static_cast<uint8_t>(head[i]);
    stream &= 0x7fffffffu;
    if (!read_exact(payload, len)) return;

    std::string reply;
    if (type == kSettings && (flags & kAck) == 0) {
      reply = frame(kSettings, kAck, 0, "");
    } else if (type == kPing && (flags & kAck) == 0) {
      reply = frame(kPing, kAck, 0, payload);
    } else if (type == kGoaway) {
      return;
    } else if (type == kHeaders && (flags & kEndHeaders) != 0) {
      // The answer on the head alone: ":status: 200" (HPACK static table index 8) ending our side
      // of the stream, then the window for the body, in one TLS record.
      reply = frame(kHeaders, kEndStream | kEndHeaders, stream, "\x88") +
              frame(kWindowUpdate, 0, stream, u32(65535));
      partial[stream];
      if ((flags & kEndStream) != 0) partial.erase(stream);  // a request without a body
    } else if (type == kData) {
      std::string data = payload;
      if ((flags & kPadded) != 0 && !data.empty()) {
        const size_t pad = static_cast<uint8_t>(data[0]);
        data = data.size() > pad + 1 ? data.substr(1, data.size() - 1 - pad) : std::string();
      }
      partial[stream] += data;
      if (len > 0) reply = frame(kWindowUpdate, 0, 0, u32(static_cast<uint32_t>(len)));
      if ((flags & kEndStream) != 0) {
        std::lock_guard<std::mutex> lock(mu_);
        bodies_.push_back(std::move(partial[stream]));
        partial.erase(stream);
      }
    }
    if (!reply.empty() && !send(reply)) return;
  }
}

}  // namespace rdtest
