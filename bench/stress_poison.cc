#include "bench/stress_poison.h"

#include <cstring>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace coalesce::stress {
namespace {

constexpr char kPoisonKind[] = "poison";

}  // namespace

std::unique_ptr<Call> PoisonRequest(TrafficBuilder& traffic, int rows, float value,
                                    std::mt19937_64& rng) {
  std::unique_ptr<Call> call = traffic.Valid(rows);
  call->kind = kPoisonKind;
  call->request.set_id(absl::StrCat(kPoisonKind, "-", call->request.id()));
  std::string& bytes = *call->request.mutable_raw_input_contents(0);
  const size_t row_bytes = bytes.size() / rows;
  std::memcpy(&bytes[(rng() % rows) * row_bytes], &value, sizeof(value));
  call->rows.clear();
  call->expect = {false, {grpc::StatusCode::INTERNAL}};
  return call;
}

bool IsPoison(const Call& call) { return call.kind == kPoisonKind; }

absl::StatusOr<std::vector<float>> ParsePoisonValues(absl::string_view list) {
  std::vector<float> values;
  for (absl::string_view part : absl::StrSplit(list, ',', absl::SkipEmpty())) {
    float value = 0;
    if (!absl::SimpleAtof(part, &value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--poison_values must be numbers separated by commas, got '", list, "'"));
    }
    values.push_back(value);
  }
  if (values.empty()) {
    return absl::InvalidArgumentError("--poison_values needs at least one value");
  }
  return values;
}

}  // namespace coalesce::stress
