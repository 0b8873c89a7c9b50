// Keeps the TLS sessions in libcurl's session cache resumable after the connection that made them
// closes (libcurl 7.88 with OpenSSL 3; see tls_sessions.cpp for why it needs help).
#pragma once

#include <curl/curl.h>

namespace rd::webhook {

// Sets CURLOPT_SSL_CTX_FUNCTION on `easy` so that libcurl's session cache (the loop's CURLSH)
// holds copies of the connections' TLS sessions instead of the connections' own session objects.
// Does nothing, and returns false, when libcurl's TLS backend is not OpenSSL.
bool keep_tls_sessions_resumable(CURL* easy);

}  // namespace rd::webhook
