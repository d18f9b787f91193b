// InferenceService's run-time settings RPCs (Triton's trace and logging extensions).

#include "server/inference_service.h"

#include "absl/strings/str_cat.h"

namespace coalesce {

grpc::ServerUnaryReactor* InferenceService::TraceSetting(grpc::CallbackServerContext* context,
                                                         const inference::TraceSettingRequest*,
                                                         inference::TraceSettingResponse*) {
  if (absl::Status s = Authorize(*context); !s.ok()) return FinishNow(context, s);
  return FinishNow(context, absl::UnimplementedError(
                                "TraceSetting: the trace extension is not implemented by this "
                                "server"));
}

grpc::ServerUnaryReactor* InferenceService::LogSettings(grpc::CallbackServerContext* context,
                                                        const inference::LogSettingsRequest*,
                                                        inference::LogSettingsResponse*) {
  if (absl::Status s = Authorize(*context); !s.ok()) return FinishNow(context, s);
  return FinishNow(context, absl::UnimplementedError(
                                "LogSettings: the logging extension is not implemented by this "
                                "server"));
}

}  // namespace coalesce
