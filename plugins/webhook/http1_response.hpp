// Reads one HTTP/1.1 response from the bytes of a connection, with Boost.Beast's parser (no
// hand-written HTTP parsing): the status, Retry-After, the first bytes of the body for the failure
// reason, and whether the connection may carry the next request. Used by the delivery loop's own
// HTTP/1.1 client (delivery_loop.cpp), which sends plain-http requests without libcurl.
//
// Boost stays behind this header (pimpl): only http1_response.cpp includes Beast.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

namespace rd::webhook {

class ResponseReader {
 public:
  enum class State {
    kNeedMore,  // the response is not complete yet
    kDone,      // a final response is complete (status, headers, body)
    kError,     // the bytes are not an HTTP/1.1 response, or too large to read (see error())
  };

  // `keep_body_bytes`: the body bytes kept for the reason; `max_body_bytes`: read at most this
  // much of a body (beyond it the response ends as kError with the status known).
  ResponseReader(size_t keep_body_bytes, size_t max_body_bytes);
  ~ResponseReader();
  ResponseReader(const ResponseReader&) = delete;
  ResponseReader& operator=(const ResponseReader&) = delete;

  // Before each request.
  void reset();

  // Parses what it can of `in` and erases the bytes it used from its front. Bytes after a
  // complete response stay in `in`. An interim 1xx response (not 101) is skipped.
  State feed(std::string& in);
  // The peer closed the connection: ends a body that runs to the close, else kError.
  State feed_eof();

  bool started() const { return started_; }  // any byte of a response arrived
  long status() const { return status_; }    // 0 until a final status line was read
  const std::string& retry_after() const { return retry_after_; }
  std::string& body() { return body_; }
  bool keep_alive() const;  // the connection may carry another request (after kDone)
  const std::string& error() const { return error_; }
  bool body_too_large() const { return body_too_large_; }

 private:
  class Parser;
  struct Slot;  // holds the current response's parser (Beast parsers are not reusable)
  void start_parser();

  const size_t keep_body_bytes_;
  const size_t max_body_bytes_;
  std::unique_ptr<Slot> slot_;
  bool started_ = false;
  long status_ = 0;
  std::string retry_after_;
  std::string body_;
  std::string error_;
  bool body_too_large_ = false;

  friend class Parser;
};

}  // namespace rd::webhook
