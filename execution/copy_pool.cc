#include "execution/copy_pool.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace coalesce {

absl::StatusOr<std::unique_ptr<CopyPool>> CopyPool::Create(const Options& options) {
  if (options.threads < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("copy pool needs at least 1 thread, got ", options.threads));
  }
  std::unique_ptr<CopyPool> pool(new CopyPool());
  for (int t = 0; t < options.threads; ++t) {
    pool->threads_.emplace_back([p = pool.get()] { p->ThreadLoop(); });
  }
  return pool;
}

CopyPool::~CopyPool() { Stop(); }

void CopyPool::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
}

void CopyPool::RunPieces(Job& job) {
  int done = 0;
  for (int i = job.next.fetch_add(1, std::memory_order_relaxed); i < job.n;
       i = job.next.fetch_add(1, std::memory_order_relaxed)) {
    (*job.piece)(i);
    ++done;
  }
  if (done == 0) return;
  // The mutex orders this thread's writes before the caller's return.
  absl::MutexLock lock(&job.mu);
  job.left -= done;
}

void CopyPool::Retire(const std::shared_ptr<Job>& job) {
  absl::MutexLock lock(&mu_);
  auto it = std::find(jobs_.begin(), jobs_.end(), job);
  if (it != jobs_.end()) jobs_.erase(it);
}

void CopyPool::ThreadLoop() {
  while (true) {
    std::shared_ptr<Job> job;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &CopyPool::HasJobOrStopping));
      if (stopping_) return;
      job = jobs_.front();
    }
    RunPieces(*job);
    // Every piece is claimed: no thread needs to find this job again.
    Retire(job);
  }
}

void CopyPool::ParallelFor(int n, const std::function<void(int)>& piece) {
  if (n <= 0) return;
  if (n == 1 || threads_.empty()) {
    for (int i = 0; i < n; ++i) piece(i);
    return;
  }
  auto job = std::make_shared<Job>();
  job->piece = &piece;
  job->n = n;
  {
    absl::MutexLock lock(&job->mu);
    job->left = n;
  }
  {
    absl::MutexLock lock(&mu_);
    jobs_.push_back(job);
  }
  RunPieces(*job);
  Retire(job);
  absl::MutexLock lock(&job->mu);
  job->mu.Await(absl::Condition(
      +[](int* left) { return *left == 0; }, &job->left));
}

}  // namespace coalesce
