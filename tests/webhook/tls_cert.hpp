// A throw-away self-signed certificate for 127.0.0.1 / localhost, made with the OpenSSL API (so the
// tests need no openssl command-line tool).
#pragma once

#include <string>

namespace rdtest {

// Writes a P-256 key and a self-signed certificate (1 day, SAN IP:127.0.0.1 and DNS:localhost, also
// usable as its own CA file) as PEM files. Throws std::runtime_error on failure.
void write_self_signed_cert(const std::string& cert_path, const std::string& key_path);

}  // namespace rdtest
