// rd_delay_sink: HTTP/1.1 keep-alive sinks that answer 200 after a fixed delay without burning
// CPU — bench/delay_sink.py's interface, in C++ on one epoll thread, because the Python sink cost
// ~25 us of CPU per request and, near 30 000 requests/s, became what the many-destinations row
// measured instead of the daemon.
//
//   rd_delay_sink --endpoints N --delay-ms D --urls-file FILE [--verify-secret S]
//
// Listens on N free ports of 127.0.0.1 (N webhook destinations: the plugin keys destinations by
// scheme://host:port). A request's answer waits in a FIFO of due times (one delay for all, so the
// FIFO is in due order) and is written when due; nothing sleeps per request. Writes one URL per
// line to FILE once every port listens. With --verify-secret, checks each X-Signature-256
// (sha256=<hex HMAC-SHA256(secret, body)>) and counts mismatches. On SIGTERM/SIGINT prints one
// JSON line: requests, bad_signatures, connections (accepted), max_open, then exits. A bench sink,
// not a server: it reads a request line, headers and a Content-Length body, nothing else.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <signal.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Conn {
  std::string in;
  int waiting = 0;  // requests read, answer not written yet (answered in order)
};

struct Due {
  Clock::time_point at;
  int fd;
  uint64_t generation;  // of the connection on that fd, so a closed one is skipped
};

const char kOk[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

std::string hex_hmac(const std::string& key, const char* data, size_t len) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data), len, md, &n);
  static const char* d = "0123456789abcdef";
  std::string out = "sha256=";
  for (unsigned int i = 0; i < n; ++i) {
    out += d[md[i] >> 4];
    out += d[md[i] & 15];
  }
  return out;
}

// The value of header `name` (lowercase) in `head`, or "".
std::string header(const std::string& head, const char* name) {
  const size_t len = std::strlen(name);
  size_t pos = head.find("\r\n");
  while (pos != std::string::npos && pos + 2 < head.size()) {
    const size_t start = pos + 2;
    const size_t end = head.find("\r\n", start);
    const std::string line = head.substr(start, end == std::string::npos ? end : end - start);
    if (line.size() > len && line[len] == ':' && strncasecmp(line.c_str(), name, len) == 0) {
      size_t v = len + 1;
      while (v < line.size() && line[v] == ' ') ++v;
      return line.substr(v);
    }
    pos = end;
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  int endpoints = 200;
  double delay_ms = 20;
  std::string urls_file, secret;
  bool verify = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "rd_delay_sink: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--endpoints") {
      endpoints = std::atoi(next().c_str());
    } else if (a == "--delay-ms") {
      delay_ms = std::atof(next().c_str());
    } else if (a == "--urls-file") {
      urls_file = next();
    } else if (a == "--verify-secret") {
      secret = next();
      verify = true;
    } else {
      std::fprintf(stderr,
                   "usage: rd_delay_sink --endpoints N --delay-ms D --urls-file FILE "
                   "[--verify-secret S]\n");
      return 2;
    }
  }
  if (urls_file.empty() || endpoints < 1) {
    std::fprintf(stderr, "rd_delay_sink: --urls-file is required and --endpoints at least 1\n");
    return 2;
  }
  const auto delay = std::chrono::microseconds(static_cast<int64_t>(delay_ms * 1000));

  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  signal(SIGPIPE, SIG_IGN);
  const int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = uint64_t{1} << 62;  // the signal
  epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);

  std::vector<int> listeners;
  std::string urls;
  for (int i = 0; i < endpoints; ++i) {
    const int l = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (l < 0 || ::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(l, 1024) != 0 || getsockname(l, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      std::perror("rd_delay_sink: listen");
      return 1;
    }
    listeners.push_back(l);
    ev.events = EPOLLIN;
    ev.data.u64 = (uint64_t{1} << 63) | static_cast<uint64_t>(l);
    epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
    urls += "http://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/hook\n";
  }
  {
    std::ofstream out(urls_file + ".tmp");
    out << urls;
  }
  std::rename((urls_file + ".tmp").c_str(), urls_file.c_str());

  uint64_t requests = 0, bad_signatures = 0, connections = 0, max_open = 0, open_now = 0;
  std::unordered_map<int, Conn> conns;
  std::unordered_map<int, uint64_t> generation;  // per fd, bumped when a connection closes
  std::deque<Due> due;
  auto close_conn = [&](int fd) {
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
    ::close(fd);
    conns.erase(fd);
    ++generation[fd];
    --open_now;
  };

  epoll_event events[256];
  char buf[65536];
  while (true) {
    // To the microsecond (epoll_pwait2): a millisecond timeout answers up to ~1 ms late, 5 % of
    // a 20 ms delay.
    timespec wait{};
    timespec* timeout = nullptr;
    if (!due.empty()) {
      const int64_t ns = std::max<int64_t>(
          0, std::chrono::duration_cast<std::chrono::nanoseconds>(due.front().at - Clock::now())
                 .count());
      wait.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
      wait.tv_nsec = static_cast<long>(ns % 1'000'000'000);
      timeout = &wait;
    }
    const int n = epoll_pwait2(ep, events, 256, timeout, nullptr);
    for (int i = 0; i < n; ++i) {
      const uint64_t data = events[i].data.u64;
      if (data == (uint64_t{1} << 62)) {
        std::printf(
            "{\"requests\": %llu, \"bad_signatures\": %llu, \"connections\": %llu, "
            "\"max_open\": %llu}\n",
            static_cast<unsigned long long>(requests),
            static_cast<unsigned long long>(bad_signatures),
            static_cast<unsigned long long>(connections),
            static_cast<unsigned long long>(max_open));
        std::fflush(stdout);
        return 0;
      }
      if ((data >> 63) != 0) {  // a listener: take every waiting connection
        const int l = static_cast<int>(data & 0xffffffffu);
        while (true) {
          const int fd = ::accept4(l, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (fd < 0) break;
          const int one = 1;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          conns[fd] = Conn();
          ev.events = EPOLLIN;
          ev.data.u64 = static_cast<uint64_t>(fd);
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
          ++connections;
          if (++open_now > max_open) max_open = open_now;
        }
        continue;
      }
      const int fd = static_cast<int>(data);
      auto it = conns.find(fd);
      if (it == conns.end()) continue;
      const ssize_t got = ::recv(fd, buf, sizeof buf, 0);
      if (got <= 0) {
        if (got < 0 && errno == EAGAIN) continue;
        close_conn(fd);
        continue;
      }
      Conn& c = it->second;
      c.in.append(buf, static_cast<size_t>(got));
      while (true) {
        const size_t end = c.in.find("\r\n\r\n");
        if (end == std::string::npos) break;
        const std::string head = c.in.substr(0, end);
        const size_t length = std::strtoul(header(head, "content-length").c_str(), nullptr, 10);
        if (c.in.size() < end + 4 + length) break;
        ++requests;
        if (verify &&
            header(head, "x-signature-256") != hex_hmac(secret, c.in.data() + end + 4, length)) {
          ++bad_signatures;
        }
        c.in.erase(0, end + 4 + length);
        ++c.waiting;
        due.push_back(Due{Clock::now() + delay, fd, generation[fd]});
      }
    }
    const auto now = Clock::now();
    while (!due.empty() && due.front().at <= now) {
      const Due d = due.front();
      due.pop_front();
      auto it = conns.find(d.fd);
      if (it == conns.end() || generation[d.fd] != d.generation) continue;
      --it->second.waiting;
      if (::send(d.fd, kOk, sizeof kOk - 1, MSG_NOSIGNAL) < 0) close_conn(d.fd);
    }
  }
}
