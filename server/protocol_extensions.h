#ifndef COALESCE_SERVER_PROTOCOL_EXTENSIONS_H_
#define COALESCE_SERVER_PROTOCOL_EXTENSIONS_H_

#include <string>
#include <vector>

namespace coalesce {

// One extension of the Open Inference Protocol, by the name Triton gives it in ServerMetadata's
// `extensions`, with the GRPCInferenceService methods it adds (none for an extension that only
// adds request parameters, such as schedule_policy).
struct ProtocolExtension {
  std::string name;
  std::vector<std::string> rpcs;
};

// The extensions this server implements, in the order ServerMetadata lists them. An extension
// belongs here only when every RPC it names answers (not UNIMPLEMENTED); the RPCs of the
// extensions not listed answer UNIMPLEMENTED with a message naming the feature
// (tests/protocol_extensions_test.cc checks both). Pure; thread-safe.
const std::vector<ProtocolExtension>& ImplementedExtensions();

}  // namespace coalesce

#endif  // COALESCE_SERVER_PROTOCOL_EXTENSIONS_H_
