#include "client/result_writer.h"

#include <algorithm>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace coalesce {
namespace {

std::optional<double> Millis(const LatencySummary& summary, absl::Duration value) {
  if (summary.count == 0) return std::nullopt;
  return absl::ToDoubleMilliseconds(value);
}

std::optional<double> SendLateP99Millis(const LevelResult& result) {
  if (!result.send_lateness.has_value()) return std::nullopt;
  return Millis(*result.send_lateness, result.send_lateness->p99);
}

// Concurrency levels are integers; rates may have fractions.
std::string LevelString(const LevelResult& result) { return absl::StrFormat("%g", result.level); }

// `value` with `precision` decimals, or `missing` when there is none.
std::string Number(std::optional<double> value, int precision, absl::string_view missing) {
  if (!value.has_value()) return std::string(missing);
  return absl::StrFormat("%.*f", precision, *value);
}

std::string CsvField(absl::string_view text) {
  if (text.find_first_of(",\"\r\n") == absl::string_view::npos) return std::string(text);
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"') quoted += '"';
    quoted += c;
  }
  quoted += '"';
  return quoted;
}

std::string JsonString(absl::string_view text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          absl::StrAppendFormat(&out, "\\u%04x", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
  return out;
}

// The fields shared by CSV and JSON, in column order; nullopt numbers are "no value".
struct Field {
  const char* name;
  enum Kind { kString, kNumber, kBool } kind;
  std::string text;  // already formatted; empty with kNumber means no value
};

std::vector<Field> Fields(const LevelResult& r) {
  const LatencySummary& l = r.latency;
  return {
      {"label", Field::kString, r.label},
      {"mode", Field::kString, LoadModeName(r.mode)},
      {"level", Field::kNumber, LevelString(r)},
      {"batch", Field::kNumber, absl::StrCat(r.batch)},
      {"window_s", Field::kNumber, absl::StrFormat("%g", absl::ToDoubleSeconds(r.window))},
      {"requests_per_s", Field::kNumber, absl::StrFormat("%.2f", r.requests_per_s())},
      {"samples_per_s", Field::kNumber, absl::StrFormat("%.2f", r.samples_per_s())},
      {"p50_ms", Field::kNumber, Number(Millis(l, l.p50), 4, "")},
      {"p90_ms", Field::kNumber, Number(Millis(l, l.p90), 4, "")},
      {"p99_ms", Field::kNumber, Number(Millis(l, l.p99), 4, "")},
      {"max_ms", Field::kNumber, Number(Millis(l, l.max), 4, "")},
      {"mean_ms", Field::kNumber, Number(Millis(l, l.mean), 4, "")},
      {"ok", Field::kNumber, absl::StrCat(r.statuses.ok())},
      {"errors", Field::kNumber, absl::StrCat(r.statuses.errors())},
      {"skipped", Field::kNumber, absl::StrCat(r.skipped)},
      {"send_late_p99_ms", Field::kNumber, Number(SendLateP99Millis(r), 4, "")},
      {"generator_behind", Field::kBool, r.generator_behind() ? "true" : "false"},
      {"client_cpu_cores", Field::kNumber, absl::StrFormat("%.3f", r.client_cpu_cores)},
      {"channels", Field::kNumber, absl::StrCat(r.channels)},
      {"threads", Field::kNumber, absl::StrCat(r.threads)},
  };
}

}  // namespace

absl::StatusOr<std::unique_ptr<ResultWriter>> ResultWriter::Create(const Options& options) {
  if (options.out == nullptr) return absl::InvalidArgumentError("ResultWriter needs an output");
  return std::unique_ptr<ResultWriter>(new ResultWriter(options));
}

std::string ResultWriter::CsvHeader() {
  std::vector<std::string> names;
  for (const Field& field : Fields(LevelResult())) names.push_back(field.name);
  names.push_back("error_codes");
  return absl::StrJoin(names, ",");
}

std::string ResultWriter::CsvRow(const LevelResult& result) {
  std::vector<std::string> cells;
  for (const Field& field : Fields(result)) cells.push_back(CsvField(field.text));
  cells.push_back(CsvField(result.statuses.ErrorString(";")));
  return absl::StrJoin(cells, ",");
}

std::string ResultWriter::JsonObject(const LevelResult& result) {
  std::vector<std::string> members;
  for (const Field& field : Fields(result)) {
    std::string value;
    switch (field.kind) {
      case Field::kString:
        value = JsonString(field.text);
        break;
      case Field::kNumber:
        value = field.text.empty() ? "null" : field.text;
        break;
      case Field::kBool:
        value = field.text;
        break;
    }
    members.push_back(absl::StrCat(JsonString(field.name), ":", value));
  }
  std::vector<std::string> codes;
  for (const auto& [name, count] : result.statuses.ErrorCounts()) {
    codes.push_back(absl::StrCat(JsonString(name), ":", count));
  }
  members.push_back(absl::StrCat("\"error_codes\":{", absl::StrJoin(codes, ","), "}"));
  return absl::StrCat("{", absl::StrJoin(members, ","), "}");
}

std::string ResultWriter::TableHeader() const {
  return absl::StrFormat("%-*s %-11s %8s %11s %11s %9s %9s %9s %9s %9s %7s %7s %11s %5s  %s",
                         label_width_, "label", "mode", "level", "req/s", "samples/s", "p50_ms",
                         "p90_ms", "p99_ms", "max_ms", "ok", "errors", "skipped", "late_p99_ms",
                         "cpu", "error_codes");
}

std::string ResultWriter::TableRow(const LevelResult& r) const {
  const LatencySummary& l = r.latency;
  std::string late = Number(SendLateP99Millis(r), 3, "-");
  if (r.generator_behind()) late += "*";
  const std::string codes = r.statuses.ErrorString(" ");
  return absl::StrFormat(
      "%-*s %-11s %8s %11.1f %11.1f %9s %9s %9s %9s %9d %7d %7d %11s %5.2f  %s", label_width_,
      r.label.empty() ? "-" : r.label, LoadModeName(r.mode), LevelString(r), r.requests_per_s(),
      r.samples_per_s(), Number(Millis(l, l.p50), 3, "-"), Number(Millis(l, l.p90), 3, "-"),
      Number(Millis(l, l.p99), 3, "-"), Number(Millis(l, l.max), 3, "-"), r.statuses.ok(),
      r.statuses.errors(), r.skipped, late, r.client_cpu_cores, codes.empty() ? "-" : codes);
}

void ResultWriter::Write(const LevelResult& result) {
  std::ostream& out = *options_.out;
  switch (options_.format) {
    case Format::kTable:
      if (rows_ == 0) {
        label_width_ = std::max<int>(label_width_, static_cast<int>(result.label.size()));
        out << TableHeader() << "\n";
      }
      out << TableRow(result) << "\n";
      any_generator_behind_ = any_generator_behind_ || result.generator_behind();
      break;
    case Format::kCsv:
      if (rows_ == 0) out << CsvHeader() << "\n";
      out << CsvRow(result) << "\n";
      break;
    case Format::kJson:
      out << (rows_ == 0 ? "[\n  " : ",\n  ") << JsonObject(result);
      break;
  }
  out.flush();
  ++rows_;
}

void ResultWriter::Finish() {
  std::ostream& out = *options_.out;
  switch (options_.format) {
    case Format::kTable:
      if (any_generator_behind_) {
        out << absl::StrFormat(
            "* the sender fell behind its schedule by more than %s at p99, so the offered load "
            "was not the requested Poisson rate: the client or its machine limited that level\n",
            absl::FormatDuration(kGeneratorBehindThreshold));
      }
      break;
    case Format::kCsv:
      if (rows_ == 0) out << CsvHeader() << "\n";
      break;
    case Format::kJson:
      out << (rows_ == 0 ? "[]\n" : "\n]\n");
      break;
  }
  out.flush();
}

}  // namespace coalesce
