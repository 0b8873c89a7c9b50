// rd_delay_sink: HTTP/1.1 keep-alive sinks that answer 200 after a fixed delay without burning
// CPU — bench/delay_sink.py's interface, in C++ on one epoll thread, because the Python sink cost
// ~25 us of CPU per request and, near 30 000 requests/s, became what the many-destinations row
// measured instead of the daemon.
//
//   rd_delay_sink --endpoints N --delay-ms D --urls-file FILE [--verify-secret S]
//
// Listens on N free ports of 127.0.0.1 (N webhook destinations: the plugin keys destinations by
// scheme://host:port). A request's answer waits in a FIFO of due times (one delay for all, so the
// FIFO is in due order) and is written when due; nothing sleeps per request. Requests are parsed
// in place (no allocation per request) and signatures checked with the key's HMAC pads hashed
// once, which took the sink from ~13.6 to ~11.4 us of CPU per request under wrk -c1024 (the rest
// is the kernel's loopback TCP; docs/performance.md, issue 14). Writes one URL per line to FILE
// once every port listens. With --verify-secret, checks each X-Signature-256
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
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Conn {
  std::string in;   // bytes read and not parsed yet, from `used` on
  size_t used = 0;  // parsed bytes at the front of `in`, dropped before the next read
  bool open = false;
  uint64_t generation = 0;  // bumped when it closes, so an answer due to an earlier one is dropped
};

struct Due {
  Clock::time_point at;
  int fd;
  uint64_t generation;  // of the connection on that fd, so a closed one is skipped
};

const char kOk[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

// HMAC-SHA256 with the key's inner and outer pads hashed once (RFC 2104): a request costs two
// context copies and the hashing of its body, as the plugin's signing does.
class Hmac {
 public:
  explicit Hmac(const std::string& key) {
    unsigned char k[64] = {};
    if (key.size() > sizeof k) {
      unsigned int n = 0;
      EVP_Digest(key.data(), key.size(), k, &n, EVP_sha256(), nullptr);
    } else {
      std::memcpy(k, key.data(), key.size());
    }
    unsigned char pad[64];
    for (size_t i = 0; i < sizeof pad; ++i) pad[i] = k[i] ^ 0x36;
    EVP_DigestInit_ex(inner_, EVP_sha256(), nullptr);
    EVP_DigestUpdate(inner_, pad, sizeof pad);
    for (size_t i = 0; i < sizeof pad; ++i) pad[i] = k[i] ^ 0x5c;
    EVP_DigestInit_ex(outer_, EVP_sha256(), nullptr);
    EVP_DigestUpdate(outer_, pad, sizeof pad);
  }
  ~Hmac() {
    EVP_MD_CTX_free(inner_);
    EVP_MD_CTX_free(outer_);
    EVP_MD_CTX_free(work_);
  }
  Hmac(const Hmac&) = delete;
  Hmac& operator=(const Hmac&) = delete;

  // "sha256=<hex>" of `data` into out[0..71).
  void hex(std::string_view data, char* out) {
    unsigned char md[32];
    unsigned int n = 0;
    EVP_MD_CTX_copy_ex(work_, inner_);
    EVP_DigestUpdate(work_, data.data(), data.size());
    EVP_DigestFinal_ex(work_, md, &n);
    EVP_MD_CTX_copy_ex(work_, outer_);
    EVP_DigestUpdate(work_, md, sizeof md);
    EVP_DigestFinal_ex(work_, md, &n);
    static const char* d = "0123456789abcdef";
    std::memcpy(out, "sha256=", 7);
    for (size_t i = 0; i < sizeof md; ++i) {
      out[7 + 2 * i] = d[md[i] >> 4];
      out[8 + 2 * i] = d[md[i] & 15];
    }
  }
  static constexpr size_t kHexSize = 7 + 64;

 private:
  EVP_MD_CTX* inner_ = EVP_MD_CTX_new();
  EVP_MD_CTX* outer_ = EVP_MD_CTX_new();
  EVP_MD_CTX* work_ = EVP_MD_CTX_new();
};

// The value of header `name` (lowercase, with its colon: "content-length:") in `head` (the request
// line and headers, without the blank line), or an empty view.
std::string_view header(std::string_view head, std::string_view name) {
  size_t pos = head.find("\r\n");
  while (pos != std::string_view::npos) {
    const size_t start = pos + 2;
    size_t end = head.find("\r\n", start);
    const std::string_view line =
        head.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (line.size() >= name.size() && strncasecmp(line.data(), name.data(), name.size()) == 0) {
      std::string_view v = line.substr(name.size());
      while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
      return v;
    }
    pos = end;
  }
  return {};
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
  std::vector<Conn> conns;  // by fd
  std::deque<Due> due;
  std::unique_ptr<Hmac> hmac;
  if (verify) hmac = std::make_unique<Hmac>(secret);
  auto close_conn = [&](int fd) {
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
    ::close(fd);
    Conn& c = conns[static_cast<size_t>(fd)];
    c.open = false;
    c.in.clear();
    c.used = 0;
    ++c.generation;
    --open_now;
  };

  epoll_event events[256];
  char buf[65536];
  while (true) {
    // To the microsecond (epoll_pwait2): a millisecond timeout answers up to ~1 ms late, 5 % of
    // a 20 ms delay. (Letting answers due within 1 % of the delay leave together saved little
    // CPU and made wrk's mean latency 3 % longer: not done.)
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
    const auto read_at = Clock::now();
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
          if (conns.size() <= static_cast<size_t>(fd)) conns.resize(static_cast<size_t>(fd) + 1);
          conns[static_cast<size_t>(fd)].open = true;
          ev.events = EPOLLIN;
          ev.data.u64 = static_cast<uint64_t>(fd);
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
          ++connections;
          if (++open_now > max_open) max_open = open_now;
        }
        continue;
      }
      const int fd = static_cast<int>(data);
      if (static_cast<size_t>(fd) >= conns.size() || !conns[static_cast<size_t>(fd)].open) continue;
      const ssize_t got = ::recv(fd, buf, sizeof buf, 0);
      if (got <= 0) {
        if (got < 0 && errno == EAGAIN) continue;
        close_conn(fd);
        continue;
      }
      Conn& c = conns[static_cast<size_t>(fd)];
      if (c.used > 0) {
        c.in.erase(0, c.used);
        c.used = 0;
      }
      c.in.append(buf, static_cast<size_t>(got));
      while (true) {
        const std::string_view rest = std::string_view(c.in).substr(c.used);
        const size_t end = rest.find("\r\n\r\n");
        if (end == std::string_view::npos) break;
        const std::string_view head = rest.substr(0, end);
        const size_t length =
            std::strtoul(std::string(header(head, "content-length:")).c_str(), nullptr, 10);
        if (rest.size() < end + 4 + length) break;
        ++requests;
        if (hmac) {
          char want[Hmac::kHexSize];
          hmac->hex(rest.substr(end + 4, length), want);
          if (header(head, "x-signature-256:") != std::string_view(want, sizeof want))
            ++bad_signatures;
        }
        c.used += end + 4 + length;
        due.push_back(Due{read_at + delay, fd, c.generation});
      }
    }
    const auto now = Clock::now();
    while (!due.empty() && due.front().at <= now) {
      const Due d = due.front();
      due.pop_front();
      Conn& c = conns[static_cast<size_t>(d.fd)];
      if (!c.open || c.generation != d.generation) continue;
      if (::send(d.fd, kOk, sizeof kOk - 1, MSG_NOSIGNAL) < 0) close_conn(d.fd);
    }
  }
}
