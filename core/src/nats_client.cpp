#include "nats_client.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string_view>
#include <thread>
#include <vector>

#include "logging.hpp"
#include "retry_policy.hpp"

namespace rd {

std::string nats_error_text(const std::string& what, natsStatus s, jsErrCode js_err) {
  std::string text = what + ": " + natsStatus_GetText(s);
  const char* last = nats_GetLastError(nullptr);
  if (last != nullptr && *last != '\0') text += std::string(" (") + last + ")";
  if (js_err != 0) text += " [JetStream error " + std::to_string(static_cast<int>(js_err)) + "]";
  return text;
}

namespace {
std::vector<std::string> split_urls(const std::string& urls) {
  std::vector<std::string> out;
  std::stringstream ss(urls);
  std::string item;
  while (std::getline(ss, item, ',')) {
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (!item.empty()) out.push_back(item);
  }
  return out;
}
}  // namespace

namespace {
const char kBase32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

uint16_t crc16(const std::vector<uint8_t>& data) {  // CRC-16/XMODEM, as nkeys uses
  uint16_t crc = 0;
  for (uint8_t b : data) {
    crc ^= static_cast<uint16_t>(b) << 8;
    for (int i = 0; i < 8; ++i) {
      crc = (crc & 0x8000) ? static_cast<uint16_t>((crc << 1) ^ 0x1021)
                           : static_cast<uint16_t>(crc << 1);
    }
  }
  return crc;
}

std::optional<std::vector<uint8_t>> base32_decode(const std::string& text) {
  std::vector<uint8_t> out;
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    const char* p = std::strchr(kBase32, c);
    if (c == '\0' || p == nullptr) return std::nullopt;
    buffer = (buffer << 5) | static_cast<uint32_t>(p - kBase32);
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<uint8_t>((buffer >> bits) & 0xff));
    }
  }
  return out;
}

std::string base32_encode(const std::vector<uint8_t>& data) {
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (uint8_t b : data) {
    buffer = (buffer << 8) | b;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += kBase32[(buffer >> bits) & 31];
    }
  }
  if (bits > 0) out += kBase32[(buffer << (5 - bits)) & 31];
  return out;
}

std::string read_text_file(const std::string& path, const char* key) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw NatsError(std::string(key) + ": cannot read '" + path + "': " + std::strerror(errno));
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

bool starts_with(const std::string& s, const char* prefix) {
  return s.rfind(prefix, 0) == 0;
}
}  // namespace

std::string nkey_public_key_from_seed(const std::string& seed_text) {
  // The seed is the first word starting with "SU" (a bare .nk file, or one line of a larger file).
  std::string seed;
  std::istringstream words(seed_text);
  for (std::string w; words >> w;) {
    if (starts_with(w, "SU")) {
      seed = w;
      break;
    }
  }
  const auto raw = seed.empty() ? std::nullopt : base32_decode(seed);
  // 2 prefix bytes, 32 bytes of ed25519 seed, CRC-16 (little-endian).
  if (!raw || raw->size() != 36) throw NatsError("holds no nkey user seed (a word starting SU...)");
  std::vector<uint8_t> body(raw->begin(), raw->begin() + 34);
  const uint16_t crc = static_cast<uint16_t>((*raw)[34] | ((*raw)[35] << 8));
  const int seed_prefix = (*raw)[0] & 0xf8;
  const int key_prefix = (((*raw)[0] & 7) << 5) | (((*raw)[1] & 0xf8) >> 3);
  if (crc16(body) != crc || seed_prefix != (18 << 3) || key_prefix != (20 << 3)) {
    throw NatsError("holds no valid nkey user seed (checksum or prefix wrong; expected SU...)");
  }
  EVP_PKEY* key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, raw->data() + 2, 32);
  uint8_t pub[32];
  size_t len = sizeof pub;
  const bool ok = key != nullptr && EVP_PKEY_get_raw_public_key(key, pub, &len) == 1 && len == 32;
  EVP_PKEY_free(key);
  if (!ok) throw NatsError("nkey seed: cannot derive its ed25519 public key");
  std::vector<uint8_t> pub_raw{static_cast<uint8_t>(20 << 3)};
  pub_raw.insert(pub_raw.end(), pub, pub + 32);
  const uint16_t pub_crc = crc16(pub_raw);
  pub_raw.push_back(static_cast<uint8_t>(pub_crc & 0xff));
  pub_raw.push_back(static_cast<uint8_t>(pub_crc >> 8));
  return base32_encode(pub_raw);
}

namespace {
// The first two blocks of a .creds file as nats.c finds them (nats_GetJWTOrSeed): a block is the
// line after a header line (one ending in "---" with another "---" before it) when the next
// non-empty line is a header too. The first must be a JWT (three dot-separated parts), the second
// a user nkey seed.
bool looks_like_creds(const std::string& text) {
  auto header = [](std::string_view line) {
    if (line.size() < 6 || line.substr(line.size() - 3) != "---") return false;
    return line.substr(0, line.size() - 3).find("---") != std::string_view::npos;
  };
  std::vector<std::string_view> lines;
  for (size_t start = 0; start <= text.size();) {
    const size_t end = std::min(text.find('\n', start), text.size());
    lines.emplace_back(text.data() + start, end - start);
    start = end + 1;
  }
  std::vector<std::string_view> items;
  for (size_t i = 0; i < lines.size() && items.size() < 2; ++i) {
    if (!header(lines[i]) || i + 1 >= lines.size()) continue;
    size_t next = i + 2;
    while (next < lines.size() && lines[next].empty()) ++next;
    if (next < lines.size() && header(lines[next])) {
      items.push_back(lines[i + 1]);
      i = next;
    }
  }
  return items.size() == 2 && std::count(items[0].begin(), items[0].end(), '.') == 2 &&
         items[1].substr(0, 2) == "SU";
}
}  // namespace

void apply_nats_security(natsOptions* opts, const Config::Nats& n) {
  // "config.yaml:12: nats.tls.ca_file '/x'": where the value came from, then what it is.
  auto key = [&](const char* name, const std::string& value) {
    auto it = n.origins.find(name);
    return (it == n.origins.end() ? std::string() : it->second + ": ") + name +
           (value.empty() ? std::string() : " '" + value + "'");
  };
  auto check = [](natsStatus s, const std::string& what) {
    if (s != NATS_OK) throw NatsError(nats_error_text(what, s));
  };
  if (!n.user.empty()) {
    check(natsOptions_SetUserInfo(opts, n.user.c_str(), n.password.c_str()), key("nats.user", ""));
  }
  if (!n.token.empty()) check(natsOptions_SetToken(opts, n.token.c_str()), key("nats.token", ""));
  if (!n.credentials_file.empty()) {
    const std::string what = key("nats.credentials_file", n.credentials_file);
    // nats.c reads the file only when it connects; its shape is checked here, so that
    // --check-config and start-up refuse a file that can never work.
    if (!looks_like_creds(read_text_file(n.credentials_file, what.c_str()))) {
      throw NatsError(what +
                      ": not a .creds file: expected a '-----BEGIN NATS USER JWT-----' block "
                      "with the user JWT, then a '-----BEGIN USER NKEY SEED-----' block with "
                      "its nkey seed (SU...), as `nsc generate creds` writes");
    }
    check(natsOptions_SetUserCredentialsFromFiles(opts, n.credentials_file.c_str(), nullptr),
          what + " (a .creds file: user JWT and nkey seed)");
  }
  if (!n.nkey_seed_file.empty()) {
    const std::string what = key("nats.nkey_seed_file", n.nkey_seed_file);
    std::string pub;
    try {
      pub = nkey_public_key_from_seed(read_text_file(n.nkey_seed_file, what.c_str()));
    } catch (const NatsError& e) {
      const std::string text = e.what();
      throw NatsError(starts_with(text, what.c_str()) ? text : what + " " + text);
    }
    check(natsOptions_SetNKeyFromSeed(opts, pub.c_str(), n.nkey_seed_file.c_str()), what);
  }
  bool tls_url = false;
  for (const auto& u : split_urls(n.url)) tls_url = tls_url || starts_with(u, "tls://");
  if (n.tls.enabled() || tls_url) {
    check(natsOptions_SetSecure(opts, true), "TLS");
    if (!n.tls.ca_file.empty()) {
      check(natsOptions_LoadCATrustedCertificates(opts, n.tls.ca_file.c_str()),
            key("nats.tls.ca_file", n.tls.ca_file) + " (expected PEM CA certificates)");
    }
    if (!n.tls.cert_file.empty()) {
      check(
          natsOptions_LoadCertificatesChain(opts, n.tls.cert_file.c_str(), n.tls.key_file.c_str()),
          key("nats.tls.cert_file", n.tls.cert_file) + " / nats.tls.key_file '" + n.tls.key_file +
              "' (expected a PEM certificate and its private key)");
    }
    if (!n.tls.verify) {
      check(natsOptions_SkipServerVerification(opts, true), key("nats.tls.verify", ""));
    }
  }
}

void check_nats_options(const Config::Nats& nats) {
  natsOptions* opts = nullptr;
  if (natsOptions_Create(&opts) != NATS_OK) throw NatsError("cannot create NATS options");
  try {
    apply_nats_security(opts, nats);
  } catch (...) {
    natsOptions_Destroy(opts);
    throw;
  }
  natsOptions_Destroy(opts);
}

std::string nats_connect_hint(const Config::Nats& n, natsStatus s) {
  const std::string last = nats_GetLastError(nullptr) ? nats_GetLastError(nullptr) : "";
  auto has = [&](const char* word) { return last.find(word) != std::string::npos; };
  const std::string server = "NATS at " + redact_url(n.url);
  if (s == NATS_CONNECTION_AUTH_FAILED || has("uthorization") || has("uthentication")) {
    std::string method =
        "no credentials are configured: set nats.user/nats.password "
        "(NATS_USER/NATS_PASSWORD), nats.token (NATS_TOKEN), "
        "nats.credentials_file (NATS_CREDS) or nats.nkey_seed_file";
    if (!n.user.empty())
      method = "check nats.user '" + n.user + "' and nats.password (NATS_PASSWORD)";
    if (!n.token.empty()) method = "check nats.token (NATS_TOKEN)";
    if (!n.credentials_file.empty())
      method = "check nats.credentials_file '" + n.credentials_file + "' (NATS_CREDS)";
    if (!n.nkey_seed_file.empty())
      method = "check that nats.nkey_seed_file '" + n.nkey_seed_file +
               "' holds the seed of an nkey user the server lists";
    return server + " refused the credentials: " + method;
  }
  if (s == NATS_SECURE_CONNECTION_REQUIRED) {
    return server +
           " requires TLS: set nats.tls.ca_file (NATS_TLS_CA_FILE) to the CA of its "
           "certificate, or write the URL as tls://host:port";
  }
  if (s == NATS_SECURE_CONNECTION_WANTED) {
    return server +
           " does not offer TLS but nats.tls.* is set: enable tls on the server or remove "
           "nats.tls.*";
  }
  if (s == NATS_SSL_ERROR || has("SSL") || has("certificate") || has("handshake")) {
    const std::string ca =
        n.tls.ca_file.empty()
            ? "set nats.tls.ca_file (NATS_TLS_CA_FILE) to the CA that signed "
              "it (while unset, only the system's CAs are trusted)"
            : "check that nats.tls.ca_file '" + n.tls.ca_file + "' holds the CA that signed it";
    return "TLS with " + server +
           " failed, its certificate is not trusted or does not match: " + ca +
           "; the certificate must name the host of nats.url (subjectAltName); a server "
           "that verifies clients also needs nats.tls.cert_file and nats.tls.key_file";
  }
  bool tls_url = false;
  for (const auto& u : split_urls(n.url)) tls_url = tls_url || starts_with(u, "tls://");
  if ((n.tls.enabled() || tls_url) && (s == NATS_PROTOCOL_ERROR || s == NATS_CONNECTION_CLOSED)) {
    // TLS 1.3 reports a refused client certificate after the handshake: the server just closes.
    return server + " closed the TLS connection after the handshake: " +
           (n.tls.cert_file.empty()
                ? std::string("a server that verifies clients (tls { verify: true }) needs "
                              "nats.tls.cert_file and nats.tls.key_file (NATS_TLS_CERT_FILE, "
                              "NATS_TLS_KEY_FILE): a client certificate signed by a CA it trusts")
                : "check that nats.tls.cert_file '" + n.tls.cert_file +
                      "' is signed by a CA the server trusts (its tls { ca_file })");
  }
  return "cannot reach " + server + ": check nats.url / NATS_URL and that nats-server runs";
}

NatsClient::NatsClient(const Config::Nats& nats, Metrics* metrics, std::string name)
    : cfg_(nats), urls_(nats.url), name_(std::move(name)), metrics_(metrics) {}

NatsClient::~NatsClient() {
  closing_ = true;
  if (js_ != nullptr) jsCtx_Destroy(js_);
  if (nc_ != nullptr) {
    natsConnection_Close(nc_);
    // nats.c runs the disconnected and closed callbacks on its own thread after Close returns,
    // with `this` as closure: wait for the closed one, the last, before the members go away.
    std::unique_lock<std::mutex> lock(closed_mu_);
    closed_cv_.wait_for(lock, std::chrono::seconds(5), [&] { return closed_; });
    lock.unlock();
    natsConnection_Destroy(nc_);
  }
  if (opts_ != nullptr) natsOptions_Destroy(opts_);
}

void NatsClient::on_disconnected(natsConnection*, void* closure) {
  auto* self = static_cast<NatsClient*>(closure);
  if (self->metrics_) self->metrics_->nats_connected = 0;
  if (self->closing_) return;
  log::warn("nats_disconnected", {log::kv("reason", "connection lost; reconnecting")});
}

void NatsClient::on_reconnected(natsConnection* nc, void* closure) {
  auto* self = static_cast<NatsClient*>(closure);
  if (self->metrics_) {
    self->metrics_->nats_connected = 1;
    self->metrics_->nats_reconnects++;
  }
  char url[256] = {0};
  natsConnection_GetConnectedUrl(nc, url, sizeof url);
  log::info("nats_reconnected", {log::kv("server", redact_url(url))});
}

void NatsClient::on_closed(natsConnection*, void* closure) {
  auto* self = static_cast<NatsClient*>(closure);
  if (self->metrics_) self->metrics_->nats_connected = 0;
  // Notified under the lock: once the destructor sees closed_, nothing here touches `self`.
  std::lock_guard<std::mutex> lock(self->closed_mu_);
  self->closed_ = true;
  self->closed_cv_.notify_all();
}

void NatsClient::on_error(natsConnection*, natsSubscription*, natsStatus err, void*) {
  log::warn("nats_async_error", {log::kv("error", natsStatus_GetText(err))});
}

bool NatsClient::connect(const std::function<bool()>& should_stop, bool wait) {
  const auto urls = split_urls(urls_);
  std::vector<const char*> curls;
  for (const auto& u : urls) curls.push_back(u.c_str());
  natsStatus s = natsOptions_Create(&opts_);
  if (s == NATS_OK) s = natsOptions_SetServers(opts_, curls.data(), static_cast<int>(curls.size()));
  if (s != NATS_OK) {
    throw NatsError(nats_error_text(
        "invalid nats.url '" + redact_url(urls_) + "' (expected nats://host:port[,nats://...])",
        s));
  }
  natsOptions_SetName(opts_, name_.c_str());
  natsOptions_SetMaxReconnect(opts_, -1);  // endless
  natsOptions_SetReconnectWait(opts_, 250);
  natsOptions_SetReconnectJitter(opts_, 100, 1000);
  natsOptions_SetReconnectBufSize(opts_, 64 * 1024 * 1024);  // acks issued while reconnecting
  natsOptions_SetTimeout(opts_, 5000);
  natsOptions_SetPingInterval(opts_, 5000);
  natsOptions_SetMaxPingsOut(opts_, 3);
  natsOptions_SetDisconnectedCB(opts_, &NatsClient::on_disconnected, this);
  natsOptions_SetReconnectedCB(opts_, &NatsClient::on_reconnected, this);
  natsOptions_SetClosedCB(opts_, &NatsClient::on_closed, this);
  natsOptions_SetErrorHandler(opts_, &NatsClient::on_error, this);
  if (urls.size() > 1) natsOptions_SetNoRandomize(opts_, false);
  apply_nats_security(opts_, cfg_);
  if (!cfg_.tls.verify) {
    log::warn("nats_tls_unverified",
              {log::kv("url", redact_url(urls_)),
               log::kv("effect",
                       "nats.tls.verify is false: the server's certificate is not "
                       "checked, anyone on the path can pose as the server")});
  }

  // nats.c before 3.10 (Debian 12 ships 3.4.1) leaves the signature of the server's nonce out of
  // CONNECT when the signature's first byte is 0: its base64 encoder took the binary signature
  // for a C string (nats-io/nats.c#705, fixed in 3.10). So one connection in 256 made with an
  // nkey seed or a .creds file is refused with "Authorization Violation" although the
  // credentials are good. Every attempt signs a new nonce: refused ones are tried again at once,
  // up to kSignedAttempts in all (a spurious refusal: 1 in 16.7 million). Credentials the server
  // really refuses are refused every time and reported as before.
  constexpr int kSignedAttempts = 3;
  const bool signs_nonce = !cfg_.credentials_file.empty() || !cfg_.nkey_seed_file.empty();
  int signed_attempts = 0;
  auto last_log = std::chrono::steady_clock::now() - std::chrono::hours(1);
  while (true) {
    s = natsConnection_Connect(&nc_, opts_);
    if (s == NATS_OK) break;
    if (signs_nonce && s == NATS_CONNECTION_AUTH_FAILED && ++signed_attempts < kSignedAttempts)
      continue;
    signed_attempts = 0;
    if (!wait) {
      const std::string hint = nats_connect_hint(cfg_, s);
      throw NatsError(nats_error_text("cannot connect to NATS at " + redact_url(urls_), s) + "\n" +
                      hint);
    }
    const auto now = std::chrono::steady_clock::now();
    if (now - last_log > std::chrono::seconds(5)) {
      const char* last = nats_GetLastError(nullptr);
      const std::string hint = nats_connect_hint(cfg_, s);
      // Refused credentials or an untrusted certificate will not heal by waiting: an error.
      const bool needs_operator = hint.rfind("cannot reach ", 0) != 0;
      log::write(
          needs_operator ? log::Level::error : log::Level::warn, "nats_connect_failed",
          {log::kv("url", redact_url(urls_)),
           log::kv("error", std::string(natsStatus_GetText(s)) +
                                (last != nullptr && *last != '\0' ? std::string(" (") + last + ")"
                                                                  : std::string())),
           log::kv("action", "retrying; " + hint)});
      last_log = now;
    }
    for (int i = 0; i < 10; ++i) {
      if (should_stop()) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  if (metrics_) metrics_->nats_connected = 1;
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = 5000;
  s = natsConnection_JetStream(&js_, nc_, &jo);
  if (s != NATS_OK) throw NatsError(nats_error_text("JetStream context", s));
  char url[256] = {0};
  natsConnection_GetConnectedUrl(nc_, url, sizeof url);
  log::info("nats_connected", {log::kv("server", redact_url(url))});
  return true;
}

bool NatsClient::connected() const {
  return nc_ != nullptr && natsConnection_Status(nc_) == NATS_CONN_STATUS_CONNECTED;
}

void NatsClient::ensure_stream(const std::string& name, const std::vector<std::string>& subjects,
                               bool work_queue, int replicas) {
  jsStreamInfo* si = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&si, js_, name.c_str(), nullptr, &err);
  if (s == NATS_OK) {
    jsStreamInfo_Destroy(si);
    return;
  }
  if (s != NATS_NOT_FOUND && err != JSStreamNotFoundErr) {
    throw NatsError(nats_error_text(
        "stream info for '" + name + "' (is JetStream enabled? start nats-server with -js)", s,
        err));
  }
  std::vector<const char*> subs;
  for (const auto& x : subjects) subs.push_back(x.c_str());
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = name.c_str();
  cfg.Subjects = subs.data();
  cfg.SubjectsLen = static_cast<int>(subs.size());
  cfg.Storage = js_FileStorage;
  cfg.Retention = work_queue ? js_WorkQueuePolicy : js_LimitsPolicy;
  cfg.Duplicates = 2LL * 60 * 1'000'000'000;
  cfg.Replicas = replicas;  // 2 min de-duplication window (Nats-Msg-Id)
  s = js_AddStream(&si, js_, &cfg, nullptr, &err);
  if (s != NATS_OK && err != JSStreamNameExistErr) {
    throw NatsError(nats_error_text("cannot create stream '" + name + "'", s, err));
  }
  if (si) jsStreamInfo_Destroy(si);
  log::info("stream_created",
            {log::kv("stream", name), log::kv("subjects", subjects.empty() ? "" : subjects[0])});
}

ConsumerSettings NatsClient::consumer_settings(const std::string& stream,
                                               const std::string& consumer) {
  jsConsumerInfo* ci = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  natsStatus s = js_GetConsumerInfo(&ci, js_, stream.c_str(), consumer.c_str(), nullptr, &err);
  if (s != NATS_OK)
    throw NatsError(nats_error_text("consumer info for " + stream + "/" + consumer, s, err));
  ConsumerSettings out;
  out.max_deliver = ci->Config->MaxDeliver <= 0 ? -1 : ci->Config->MaxDeliver;
  out.ack_wait_ms = ci->Config->AckWait / 1'000'000;
  out.max_ack_pending = ci->Config->MaxAckPending;
  jsConsumerInfo_Destroy(ci);
  return out;
}

ConsumerSettings NatsClient::ensure_consumer(const Config& config) {
  const Config::Nats& cfg = config.nats;
  const int max_in_flight = config.delivery.max_in_flight + config.delivery.max_waiting;
  const int64_t wanted_max_deliver = jetstream_max_deliver(config);
  jsConsumerInfo* ci = nullptr;
  jsErrCode err = static_cast<jsErrCode>(0);
  natsStatus s =
      js_GetConsumerInfo(&ci, js_, cfg.stream.c_str(), cfg.consumer.c_str(), nullptr, &err);
  if (s == NATS_OK) {
    jsConsumerInfo_Destroy(ci);
  } else if (!cfg.create) {
    throw NatsError(nats_error_text(
        "durable consumer '" + cfg.consumer + "' on stream '" + cfg.stream +
            "' does not exist and nats.create is false (create it, or set nats.create: true)",
        s, err));
  } else {
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = cfg.consumer.c_str();
    cc.AckPolicy = js_AckExplicit;
    cc.DeliverPolicy = js_DeliverAll;
    cc.AckWait = cfg.ack_wait_ms * 1'000'000;
    cc.MaxDeliver = wanted_max_deliver;
    // Each instance bounds itself with delivery.max_in_flight; leave room for several instances.
    cc.MaxAckPending = std::max<int64_t>(65'536, static_cast<int64_t>(max_in_flight) * 16);
    cc.MaxWaiting = 512;
    if (cfg.subjects.size() == 1 && cfg.subjects[0] != cfg.subject_prefix + ".>") {
      cc.FilterSubject = cfg.subjects[0].c_str();
    }
    s = js_AddConsumer(&ci, js_, cfg.stream.c_str(), &cc, nullptr, &err);
    if (s != NATS_OK && err != JSConsumerNameExistErr && err != JSConsumerExistingActiveErr) {
      throw NatsError(
          nats_error_text("cannot create durable consumer '" + cfg.consumer + "'", s, err));
    }
    if (ci) jsConsumerInfo_Destroy(ci);
    log::info("consumer_created", {log::kv("stream", cfg.stream), log::kv("consumer", cfg.consumer),
                                   log::kv("max_deliver", wanted_max_deliver),
                                   log::kv("max_attempts", cfg.max_deliver)});
  }
  ConsumerSettings settings = consumer_settings(cfg.stream, cfg.consumer);
  if (wanted_max_deliver > 0 && settings.max_deliver > 0 &&
      settings.max_deliver < wanted_max_deliver) {
    log::warn(
        "consumer_max_deliver_low",
        {log::kv("consumer", cfg.stream + "/" + cfg.consumer),
         log::kv("max_deliver", settings.max_deliver), log::kv("needed", wanted_max_deliver),
         log::kv("effect",
                 "JetStream counts every deferral (destination down or saturated) as a "
                 "delivery: a job deferred more than " +
                     std::to_string(std::max<int64_t>(0, settings.max_deliver - cfg.max_deliver)) +
                     " times is dead-lettered before delivery.give_up_after"),
         log::kv("fix", "nats consumer edit " + cfg.stream + " " + cfg.consumer +
                            " --max-deliver " + std::to_string(wanted_max_deliver) +
                            ", or delete the consumer and let route-delivery create it "
                            "(nats.max_deliver " +
                            std::to_string(cfg.max_deliver) +
                            " stays the number of real attempts)")});
  }
  if (settings.max_ack_pending > 0 && settings.max_ack_pending < max_in_flight) {
    log::warn(
        "consumer_max_ack_pending_low",
        {log::kv("max_ack_pending", settings.max_ack_pending),
         log::kv("max_in_flight", max_in_flight),
         log::kv("effect", "the server caps unacknowledged jobs below delivery.max_in_flight")});
  }
  return settings;
}

void NatsClient::flush(int64_t timeout_ms) {
  if (nc_ != nullptr) natsConnection_FlushTimeout(nc_, timeout_ms);
}

}  // namespace rd
