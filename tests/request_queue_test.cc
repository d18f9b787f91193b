#include "engine/request_queue.h"

#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/test_requests.h"

namespace coalesce {
namespace {

TEST(RequestQueueTest, ConcurrentProducersLoseAndDuplicateNothing) {
  constexpr int kProducers = 8;
  constexpr int kPerProducer = 5000;
  auto queue = *RequestQueue::Create(Capacity(kProducers * kPerProducer));
  std::vector<Answer> answers(kProducers * kPerProducer);

  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) {
        auto request = MakeRequest(&answers[p * kPerProducer + i], absl::UnixEpoch());
        ASSERT_TRUE(queue->Push(request).ok());
      }
    });
  }
  // Consume while producing, as the batcher does.
  std::set<const InferRequest*> seen;
  std::vector<std::unique_ptr<InferRequest>> popped;
  std::atomic<bool> done{false};
  std::thread waker([&] {
    for (auto& t : producers) t.join();
    done = true;
    queue->Wake();
  });
  while (true) {
    bool finished = done.load();
    queue->Release(queue->PopAll(popped));
    if (finished && queue->size() == 0) break;
    queue->WaitFor(absl::Milliseconds(5));
  }
  waker.join();

  ASSERT_EQ(popped.size(), answers.size());
  for (const auto& r : popped) EXPECT_TRUE(seen.insert(r.get()).second) << "duplicate";
  popped.clear();  // Unanswered requests answer INTERNAL as they are destroyed: once each.
  for (const Answer& a : answers) {
    EXPECT_EQ(a.calls, 1);
    EXPECT_EQ(a.status.code(), absl::StatusCode::kInternal);
  }
}

TEST(RequestQueueTest, RefusesPastCapacityAndCallerKeepsTheRequest) {
  Answer a, b, c;  // Outlive the queue, which answers `rc` when it is destroyed.
  auto queue = *RequestQueue::Create(Capacity(2));
  auto ra = MakeRequest(&a, absl::UnixEpoch());
  auto rb = MakeRequest(&b, absl::UnixEpoch());
  auto rc = MakeRequest(&c, absl::UnixEpoch());
  ASSERT_TRUE(queue->Push(ra).ok());
  ASSERT_TRUE(queue->Push(rb).ok());
  absl::Status full = queue->Push(rc);
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(full.message().find("2 requests"), std::string::npos) << full;
  ASSERT_NE(rc, nullptr);
  EXPECT_EQ(c.calls, 0);

  std::vector<std::unique_ptr<InferRequest>> out;
  EXPECT_EQ(queue->PopAll(out), 2);
  // Popped but not released (the batcher still holds them): still no room.
  EXPECT_EQ(queue->Push(rc).code(), absl::StatusCode::kResourceExhausted);
  queue->Release(1);
  EXPECT_TRUE(queue->Push(rc).ok());  // Room again after the release.
}

TEST(RequestQueueTest, BoundHoldsUnderConcurrentPushes) {
  constexpr int kCapacity = 100;
  auto queue = *RequestQueue::Create(Capacity(kCapacity));
  std::vector<Answer> answers(8 * 50);
  std::atomic<int> accepted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        auto request = MakeRequest(&answers[t * 50 + i], absl::UnixEpoch());
        if (queue->Push(request).ok()) ++accepted;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(accepted.load(), kCapacity);
  std::vector<std::unique_ptr<InferRequest>> out;
  EXPECT_EQ(queue->PopAll(out), kCapacity);
}

TEST(RequestQueueTest, CreateRejectsZeroCapacity) {
  EXPECT_EQ(RequestQueue::Create(Capacity(0)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace coalesce
