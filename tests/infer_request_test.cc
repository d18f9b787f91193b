#include "engine/infer_request.h"

#include <atomic>
#include <memory>
#include <utility>

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

// A request with `deadline` and cancellation flag `cancelled` whose answer lands in `answer`.
std::unique_ptr<InferRequest> RequestWith(Answer* answer, absl::Time deadline,
                                          const std::atomic<bool>* cancelled = nullptr) {
  InferRequest::Options options;
  options.deadline = deadline;
  options.cancelled = cancelled;
  return MakeRequest(answer, std::move(options));
}

TEST(InferRequestTest, FinishIfDeadAnswersOnlyADeadRequestAndSaysWhy) {
  const absl::Time now = absl::UnixEpoch() + absl::Seconds(10);
  Answer alive;
  auto request = RequestWith(&alive, now + absl::Nanoseconds(1));
  EXPECT_EQ(FinishIfDead(*request, now), DeadReason::kAlive);
  EXPECT_FALSE(request->finished());
  request->Finish(absl::OkStatus());

  Answer late;
  request = RequestWith(&late, now);  // A deadline of exactly now has passed.
  EXPECT_EQ(FinishIfDead(*request, now), DeadReason::kDeadlinePassed);
  EXPECT_EQ(late.calls, 1);
  EXPECT_EQ(late.status, absl::DeadlineExceededError("request was not run: its deadline passed"));

  // Cancelled and late: the client's cancel is the reason it gets.
  std::atomic<bool> cancelled{true};
  Answer gone;
  request = RequestWith(&gone, now, &cancelled);
  EXPECT_EQ(FinishIfDead(*request, now), DeadReason::kCancelled);
  EXPECT_EQ(gone.calls, 1);
  EXPECT_EQ(gone.status, absl::CancelledError("request was not run: the client cancelled it"));
}

}  // namespace
}  // namespace coalesce
