#include "server/tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace coalesce {
namespace {

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyFree>;
using BioPtr = std::unique_ptr<BIO, BioFree>;

BioPtr MemoryBio(const std::string& pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// Every certificate in `pem`, in order; an error if there is none or one does not parse.
absl::StatusOr<std::vector<X509Ptr>> ParseCertificates(const std::string& pem,
                                                       const char* what) {
  BioPtr bio = MemoryBio(pem);
  std::vector<X509Ptr> certs;
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    certs.emplace_back(cert);
  }
  // Reading stops with "no start line" at the end of the text; anything else is a real error.
  unsigned long error = ERR_peek_last_error();
  ERR_clear_error();
  bool at_end = ERR_GET_LIB(error) == ERR_LIB_PEM && ERR_GET_REASON(error) == PEM_R_NO_START_LINE;
  if (!certs.empty() && (error == 0 || at_end)) return certs;
  return absl::InvalidArgumentError(absl::StrCat(
      what, ": expected one or more PEM certificates (-----BEGIN CERTIFICATE-----), got ",
      certs.empty() ? "none" : "one that does not parse",
      error != 0 && !at_end ? absl::StrCat(" (", ERR_reason_error_string(error), ")") : ""));
}

std::string NameOf(X509* cert) {
  char buffer[256];
  X509_NAME_oneline(X509_get_subject_name(cert), buffer, sizeof(buffer));
  return buffer;
}

std::string NotAfter(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  ASN1_TIME_print(bio.get(), X509_get0_notAfter(cert));
  char* data = nullptr;
  long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, size);
}

absl::Status CheckNotExpired(X509* cert, const char* what) {
  if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": certificate ", NameOf(cert),
                                                   " expired on ", NotAfter(cert)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateTls(const TlsOptions& tls) {
  if (tls.cert_chain_pem.empty() != tls.private_key_pem.empty()) {
    return absl::InvalidArgumentError(tls.cert_chain_pem.empty()
                                          ? "TLS: a private key needs its certificate chain too"
                                          : "TLS: a certificate chain needs its private key too");
  }
  if (!tls.enabled()) {
    if (tls.mutual()) {
      return absl::InvalidArgumentError(
          "TLS: client certificate verification (mutual TLS) needs a server certificate and "
          "key");
    }
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<X509Ptr>> chain =
      ParseCertificates(tls.cert_chain_pem, "TLS certificate chain");
  if (!chain.ok()) return chain.status();
  if (absl::Status s = CheckNotExpired(chain->front().get(), "TLS certificate chain"); !s.ok()) {
    return s;
  }
  BioPtr bio = MemoryBio(tls.private_key_pem);
  KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  if (key == nullptr) {
    return absl::InvalidArgumentError(
        "TLS private key: expected an unencrypted PEM private key (-----BEGIN PRIVATE KEY-----), "
        "got none that parses");
  }
  if (X509_check_private_key(chain->front().get(), key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(
        "TLS private key: does not belong to the certificate ", NameOf(chain->front().get())));
  }
  if (tls.mutual()) {
    absl::StatusOr<std::vector<X509Ptr>> roots =
        ParseCertificates(tls.client_ca_pem, "TLS client CA");
    if (!roots.ok()) return roots.status();
  }
  return absl::OkStatus();
}

std::string DescribeTls(const TlsOptions& tls) {
  if (!tls.enabled()) return "off (plaintext)";
  auto chain = ParseCertificates(tls.cert_chain_pem, "TLS certificate chain");
  if (!chain.ok()) return std::string(chain.status().message());
  X509* leaf = chain->front().get();
  std::string server = absl::StrCat("server certificate ", NameOf(leaf), ", expires ",
                                    NotAfter(leaf));
  if (!tls.mutual()) return absl::StrCat("TLS (", server, ")");
  auto roots = ParseCertificates(tls.client_ca_pem, "TLS client CA");
  std::string ca = roots.ok() ? NameOf(roots->front().get()) : "?";
  return absl::StrCat("mutual TLS (", server, "; client certificates required, verified against ",
                      roots.ok() ? roots->size() : 0, " CA certificate(s), first ", ca, ")");
}

}  // namespace coalesce
