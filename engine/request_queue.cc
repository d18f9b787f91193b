#include "engine/request_queue.h"

#include <blockingconcurrentqueue.h>

#include <utility>

#include "absl/strings/str_cat.h"

namespace coalesce {

struct RequestQueue::Impl {
  moodycamel::ConcurrentQueue<std::unique_ptr<InferRequest>> queue;
  // A short spin before sleeping: the default 10,000 spins burn a core the RPC threads need
  // whenever requests arrive a few microseconds apart.
  moodycamel::LightweightSemaphore wakeups{0, /*maxSpins=*/100};
};

absl::StatusOr<std::unique_ptr<RequestQueue>> RequestQueue::Create(const Options& options) {
  if (options.capacity < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("queue capacity must be at least 1, got ", options.capacity));
  }
  return std::unique_ptr<RequestQueue>(
      new RequestQueue(options.capacity, std::make_unique<Impl>()));
}

RequestQueue::RequestQueue(int64_t capacity, std::unique_ptr<Impl> impl)
    : capacity_(capacity), impl_(std::move(impl)) {}

RequestQueue::~RequestQueue() = default;

absl::Status RequestQueue::Push(std::unique_ptr<InferRequest>& request) {
  if (size_.fetch_add(1, std::memory_order_acq_rel) >= capacity_) {
    size_.fetch_sub(1, std::memory_order_acq_rel);
    return absl::ResourceExhaustedError(
        absl::StrCat("request queue is full (", capacity_, " requests waiting); retry later"));
  }
  if (!impl_->queue.enqueue(std::move(request))) {
    // Only a failed allocation gets here; the request was not moved from.
    size_.fetch_sub(1, std::memory_order_acq_rel);
    return absl::ResourceExhaustedError("request queue could not allocate memory");
  }
  impl_->wakeups.signal();
  return absl::OkStatus();
}

int64_t RequestQueue::PopAll(std::vector<std::unique_ptr<InferRequest>>& out) {
  int64_t popped = 0;
  std::unique_ptr<InferRequest> request;
  while (impl_->queue.try_dequeue(request)) {
    out.push_back(std::move(request));
    ++popped;
  }
  return popped;
}

void RequestQueue::WaitFor(absl::Duration timeout) {
  if (timeout <= absl::ZeroDuration()) return;
  std::int64_t usecs = timeout == absl::InfiniteDuration()
                           ? -1
                           : absl::ToInt64Microseconds(timeout) + 1;
  // One wakeup consumes one signal; drain the rest so a burst of pushes costs one loop turn.
  if (impl_->wakeups.wait(usecs)) {
    while (impl_->wakeups.tryWait()) {
    }
  }
}

void RequestQueue::Wake() { impl_->wakeups.signal(); }

}  // namespace coalesce
