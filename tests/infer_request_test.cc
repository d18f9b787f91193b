#include "core/infer_request.h"

#include "gtest/gtest.h"
#include "tests/test_requests.h"

namespace coalesce {
namespace {

TEST(InferRequestTest, FinishAnswersOnce) {
  Answer answer;
  {
    auto request = MakeRequest(&answer, absl::UnixEpoch());
    request->Finish(absl::OkStatus());
    EXPECT_TRUE(request->finished());
  }
  EXPECT_EQ(answer.calls, 1);
  EXPECT_TRUE(answer.status.ok());
}

TEST(InferRequestTest, DroppedRequestAnswersInternal) {
  Answer answer;
  { auto request = MakeRequest(&answer, absl::UnixEpoch()); }
  EXPECT_EQ(answer.calls, 1);
  EXPECT_EQ(answer.status.code(), absl::StatusCode::kInternal);
}

}  // namespace
}  // namespace coalesce
