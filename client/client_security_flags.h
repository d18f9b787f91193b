#ifndef COALESCE_CLIENT_CLIENT_SECURITY_FLAGS_H_
#define COALESCE_CLIENT_CLIENT_SECURITY_FLAGS_H_

#include "client/client_security.h"

namespace coalesce {

// The flags coalesce-client and coalesce-bench share for reaching a secured server:
// --tls_ca_file, --tls_cert_file, --tls_key_file and --auth_token_file (defined in
// client_security_flags.cc, which each program's --help lists), as ClientSecurityOptions.
ClientSecurityOptions ClientSecurityOptionsFromFlags();

}  // namespace coalesce

#endif  // COALESCE_CLIENT_CLIENT_SECURITY_FLAGS_H_
