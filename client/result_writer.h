#ifndef COALESCE_CLIENT_RESULT_WRITER_H_
#define COALESCE_CLIENT_RESULT_WRITER_H_

#include <memory>
#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "client/level_result.h"

namespace coalesce {

// ResultWriter prints LevelResults as they arrive, one row per level, in one of three formats:
//
//   kTable: aligned columns for people; a footnote marks levels where the generator fell behind.
//   kCsv:   a header line, then one line per level. Error codes sit in one field as
//           "NAME=count;NAME=count"; empty fields mean "no value" (e.g. no OK completions).
//   kJson:  one JSON array of objects with the CSV's column names; `error_codes` is an object
//           and missing values are null.
//
// Latencies are in milliseconds, rates per second. Not thread-safe; the caller owns `out`, which
// must outlive the writer. Rows are flushed as they are written so a long run can be watched.
class ResultWriter {
 public:
  enum class Format { kTable, kCsv, kJson };

  struct Options {
    Format format = Format::kTable;
    // Where rows go. Required.
    std::ostream* out = nullptr;
  };

  static absl::StatusOr<std::unique_ptr<ResultWriter>> Create(const Options& options);

  // Prints one level's row (and, before the first row, the header).
  void Write(const LevelResult& result);

  // Completes the output: the JSON array's closing bracket, the table's footnote, or a CSV
  // header when no row was written. Call once, after the last Write().
  void Finish();

  // The CSV header line, without the newline.
  static std::string CsvHeader();
  // One CSV line, without the newline.
  static std::string CsvRow(const LevelResult& result);
  // One JSON object on one line.
  static std::string JsonObject(const LevelResult& result);

 private:
  explicit ResultWriter(const Options& options) : options_(options) {}

  std::string TableHeader() const;
  std::string TableRow(const LevelResult& result) const;

  const Options options_;
  int rows_ = 0;
  int label_width_ = 5;
  bool any_generator_behind_ = false;
};

}  // namespace coalesce

#endif  // COALESCE_CLIENT_RESULT_WRITER_H_
