#ifndef COALESCE_TESTS_TEST_CERTIFICATES_H_
#define COALESCE_TESTS_TEST_CERTIFICATES_H_

#include <stdlib.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace coalesce {

// Certificates made for a test run with the openssl command-line tool (EC P-256, valid two
// days): a CA; a server certificate for 127.0.0.1 and localhost (subjectAltName) signed by it;
// a client certificate signed by it; and a server and a client certificate signed by another CA
// (what a rotation replaces the first ones with). Files lie in `dir` as <name>.crt and
// <name>.key; the PEM text is loaded in the fields.
struct TestCertificates {
  std::string dir;
  std::string ca_cert;
  std::string server_cert, server_key;
  std::string client_cert, client_key;
  std::string other_ca_cert;
  std::string other_server_cert, other_server_key;
  std::string other_client_cert, other_client_key;

  std::string Path(const std::string& file) const { return absl::StrCat(dir, "/", file); }
};

namespace test_certificates_internal {

inline constexpr char kScript[] = R"sh(set -e
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
ca() {
  key "$1.key"
  openssl req -x509 -new -key "$1.key" -sha256 -days 2 -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$1.crt"
}
leaf() {
  key "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr"
  printf '%s\n' "$4" "$5" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$3.crt" -CAkey "$3.key" -CAcreateserial -days 2 \
    -sha256 -extfile "$1.ext" -out "$1.crt"
}
ca ca "coalesce test CA"
ca other-ca "coalesce other CA"
leaf server localhost ca "subjectAltName=IP:127.0.0.1,DNS:localhost" "extendedKeyUsage=serverAuth"
leaf other-server localhost other-ca "subjectAltName=IP:127.0.0.1,DNS:localhost" \
  "extendedKeyUsage=serverAuth"
leaf client "coalesce test client" ca "extendedKeyUsage=clientAuth" "keyUsage=digitalSignature"
leaf other-client "coalesce other client" other-ca "extendedKeyUsage=clientAuth" \
  "keyUsage=digitalSignature"
)sh";

inline std::string ReadAll(const std::string& path) {
  std::ifstream file(path);
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

}  // namespace test_certificates_internal

// Makes a fresh set in a new temporary folder. An error (with openssl's output) if openssl is
// missing or fails: scripts/install-deps.sh installs it.
inline absl::StatusOr<TestCertificates> MakeTestCertificates() {
  using test_certificates_internal::ReadAll;
  char dir_template[] = "/tmp/coalesce-certs-XXXXXX";
  if (mkdtemp(dir_template) == nullptr) return absl::InternalError("mkdtemp failed");
  TestCertificates certs;
  certs.dir = dir_template;
  {
    std::ofstream script(certs.Path("make.sh"));
    script << test_certificates_internal::kScript;
  }
  std::string command =
      absl::StrCat("cd '", certs.dir, "' && sh make.sh > make.log 2>&1");
  if (std::system(command.c_str()) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "openssl could not make test certificates in ", certs.dir, ":\n",
        ReadAll(certs.Path("make.log"))));
  }
  certs.ca_cert = ReadAll(certs.Path("ca.crt"));
  certs.server_cert = ReadAll(certs.Path("server.crt"));
  certs.server_key = ReadAll(certs.Path("server.key"));
  certs.client_cert = ReadAll(certs.Path("client.crt"));
  certs.client_key = ReadAll(certs.Path("client.key"));
  certs.other_ca_cert = ReadAll(certs.Path("other-ca.crt"));
  certs.other_server_cert = ReadAll(certs.Path("other-server.crt"));
  certs.other_server_key = ReadAll(certs.Path("other-server.key"));
  certs.other_client_cert = ReadAll(certs.Path("other-client.crt"));
  certs.other_client_key = ReadAll(certs.Path("other-client.key"));
  return certs;
}

}  // namespace coalesce

#endif  // COALESCE_TESTS_TEST_CERTIFICATES_H_
