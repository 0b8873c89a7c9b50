#include "http1_response.hpp"

#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/field.hpp>
#include <optional>

namespace rd::webhook {

namespace http = boost::beast::http;
using boost::beast::error_code;
using boost::beast::string_view;

// Beast's callbacks, writing straight into the reader: nothing is copied but what is kept.
class ResponseReader::Parser final : public http::basic_parser<false> {
 public:
  explicit Parser(ResponseReader& out) : out_(out) {
    eager(true);  // parse the body in the same put() as the header when it is there
    header_limit(64 * 1024);
    body_limit(static_cast<std::uint64_t>(out.max_body_bytes_));
  }
  int code = 0;

 private:
  void on_request_impl(http::verb, string_view, string_view, int, error_code&) override {}
  void on_response_impl(int status, string_view, int, error_code&) override {
    code = status;
    out_.retry_after_.clear();  // a new response (after 1xx) starts
    // A final status decides, whatever follows (even a body too large to read).
    if (status >= 200 || status == 101) out_.status_ = status;
  }
  void on_field_impl(http::field name, string_view, string_view value, error_code&) override {
    if (name == http::field::retry_after) out_.retry_after_.assign(value.data(), value.size());
  }
  void on_header_impl(error_code&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>&, error_code&) override {}
  size_t on_body_impl(string_view body, error_code&) override {
    keep(body);
    return body.size();
  }
  void on_chunk_header_impl(std::uint64_t, string_view, error_code&) override {}
  size_t on_chunk_body_impl(std::uint64_t, string_view body, error_code&) override {
    keep(body);
    return body.size();
  }
  void on_finish_impl(error_code&) override {}

  void keep(string_view body) {
    std::string& b = out_.body_;
    if (b.size() < out_.keep_body_bytes_) {
      b.append(body.data(), std::min(body.size(), out_.keep_body_bytes_ - b.size()));
    }
  }

  ResponseReader& out_;
};

struct ResponseReader::Slot {
  std::optional<Parser> parser;
};

ResponseReader::ResponseReader(size_t keep_body_bytes, size_t max_body_bytes)
    : keep_body_bytes_(keep_body_bytes),
      max_body_bytes_(max_body_bytes),
      slot_(std::make_unique<Slot>()) {
  reset();
}

ResponseReader::~ResponseReader() = default;

void ResponseReader::start_parser() {
  slot_->parser.emplace(*this);
}

void ResponseReader::reset() {
  start_parser();
  started_ = false;
  status_ = 0;
  retry_after_.clear();
  body_.clear();
  error_.clear();
  body_too_large_ = false;
}

ResponseReader::State ResponseReader::feed(std::string& in) {
  if (!in.empty()) started_ = true;
  size_t offset = 0;
  State state = State::kNeedMore;
  while (offset < in.size()) {
    Parser& p = *slot_->parser;
    error_code ec;
    const size_t used =
        p.put(boost::asio::const_buffer(in.data() + offset, in.size() - offset), ec);
    offset += used;
    if (ec == http::error::need_more) break;
    if (ec) {
      if (ec == http::error::body_limit) body_too_large_ = true;
      error_ = ec.message();
      state = State::kError;
      break;
    }
    if (p.is_header_done() && p.code >= 100 && p.code <= 199 && p.code != 101) {
      start_parser();  // an interim response: the final one follows
      continue;
    }
    if (p.is_done()) {
      state = State::kDone;
      break;
    }
    if (used == 0) break;
  }
  in.erase(0, offset);
  return state;
}

ResponseReader::State ResponseReader::feed_eof() {
  Parser& p = *slot_->parser;
  error_code ec;
  p.put_eof(ec);
  if (!ec && p.is_done()) return State::kDone;
  error_ = ec ? ec.message() : "the connection closed before the response ended";
  return State::kError;
}

bool ResponseReader::keep_alive() const {
  const Parser& p = *slot_->parser;
  return p.is_done() && p.keep_alive();
}

}  // namespace rd::webhook
