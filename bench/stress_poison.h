#ifndef COALESCE_BENCH_STRESS_POISON_H_
#define COALESCE_BENCH_STRESS_POISON_H_

#include <memory>
#include <random>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "bench/stress_traffic.h"

namespace coalesce::stress {

// Poison traffic: requests shaped like valid ones that carry a value the model under test fails
// on (coalesce-poison-model writes such a model: it raises on a value below -100 and asks for
// 2^50 bytes on one above 1e6). Each must be answered INTERNAL, the model's error, and must never
// take a valid request of its batch with it (the executor's split and retry, execution/executor.h):
// a valid request answered with an error counts as wrong, as always.

// A request of `rows` pool rows (1 or more) with element 0 of one row, picked by `rng`, set to
// `value`. Expected: INTERNAL, never an answer.
std::unique_ptr<Call> PoisonRequest(TrafficBuilder& traffic, int rows, float value,
                                    std::mt19937_64& rng);

// Whether `call` is poison traffic.
bool IsPoison(const Call& call);

// --poison_values: a comma-separated list of floats, at least one.
absl::StatusOr<std::vector<float>> ParsePoisonValues(absl::string_view list);

}  // namespace coalesce::stress

#endif  // COALESCE_BENCH_STRESS_POISON_H_
