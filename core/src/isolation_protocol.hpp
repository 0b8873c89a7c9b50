// The wire format between the daemon and an isolated plugin's child process
// (plugins.<name>.isolation: process; see isolated_plugin.hpp and plugin_child.cpp).
//
// Both ends are the same route-delivery binary on the same machine, so integers go in native
// byte order. A stream of frames over a Unix socketpair: u32 length of what follows, u8 type,
// then the type's fields; a string is u32 length + bytes. Many frames go in one write (batches):
// the reader takes every whole frame it has and keeps a partial one for the next read.
#pragma once

#include <route_delivery/plugin.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace rd::wire {

// daemon -> child
constexpr uint8_t kCreate = 1;  // str plugin path, str config json (the first frame)
constexpr uint8_t kJob = 2;     // job (below)
constexpr uint8_t kDest = 3;    // job with delivery_id = request id: xDestination
constexpr uint8_t kHealth = 4;  // u64 request id: xHealth
constexpr uint8_t kStop = 5;    // xDestroy, then exit 0
// child -> daemon
constexpr uint8_t kCreated = 20;  // i32 rc, str error
constexpr uint8_t kDone = 21;     // u64 delivery id, i32 outcome, i64 retry_after_ms, str reason
constexpr uint8_t kStarted = 22;  // u64 delivery id
constexpr uint8_t kLog = 23;      // i32 level, str message
constexpr uint8_t kMetricRegister = 24;  // u8 kind, i32 child handle, str name, labels, help
constexpr uint8_t kMetricUpdate = 25;    // u8 kind, i32 child handle, f64 value
constexpr uint8_t kReply = 26;           // u64 request id, i64 rc, str text
// u32 n: the call thread has handed n more kJob frames to xDeliver (one per batch it read), so
// the daemon knows when the child is ready for more jobs (see IsolatedPlugin::writer_loop).
constexpr uint8_t kTaken = 27;

constexpr uint32_t kMaxFrame = 256u << 20;  // a job is bounded by delivery.max_job_bytes

// Appends one frame to `out`. Usage: size_t at = begin(out, kJob); put...(out); end(out, at);
inline size_t begin(std::string& out, uint8_t type) {
  const size_t at = out.size();
  out.append(4, '\0');
  out.push_back(static_cast<char>(type));
  return at;
}
inline void end(std::string& out, size_t at) {
  const uint32_t n = static_cast<uint32_t>(out.size() - at - 4);
  std::memcpy(&out[at], &n, 4);
}
template <typename T>
void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}
inline void put_str(std::string& out, std::string_view s) {
  put<uint32_t>(out, static_cast<uint32_t>(s.size()));
  out.append(s.data(), s.size());
}

// Reads the fields of one frame's body; ok() turns false on a short body (and stays false).
class Reader {
 public:
  Reader(const char* p, size_t n) : p_(p), end_(p + n) {}
  template <typename T>
  T get() {
    T v{};
    if (static_cast<size_t>(end_ - p_) < sizeof v) {
      ok_ = false;
      p_ = end_;
      return v;
    }
    std::memcpy(&v, p_, sizeof v);
    p_ += sizeof v;
    return v;
  }
  std::string_view str() {
    const uint32_t n = get<uint32_t>();
    if (static_cast<size_t>(end_ - p_) < n) {
      ok_ = false;
      p_ = end_;
      return {};
    }
    std::string_view s(p_, n);
    p_ += n;
    return s;
  }
  bool ok() const { return ok_; }

 private:
  const char* p_;
  const char* end_;
  bool ok_ = true;
};

// A job as kJob / kDest carry it.
inline void put_job(std::string& out, uint8_t type, uint64_t id, const rd_job& j) {
  const size_t at = begin(out, type);
  put<uint64_t>(out, id);
  put<uint32_t>(out, j.attempt);
  put<uint32_t>(out, j.max_attempts);
  put<int64_t>(out, j.route_id);
  put<int64_t>(out, j.timeout_ms);
  put_str(out, {j.tenant_id, j.tenant_id_len});
  put_str(out, {j.topic, j.topic_len});
  put_str(out, {j.payload_json, j.payload_json_len});
  put_str(out, {j.destination_config_json, j.destination_config_json_len});
  put_str(out, {j.message_id, j.message_id_len});
  end(out, at);
}

// Splits `buf` into whole frames, calling f(type, Reader over the body) for each; returns the
// bytes consumed (a partial frame at the end is left). Returns SIZE_MAX on a frame too large.
template <typename F>
size_t for_each_frame(const std::string& buf, F&& f) {
  size_t pos = 0;
  while (buf.size() - pos >= 5) {
    uint32_t n = 0;
    std::memcpy(&n, buf.data() + pos, 4);
    if (n == 0 || n > kMaxFrame) return SIZE_MAX;
    if (buf.size() - pos - 4 < n) break;
    const uint8_t type = static_cast<uint8_t>(buf[pos + 4]);
    Reader r(buf.data() + pos + 5, n - 1);
    f(type, r);
    pos += 4 + n;
  }
  return pos;
}

// write() until done; false on an error (the peer is gone). Never raises SIGPIPE.
bool write_all(int fd, const char* p, size_t n);

}  // namespace rd::wire
