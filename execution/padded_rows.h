#ifndef COALESCE_EXECUTION_PADDED_ROWS_H_
#define COALESCE_EXECUTION_PADDED_ROWS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "engine/model_metadata.h"

namespace coalesce {

// The copies of a batch whose requests pad to one length (ModelMetadata::padding): a padded
// input's rows go into staging with their variable dim padded to the batch's length with the
// input's pad value, and a cut output's rows come back cut to each request's own length. The
// executor calls them per request while it gathers and scatters.
//
// A row of a tensor whose one variable dim has size n is `outer` blocks of n x `inner`
// elements (outer: the elements of the dims before it, inner: of those after it). Padding
// writes each block's n x inner elements followed by (length - n) x inner pad elements; cutting
// keeps the first n x inner elements of each block. Both work on the wire bytes: the executor
// stages padded inputs and cut outputs as they travel.
//
// Thread-safety: immutable after Create(); every method may be called concurrently.
class PaddedRows {
 public:
  // `metadata.padding` must be set and hold PaddingSpec's invariants. INVALID_ARGUMENT, naming
  // the input, for a pad value its type cannot hold exactly.
  static absl::StatusOr<PaddedRows> Create(const ModelMetadata& metadata);

  // Bytes of `rows` rows of padded input `p` (an index into PaddingSpec::inputs) padded to
  // `length`, for a request whose dims of that input are `dims`.
  int64_t PaddedInputBytes(int p, absl::Span<const int64_t> dims, int64_t rows,
                           int64_t length) const;
  // Writes `wire` (`rows` rows of padded input `p` with dims `dims`) into `staged`, padded to
  // `length` (>= its own, at most the last bucket); returns the pad elements written.
  int64_t Pad(int p, absl::Span<const int64_t> dims, int64_t rows, absl::string_view wire,
              int64_t length, char* staged) const;

  // The size of cut output `c`'s variable dim (an index into PaddingSpec::outputs) in a row of
  // `row_bytes` bytes; -1 if no whole size gives that many bytes.
  int64_t OutputLength(int c, int64_t row_bytes) const;
  // Bytes of `rows` rows of cut output `c` cut to `length`.
  int64_t CutOutputBytes(int c, int64_t rows, int64_t length) const;
  // Writes `rows` rows of cut output `c` from `staged` (each with its variable dim of
  // `batch_length`) into `wire`, cut to `length`.
  void Cut(int c, int64_t rows, int64_t batch_length, int64_t length, const char* staged,
           char* wire) const;

 private:
  // One padded or cut tensor's row geometry.
  struct Geometry {
    // Elements of the fixed dims after the variable one, and the bytes they take.
    int64_t inner = 1;
    int64_t inner_bytes = 0;
    // Index of the variable dim; for outputs, elements of the fixed dims before it.
    int dim = 0;
    int64_t outer = 1;
  };

  PaddedRows() = default;

  std::vector<Geometry> inputs_;
  std::vector<Geometry> outputs_;
  // Per padded input: its pad value, repeated for a whole block of the last bucket's length.
  std::vector<std::string> pad_;
};

// The bytes of `count` elements of `type` holding `value`; INVALID_ARGUMENT if `type` cannot
// hold `value` exactly (a fraction or out of range for an integer type, not 0 or 1 for BOOL, a
// value FP16 or BF16 rounds).
absl::StatusOr<std::string> RepeatedValue(DataType type, double value, int64_t count);

}  // namespace coalesce

#endif  // COALESCE_EXECUTION_PADDED_ROWS_H_
