#ifndef COALESCE_EXECUTION_COPY_POOL_H_
#define COALESCE_EXECUTION_COPY_POOL_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace coalesce {

// A small fixed set of threads that run the pieces of a fork-join loop: the executor's gather
// and scatter, whose memcpy of a large batch is bound by one core's memory bandwidth, and its
// answers, which serialise each response on the answering thread.
//
// ParallelFor(n, piece) runs piece(0) .. piece(n - 1), each exactly once, on the pool's threads
// and on the calling thread, and returns when all have returned. The caller takes pieces too,
// so a call always makes progress, even while every pool thread serves another caller. Pieces
// must write disjoint memory; everything a piece wrote happens-before ParallelFor() returns,
// and everything the caller wrote before the call happens-before every piece starts.
//
// Thread-safety: ParallelFor() may be called from several threads at once (the executor's
// workers share one pool); their pieces interleave on the pool's threads. Stop() is called once,
// by the owner, with no ParallelFor() in progress. A piece must not throw, and must not call
// ParallelFor() on the same pool. It should not block either: it holds a pool thread that every
// caller shares (the executor's answer pieces run requests' done callbacks; see Executor).
class CopyPool {
 public:
  struct Options {
    // Threads of the pool, not counting the callers who join in. Must be >= 1.
    int threads = 3;
  };

  static absl::StatusOr<std::unique_ptr<CopyPool>> Create(const Options& options);
  // Stops (see Stop()).
  ~CopyPool();

  CopyPool(const CopyPool&) = delete;
  CopyPool& operator=(const CopyPool&) = delete;

  void ParallelFor(int n, const std::function<void(int)>& piece);

  // Joins the pool's threads. Idempotent.
  void Stop();

  int threads() const { return static_cast<int>(threads_.size()); }

 private:
  // One ParallelFor() call. Shared by the caller and the pool threads that join in, so that a
  // thread which finds every piece already claimed never touches a freed job.
  struct Job {
    const std::function<void(int)>* piece = nullptr;
    int n = 0;
    std::atomic<int> next{0};  // The next piece to claim.
    absl::Mutex mu;
    int left ABSL_GUARDED_BY(mu) = 0;  // Pieces not yet finished.
  };

  CopyPool() = default;

  // Claims and runs pieces of `job` until none is left to claim.
  static void RunPieces(Job& job);
  // Removes `job` from `jobs_` if it is still there.
  void Retire(const std::shared_ptr<Job>& job) ABSL_LOCKS_EXCLUDED(mu_);
  bool HasJobOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !jobs_.empty() || stopping_;
  }
  void ThreadLoop();

  absl::Mutex mu_;
  // Jobs with pieces that may be unclaimed, oldest first.
  std::deque<std::shared_ptr<Job>> jobs_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  // Written by Create() only.
  std::vector<std::thread> threads_;
};

}  // namespace coalesce

#endif  // COALESCE_EXECUTION_COPY_POOL_H_
