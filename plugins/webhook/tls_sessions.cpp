#include "tls_sessions.hpp"

#include <openssl/ssl.h>

#include <atomic>
#include <string>

namespace rd::webhook {

// Why: libcurl (7.88, as Debian 12 ships it) caches the SSL_SESSION object of a live connection,
// by pointer. When it closes an HTTP/2 connection (the server closed it while idle, a GOAWAY, the
// pool is full, shutdown), its HTTP/2 filter does not pass the close on to the TLS filter, so the
// TLS filter is destroyed without SSL_shutdown; OpenSSL's SSL_free then takes the connection for
// a broken one and marks its session not resumable (ssl_clear_bad_session ->
// SSL_CTX_remove_session -> not_resumable = 1) - the very object in libcurl's cache. The next
// connection is offered that session ("SSL re-using session ID"), OpenSSL leaves it out of the
// ClientHello, and the handshake is a full one. (libcurl 8.4 passes the close on, 8.10 caches a
// serialised copy.)
//
// So: libcurl's cache is given a copy (SSL_SESSION_dup) of every session instead of the
// connection's own object - of each new session or ticket (the new-session callback), and, over
// TLS 1.2, of a resumed session once its handshake is done (a resumed TLS 1.2 connection keeps
// using the cached object; a resumed TLS 1.3 one gets new tickets, and a TLS 1.3 ticket is not
// meant to be offered twice). A connection's later fate then no longer touches what is cached.
// libcurl's own new-session callback does the caching (the lookup, the replacement of the older
// entry, the share's lock); it is only handed the copy.
//
// And: libcurl sets SSL_OP_NO_TICKET, so over TLS 1.2 it asks for no session ticket and can resume
// only where the server keeps a session cache (nginx's default, `ssl_session_cache none`, keeps
// none, and no server's cache survives its restart). Tickets are allowed again here, as libcurl's
// change of 2009 that set the option suggests for applications that want them. (TLS 1.3 tickets
// do not depend on it.)

namespace {

using NewSessionCallback = int (*)(SSL*, SSL_SESSION*);

// libcurl's new-session callback (the same function for every SSL_CTX libcurl makes), taken from
// each SSL_CTX it sets up.
std::atomic<NewSessionCallback> curl_new_session{nullptr};

// Hands libcurl's cache a copy of `session`. The callback returns 1 when the cache took the
// reference it was given.
void cache_copy(SSL* ssl, const SSL_SESSION* session) {
  const NewSessionCallback cache = curl_new_session.load(std::memory_order_acquire);
  if (cache == nullptr || session == nullptr) return;
  SSL_SESSION* copy = SSL_SESSION_dup(session);
  if (copy == nullptr) return;
  if (cache(ssl, copy) == 0) SSL_SESSION_free(copy);
}

int on_new_session(SSL* ssl, SSL_SESSION* session) {
  cache_copy(ssl, session);
  return 0;  // OpenSSL keeps its own reference to `session`; no one else took one
}

void on_info(const SSL* ssl, int where, int /*ret*/) {
  if ((where & SSL_CB_HANDSHAKE_DONE) != 0 && SSL_version(ssl) < TLS1_3_VERSION &&
      SSL_session_reused(ssl) == 1) {
    cache_copy(const_cast<SSL*>(ssl), SSL_get0_session(ssl));
  }
}

// Called by libcurl for each new connection's SSL_CTX, after it has installed its new-session
// callback and before the SSL object (which takes over these callbacks) is made.
CURLcode on_ssl_ctx(CURL* /*easy*/, void* ssl_ctx, void* /*userptr*/) {
  auto* ctx = static_cast<SSL_CTX*>(ssl_ctx);
  const NewSessionCallback cache = SSL_CTX_sess_get_new_cb(ctx);
  if (cache == nullptr || cache == &on_new_session) return CURLE_OK;  // not libcurl's cache
  curl_new_session.store(cache, std::memory_order_release);
  SSL_CTX_clear_options(ctx, SSL_OP_NO_TICKET);
  SSL_CTX_sess_set_new_cb(ctx, &on_new_session);
  SSL_CTX_set_info_callback(ctx, &on_info);
  return CURLE_OK;
}

// Whether libcurl's TLS backend is the OpenSSL this plugin is built with (same major version), so
// that the SSL_CTX it hands over is one this code may use.
bool curl_uses_our_openssl() {
  const curl_version_info_data* info = curl_version_info(CURLVERSION_NOW);
  const std::string ours = "OpenSSL/" + std::to_string(OPENSSL_VERSION_MAJOR) + ".";
  return info != nullptr && info->ssl_version != nullptr &&
         std::string(info->ssl_version).rfind(ours, 0) == 0;
}

}  // namespace

bool keep_tls_sessions_resumable(CURL* easy) {
  static const bool openssl = curl_uses_our_openssl();
  if (!openssl) return false;
  return curl_easy_setopt(easy, CURLOPT_SSL_CTX_FUNCTION, &on_ssl_ctx) == CURLE_OK;
}

}  // namespace rd::webhook
