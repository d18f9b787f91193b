#include "engine/batch_policy.h"

#include <tuple>

namespace coalesce {

bool ComesBefore(const PendingRequest& a, const PendingRequest& b) {
  return std::tie(a.priority, a.deadline, a.arrival) < std::tie(b.priority, b.deadline, b.arrival);
}

BatchDecision BatchDecision::Prefix(int64_t count) {
  BatchDecision d;
  for (int64_t i = 0; i < count; ++i) d.batch.push_back(i);
  d.wake_at = absl::InfinitePast();
  return d;
}

BatchDecision BatchDecision::WaitUntil(absl::Time t) {
  BatchDecision d;
  d.wake_at = t;
  return d;
}

}  // namespace coalesce
