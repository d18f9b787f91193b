#ifndef COALESCE_TESTS_LOAD_GENERATOR_TEST_UTIL_H_
#define COALESCE_TESTS_LOAD_GENERATOR_TEST_UTIL_H_

#include <cstdint>
#include <memory>
#include <utility>

#include "absl/time/time.h"
#include "client/arrival_schedule.h"
#include "gtest/gtest.h"

namespace coalesce {

// A Poisson schedule of `rate` per second over `span`; null (and a test failure) if invalid.
inline std::unique_ptr<ArrivalSchedule> MakeSchedule(double rate, absl::Duration span,
                                                     uint64_t seed) {
  ArrivalSchedule::Options options;
  options.rate_per_s = rate;
  options.span = span;
  options.seed = seed;
  auto schedule = ArrivalSchedule::Create(options);
  EXPECT_TRUE(schedule.ok()) << schedule.status();
  return schedule.ok() ? *std::move(schedule) : nullptr;
}

}  // namespace coalesce

#endif  // COALESCE_TESTS_LOAD_GENERATOR_TEST_UTIL_H_
