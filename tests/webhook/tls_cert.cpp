#include "tls_cert.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <memory>
#include <stdexcept>

namespace rdtest {

namespace {
struct Closer {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(std::FILE* f) const { std::fclose(f); }
};

void add_ext(X509* x, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) throw std::runtime_error("X509V3_EXT_conf_nid failed");
  X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
}
}  // namespace

void write_self_signed_cert(const std::string& cert_path, const std::string& key_path) {
  std::unique_ptr<EVP_PKEY, Closer> key(EVP_EC_gen("P-256"));
  std::unique_ptr<X509, Closer> x(X509_new());
  if (!key || !x) throw std::runtime_error("OpenSSL: cannot create key or certificate");
  X509_set_version(x.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -60);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), 24 * 3600);
  X509_set_pubkey(x.get(), key.get());
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_set_issuer_name(x.get(), name);
  add_ext(x.get(), NID_basic_constraints, "critical,CA:TRUE");
  add_ext(x.get(), NID_subject_key_identifier, "hash");
  add_ext(x.get(), NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost");
  if (X509_sign(x.get(), key.get(), EVP_sha256()) == 0)
    throw std::runtime_error("X509_sign failed");

  std::unique_ptr<std::FILE, Closer> cf(std::fopen(cert_path.c_str(), "w"));
  std::unique_ptr<std::FILE, Closer> kf(std::fopen(key_path.c_str(), "w"));
  if (!cf || !kf) throw std::runtime_error("cannot write " + cert_path + " / " + key_path);
  if (PEM_write_X509(cf.get(), x.get()) != 1 ||
      PEM_write_PrivateKey(kf.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    throw std::runtime_error("PEM write failed");
  }
}

}  // namespace rdtest
