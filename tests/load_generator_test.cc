// Tests of coalesce-bench's library without a network: exact statistics, the Poisson schedule,
// request building and output formats. Loopback runs are in load_generator_loopback_test.cc.
#include "client/load_generator.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/arrival_schedule.h"
#include "client/latency_recorder.h"
#include "client/level_list.h"
#include "client/level_result.h"
#include "client/request_builder.h"
#include "client/result_writer.h"
#include "client/status_counts.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/load_generator_test_util.h"
#include "proto/inference.grpc.pb.h"

namespace coalesce {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// ---------------------------------------------------------------------------------------------
// LatencyRecorder

// (channels, threads) that LevelSpread() gives.
std::pair<int, int> Spread(const LoadGenerator::Options& options, LoadMode mode, double level) {
  const LoadGenerator::Spread spread = LoadGenerator::LevelSpread(options, mode, level);
  return {spread.channels, spread.threads};
}

TEST(LevelSpreadTest, ByDefaultOpensTheConnectionsAndThreadsH2loadWould) {
  const LoadGenerator::Options options;  // channels = threads = 0
  using P = std::pair<int, int>;
  EXPECT_EQ(Spread(options, LoadMode::kConcurrency, 1), P(1, 1));
  EXPECT_EQ(Spread(options, LoadMode::kConcurrency, 8), P(8, 8));
  EXPECT_EQ(Spread(options, LoadMode::kConcurrency, 12), P(12, 8));
  EXPECT_EQ(Spread(options, LoadMode::kConcurrency, 256), P(16, 8));
  EXPECT_EQ(Spread(options, LoadMode::kRate, 10), P(16, 8));
}

TEST(LevelSpreadTest, SetChannelsAndThreadsHoldAtEveryLevel) {
  LoadGenerator::Options options;
  options.channels = 4;
  options.threads = 2;
  using P = std::pair<int, int>;
  EXPECT_EQ(Spread(options, LoadMode::kConcurrency, 1), P(4, 2));
  EXPECT_EQ(Spread(options, LoadMode::kConcurrency, 256), P(4, 2));
  EXPECT_EQ(Spread(options, LoadMode::kRate, 1000), P(4, 2));
  options.threads = 0;
  EXPECT_EQ(Spread(options, LoadMode::kConcurrency, 256), P(4, 4));
  options.channels = 32;
  EXPECT_EQ(Spread(options, LoadMode::kConcurrency, 8), P(32, 8));
  options.channels = 0;
  options.threads = 3;
  EXPECT_EQ(Spread(options, LoadMode::kConcurrency, 256), P(16, 3));
}

TEST(NearestRankPercentileTest, PicksTheSmallestValueCoveringThePercent) {
  std::vector<int64_t> values(100);
  std::iota(values.begin(), values.end(), 1);  // 1..100
  EXPECT_EQ(NearestRankPercentile(values, 0), 1);
  EXPECT_EQ(NearestRankPercentile(values, 50), 50);
  EXPECT_EQ(NearestRankPercentile(values, 90), 90);
  EXPECT_EQ(NearestRankPercentile(values, 99), 99);
  EXPECT_EQ(NearestRankPercentile(values, 99.5), 100);
  EXPECT_EQ(NearestRankPercentile(values, 100), 100);
}

TEST(NearestRankPercentileTest, RoundsRankUpOnSmallSamples) {
  const std::vector<int64_t> values = {10, 20, 30};
  EXPECT_EQ(NearestRankPercentile(values, 50), 20);  // rank ceil(1.5) = 2
  EXPECT_EQ(NearestRankPercentile(values, 33), 10);  // rank ceil(0.99) = 1
  EXPECT_EQ(NearestRankPercentile(values, 99), 30);
}

TEST(LatencyRecorderTest, SummarizesShuffledKnownDataExactly) {
  std::vector<int> millis(1000);
  std::iota(millis.begin(), millis.end(), 1);  // 1..1000 ms
  std::shuffle(millis.begin(), millis.end(), std::mt19937(7));
  LatencyRecorder recorder;
  for (int ms : millis) recorder.Record(absl::Milliseconds(ms));
  const LatencySummary summary = recorder.Summarize();
  EXPECT_EQ(summary.count, 1000);
  EXPECT_EQ(summary.p50, absl::Milliseconds(500));
  EXPECT_EQ(summary.p90, absl::Milliseconds(900));
  EXPECT_EQ(summary.p99, absl::Milliseconds(990));
  EXPECT_EQ(summary.max, absl::Milliseconds(1000));
  EXPECT_EQ(summary.mean, absl::Microseconds(500500));
}

TEST(LatencyRecorderTest, MergeCombinesRecordersAsOne) {
  LatencyRecorder a;
  LatencyRecorder b;
  for (int i = 1; i <= 50; ++i) a.Record(absl::Microseconds(i));
  for (int i = 51; i <= 100; ++i) b.Record(absl::Microseconds(i));
  a.Merge(b);
  const LatencySummary summary = a.Summarize();
  EXPECT_EQ(summary.count, 100);
  EXPECT_EQ(summary.p90, absl::Microseconds(90));
  EXPECT_EQ(summary.max, absl::Microseconds(100));
}

TEST(LatencyRecorderTest, EmptyRecorderSummarizesToZero) {
  LatencyRecorder recorder;
  const LatencySummary summary = recorder.Summarize();
  EXPECT_EQ(summary.count, 0);
  EXPECT_EQ(summary.p99, absl::ZeroDuration());
  EXPECT_EQ(summary.max, absl::ZeroDuration());
}

TEST(LatencyRecorderTest, RecordsNegativeDurationsAsZero) {
  LatencyRecorder recorder;
  recorder.Record(absl::Milliseconds(-3));
  EXPECT_EQ(recorder.Summarize().max, absl::ZeroDuration());
}

// ---------------------------------------------------------------------------------------------
// StatusCounts

TEST(StatusCountsTest, CountsErrorsByCodeNameInCodeOrder) {
  StatusCounts counts;
  counts.Add(grpc::StatusCode::OK, 5);
  counts.Add(grpc::StatusCode::UNAVAILABLE);
  counts.Add(grpc::StatusCode::DEADLINE_EXCEEDED, 3);
  EXPECT_EQ(counts.ok(), 5);
  EXPECT_EQ(counts.errors(), 4);
  EXPECT_EQ(counts.count(grpc::StatusCode::DEADLINE_EXCEEDED), 3);
  EXPECT_EQ(counts.ErrorString(";"), "DEADLINE_EXCEEDED=3;UNAVAILABLE=1");
  EXPECT_EQ(counts.ErrorString(" "), "DEADLINE_EXCEEDED=3 UNAVAILABLE=1");
}

TEST(StatusCountsTest, NoErrorsGiveAnEmptyString) {
  StatusCounts counts;
  counts.Add(grpc::StatusCode::OK, 7);
  EXPECT_EQ(counts.errors(), 0);
  EXPECT_EQ(counts.ErrorString(";"), "");
}

TEST(StatusCountsTest, CountsAnUndefinedCodeAsUnknown) {
  StatusCounts counts;
  counts.Add(static_cast<grpc::StatusCode>(42));
  EXPECT_EQ(counts.count(grpc::StatusCode::UNKNOWN), 1);
  EXPECT_EQ(counts.ErrorString(";"), "UNKNOWN=1");
}

TEST(StatusCountsTest, MergeAddsPerCode) {
  StatusCounts a;
  StatusCounts b;
  a.Add(grpc::StatusCode::RESOURCE_EXHAUSTED, 2);
  b.Add(grpc::StatusCode::RESOURCE_EXHAUSTED, 3);
  b.Add(grpc::StatusCode::OK, 4);
  a.Merge(b);
  EXPECT_EQ(a.ok(), 4);
  EXPECT_EQ(a.ErrorString(";"), "RESOURCE_EXHAUSTED=5");
}

TEST(GrpcCodeNameTest, NamesEveryCanonicalCode) {
  EXPECT_EQ(GrpcCodeName(grpc::StatusCode::OK), "OK");
  EXPECT_EQ(GrpcCodeName(grpc::StatusCode::DEADLINE_EXCEEDED), "DEADLINE_EXCEEDED");
  EXPECT_EQ(GrpcCodeName(grpc::StatusCode::UNAUTHENTICATED), "UNAUTHENTICATED");
  EXPECT_EQ(GrpcCodeName(static_cast<grpc::StatusCode>(99)), "CODE_99");
}

// ---------------------------------------------------------------------------------------------
// ArrivalSchedule

TEST(ArrivalScheduleTest, HasTheRequestedMeanRateWithAFixedSeed) {
  auto schedule = MakeSchedule(1000, absl::Seconds(100), 42);
  ASSERT_NE(schedule, nullptr);
  // A Poisson count of mean 100,000 has a standard deviation of 316: 1% is 3 sigma.
  EXPECT_NEAR(schedule->size() / 100.0, 1000.0, 10.0);
  const double mean_gap_ms =
      absl::ToDoubleMilliseconds(schedule->offset(schedule->size() - 1)) / (schedule->size() - 1);
  EXPECT_NEAR(mean_gap_ms, 1.0, 0.01);
}

TEST(ArrivalScheduleTest, GapsAreExponential) {
  auto schedule = MakeSchedule(2000, absl::Seconds(50), 3);
  ASSERT_NE(schedule, nullptr);
  std::vector<double> gaps_ms;
  for (int64_t i = 1; i < schedule->size(); ++i) {
    gaps_ms.push_back(absl::ToDoubleMilliseconds(schedule->offset(i) - schedule->offset(i - 1)));
  }
  const double mean = std::accumulate(gaps_ms.begin(), gaps_ms.end(), 0.0) / gaps_ms.size();
  double square_sum = 0;
  for (double gap : gaps_ms) square_sum += (gap - mean) * (gap - mean);
  const double stddev = std::sqrt(square_sum / gaps_ms.size());
  EXPECT_NEAR(stddev / mean, 1.0, 0.02);  // an exponential's coefficient of variation is 1
  const double below_mean =
      std::count_if(gaps_ms.begin(), gaps_ms.end(), [&](double g) { return g < mean; }) /
      static_cast<double>(gaps_ms.size());
  EXPECT_NEAR(below_mean, 1.0 - std::exp(-1.0), 0.01);  // P(X < mean) = 1 - 1/e
}

TEST(ArrivalScheduleTest, OffsetsAreSortedAndInsideTheSpan) {
  auto schedule = MakeSchedule(500, absl::Seconds(2), 1);
  ASSERT_NE(schedule, nullptr);
  ASSERT_GT(schedule->size(), 0);
  EXPECT_GE(schedule->offset(0), absl::ZeroDuration());
  for (int64_t i = 1; i < schedule->size(); ++i) {
    ASSERT_LE(schedule->offset(i - 1), schedule->offset(i));
  }
  EXPECT_LT(schedule->offset(schedule->size() - 1), absl::Seconds(2));
}

TEST(ArrivalScheduleTest, SameSeedGivesTheSameScheduleAndAnotherSeedDoesNot) {
  auto a = MakeSchedule(100, absl::Seconds(10), 9);
  auto b = MakeSchedule(100, absl::Seconds(10), 9);
  auto c = MakeSchedule(100, absl::Seconds(10), 10);
  ASSERT_EQ(a->size(), b->size());
  for (int64_t i = 0; i < a->size(); ++i) ASSERT_EQ(a->offset(i), b->offset(i));
  EXPECT_NE(a->offset(0), c->offset(0));
}

TEST(ArrivalScheduleTest, RejectsNonPositiveRateAndHugeSchedules) {
  ArrivalSchedule::Options options;
  options.rate_per_s = 0;
  EXPECT_EQ(ArrivalSchedule::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
  options.rate_per_s = NAN;
  EXPECT_EQ(ArrivalSchedule::Create(options).status().code(), absl::StatusCode::kInvalidArgument);
  options.rate_per_s = 1e9;
  options.span = absl::Seconds(10);
  EXPECT_THAT(ArrivalSchedule::Create(options).status().message(), HasSubstr("1e+09"));
}

// ---------------------------------------------------------------------------------------------
// BuildInferRequest

inference::ModelMetadataResponse DemoMetadata(const std::string& datatype,
                                              std::vector<int64_t> shape) {
  inference::ModelMetadataResponse metadata;
  metadata.set_name("demo");
  auto* input = metadata.add_inputs();
  input->set_name("INPUT0");
  input->set_datatype(datatype);
  for (int64_t dim : shape) input->add_shape(dim);
  return metadata;
}

RequestSpec Spec(int64_t batch, uint64_t seed = 1) {
  RequestSpec spec;
  spec.model_name = "demo";
  spec.model_version = "1";
  spec.batch = batch;
  spec.seed = seed;
  return spec;
}

TEST(BuildInferRequestTest, PutsTheBatchInTheFirstVariableDimension) {
  auto request = BuildInferRequest(DemoMetadata("FP32", {-1, 32, 256}), Spec(4));
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->model_name(), "demo");
  EXPECT_EQ(request->model_version(), "1");
  ASSERT_EQ(request->inputs_size(), 1);
  EXPECT_EQ(request->inputs(0).name(), "INPUT0");
  EXPECT_EQ(request->inputs(0).datatype(), "FP32");
  EXPECT_THAT(request->inputs(0).shape(), ElementsAre(4, 32, 256));
  ASSERT_EQ(request->raw_input_contents_size(), 1);
  EXPECT_EQ(request->raw_input_contents(0).size(), 4u * 32 * 256 * 4);
}

TEST(BuildInferRequestTest, GivesLaterVariableDimensionsSizeOne) {
  auto request = BuildInferRequest(DemoMetadata("INT64", {8, -1, -1}), Spec(3));
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_THAT(request->inputs(0).shape(), ElementsAre(8, 3, 1));
  EXPECT_EQ(request->raw_input_contents(0).size(), 8u * 3 * 8);
}

TEST(BuildInferRequestTest, GivesLaterVariableDimensionsTheVariableDim) {
  // A token model's inputs: [batch, length], the length chosen by the benchmark.
  RequestSpec spec = Spec(1);
  spec.variable_dim = 128;
  auto request = BuildInferRequest(DemoMetadata("INT64", {-1, -1}), spec);
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_THAT(request->inputs(0).shape(), ElementsAre(1, 128));
  EXPECT_EQ(request->raw_input_contents(0).size(), 128u * 8);

  spec.variable_dim = 0;
  EXPECT_EQ(BuildInferRequest(DemoMetadata("INT64", {-1, -1}), spec).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(BuildInferRequestTest, Fp32ValuesAreUniformInMinusOneToOne) {
  auto request = BuildInferRequest(DemoMetadata("FP32", {-1, 1000}), Spec(10));
  ASSERT_TRUE(request.ok());
  const std::string& raw = request->raw_input_contents(0);
  std::vector<float> values(raw.size() / 4);
  std::memcpy(values.data(), raw.data(), raw.size());
  const auto [min, max] = std::minmax_element(values.begin(), values.end());
  EXPECT_GE(*min, -1.0f);
  EXPECT_LT(*max, 1.0f);
  EXPECT_LT(*min, -0.99f);  // 10,000 draws reach both ends
  EXPECT_GT(*max, 0.99f);
  const double mean = std::accumulate(values.begin(), values.end(), 0.0) / values.size();
  EXPECT_NEAR(mean, 0.0, 0.03);  // stddev of the mean: 0.577 / 100
}

TEST(BuildInferRequestTest, SameSeedGivesIdenticalBytes) {
  auto a = BuildInferRequest(DemoMetadata("FP16", {-1, 64}), Spec(2, 5));
  auto b = BuildInferRequest(DemoMetadata("FP16", {-1, 64}), Spec(2, 5));
  auto c = BuildInferRequest(DemoMetadata("FP16", {-1, 64}), Spec(2, 6));
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->raw_input_contents(0), b->raw_input_contents(0));
  EXPECT_NE(a->raw_input_contents(0), c->raw_input_contents(0));
}

TEST(BuildInferRequestTest, RejectsBatchForAFixedShapeInput) {
  auto request = BuildInferRequest(DemoMetadata("FP32", {32, 256}), Spec(4));
  EXPECT_EQ(request.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(request.status().message(), HasSubstr("INPUT0"));
  EXPECT_TRUE(BuildInferRequest(DemoMetadata("FP32", {32, 256}), Spec(1)).ok());
}

TEST(BuildInferRequestTest, RejectsBytesInputsNamingTheInput) {
  auto request = BuildInferRequest(DemoMetadata("BYTES", {-1}), Spec(1));
  EXPECT_EQ(request.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(request.status().message(), HasSubstr("'INPUT0' has datatype 'BYTES'"));
}

TEST(BuildInferRequestTest, RejectsMetadataWithoutInputs) {
  inference::ModelMetadataResponse metadata;
  metadata.set_name("empty");
  EXPECT_EQ(BuildInferRequest(metadata, Spec(1)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(FloatToHalfBitsTest, ConvertsKnownValues) {
  EXPECT_EQ(FloatToHalfBits(0.0f), 0x0000);
  EXPECT_EQ(FloatToHalfBits(-0.0f), 0x8000);
  EXPECT_EQ(FloatToHalfBits(1.0f), 0x3c00);
  EXPECT_EQ(FloatToHalfBits(0.5f), 0x3800);
  EXPECT_EQ(FloatToHalfBits(-2.0f), 0xc000);
  EXPECT_EQ(FloatToHalfBits(1.0f / 3.0f), 0x3555);
  EXPECT_EQ(FloatToHalfBits(65504.0f), 0x7bff);
  EXPECT_EQ(FloatToHalfBits(1e6f), 0x7c00);
  EXPECT_EQ(FloatToHalfBits(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(FloatToHalfBits(std::ldexp(1.0f, -14)), 0x0400);  // smallest normal
  EXPECT_EQ(FloatToHalfBits(std::ldexp(1.0f, -26)), 0x0000);
  EXPECT_EQ(FloatToHalfBits(NAN) & 0x7c00, 0x7c00);
  EXPECT_NE(FloatToHalfBits(NAN) & 0x03ff, 0);
}

// ---------------------------------------------------------------------------------------------
// ParseLevelList

TEST(ParseLevelListTest, ParsesCommaSeparatedIntegers) {
  auto levels = ParseLevelList("concurrency", "1, 8,64 ,256", /*integers=*/true);
  ASSERT_TRUE(levels.ok()) << levels.status();
  EXPECT_THAT(*levels, ElementsAre(1, 8, 64, 256));
}

TEST(ParseLevelListTest, AcceptsFractionalRates) {
  auto levels = ParseLevelList("rate", "0.5,1e3", /*integers=*/false);
  ASSERT_TRUE(levels.ok()) << levels.status();
  EXPECT_THAT(*levels, ElementsAre(0.5, 1000));
}

TEST(ParseLevelListTest, RejectsBadItemsNamingFlagAndItem) {
  EXPECT_THAT(ParseLevelList("concurrency", "1,1.5", true).status().message(),
              HasSubstr("--concurrency: '1.5' is not a positive integer"));
  EXPECT_THAT(ParseLevelList("concurrency", "8,0", true).status().message(), HasSubstr("'0'"));
  EXPECT_THAT(ParseLevelList("rate", "10,,20", false).status().message(), HasSubstr("''"));
  EXPECT_THAT(ParseLevelList("rate", "-5", false).status().message(), HasSubstr("'-5'"));
  EXPECT_THAT(ParseLevelList("rate", "inf", false).status().message(), HasSubstr("'inf'"));
  EXPECT_EQ(ParseLevelList("rate", " ", false).status().code(), absl::StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------------
// ResultWriter

LevelResult ClosedLoopResult() {
  LevelResult result;
  result.label = "echo";
  result.mode = LoadMode::kConcurrency;
  result.level = 64;
  result.batch = 4;
  result.window = absl::Seconds(2);
  result.statuses.Add(grpc::StatusCode::OK, 1000);
  result.statuses.Add(grpc::StatusCode::DEADLINE_EXCEEDED, 3);
  result.statuses.Add(grpc::StatusCode::UNAVAILABLE, 1);
  result.latency.count = 1000;
  result.latency.p50 = absl::Microseconds(1500);
  result.latency.p90 = absl::Microseconds(2250);
  result.latency.p99 = absl::Microseconds(4000);
  result.latency.max = absl::Milliseconds(12);
  result.latency.mean = absl::Microseconds(1600);
  result.client_cpu_cores = 0.5;
  result.channels = 16;
  result.threads = 8;
  return result;
}

TEST(ResultWriterTest, CsvHeaderNamesEveryColumn) {
  EXPECT_EQ(ResultWriter::CsvHeader(),
            "label,mode,level,batch,window_s,requests_per_s,samples_per_s,p50_ms,p90_ms,p99_ms,"
            "max_ms,mean_ms,ok,errors,skipped,send_late_p99_ms,generator_behind,"
            "client_cpu_cores,channels,threads,error_codes");
}

TEST(ResultWriterTest, CsvRowHoldsRatesLatenciesAndErrorCodes) {
  EXPECT_EQ(ResultWriter::CsvRow(ClosedLoopResult()),
            "echo,concurrency,64,4,2,500.00,2000.00,1.5000,2.2500,4.0000,12.0000,1.6000,1000,4,"
            "0,,false,0.500,16,8,DEADLINE_EXCEEDED=3;UNAVAILABLE=1");
}

TEST(ResultWriterTest, CsvQuotesALabelWithACommaAndLeavesMissingLatenciesEmpty) {
  LevelResult result;
  result.label = "a,\"b\"";
  result.mode = LoadMode::kRate;
  result.level = 2.5;
  result.window = absl::Seconds(1);
  result.statuses.Add(grpc::StatusCode::DEADLINE_EXCEEDED, 2);
  result.send_lateness = LatencySummary{};
  result.send_lateness->count = 2;
  result.send_lateness->p99 = absl::Microseconds(2500);
  EXPECT_EQ(ResultWriter::CsvRow(result),
            "\"a,\"\"b\"\"\",rate,2.5,1,1,0.00,0.00,,,,,,0,2,0,2.5000,true,0.000,0,0,"
            "DEADLINE_EXCEEDED=2");
}

TEST(ResultWriterTest, JsonObjectUsesCsvNamesNullsAndAnErrorCodeObject) {
  EXPECT_EQ(ResultWriter::JsonObject(ClosedLoopResult()),
            "{\"label\":\"echo\",\"mode\":\"concurrency\",\"level\":64,\"batch\":4,"
            "\"window_s\":2,\"requests_per_s\":500.00,\"samples_per_s\":2000.00,"
            "\"p50_ms\":1.5000,\"p90_ms\":2.2500,\"p99_ms\":4.0000,\"max_ms\":12.0000,"
            "\"mean_ms\":1.6000,\"ok\":1000,\"errors\":4,\"skipped\":0,"
            "\"send_late_p99_ms\":null,\"generator_behind\":false,\"client_cpu_cores\":0.500,"
            "\"channels\":16,\"threads\":8,\"error_codes\":{\"DEADLINE_EXCEEDED\":3,\"UNAVAILABLE\":1}}");
}

std::string WriteAll(ResultWriter::Format format, const std::vector<LevelResult>& results) {
  std::ostringstream out;
  ResultWriter::Options options;
  options.format = format;
  options.out = &out;
  auto writer = ResultWriter::Create(options);
  EXPECT_TRUE(writer.ok());
  for (const LevelResult& result : results) (*writer)->Write(result);
  (*writer)->Finish();
  return out.str();
}

TEST(ResultWriterTest, JsonIsOneArrayAndEmptyWhenNoLevelRan) {
  EXPECT_EQ(WriteAll(ResultWriter::Format::kJson, {}), "[]\n");
  const std::string two =
      WriteAll(ResultWriter::Format::kJson, {ClosedLoopResult(), ClosedLoopResult()});
  EXPECT_EQ(two, "[\n  " + ResultWriter::JsonObject(ClosedLoopResult()) + ",\n  " +
                     ResultWriter::JsonObject(ClosedLoopResult()) + "\n]\n");
}

TEST(ResultWriterTest, JsonEscapesTheLabel) {
  LevelResult result = ClosedLoopResult();
  result.label = "x\"y\\z\n";
  EXPECT_THAT(ResultWriter::JsonObject(result), HasSubstr("\"label\":\"x\\\"y\\\\z\\n\""));
}

TEST(ResultWriterTest, CsvIsAHeaderThenOneLinePerLevel) {
  EXPECT_EQ(WriteAll(ResultWriter::Format::kCsv, {ClosedLoopResult()}),
            ResultWriter::CsvHeader() + "\n" + ResultWriter::CsvRow(ClosedLoopResult()) + "\n");
  EXPECT_EQ(WriteAll(ResultWriter::Format::kCsv, {}), ResultWriter::CsvHeader() + "\n");
}

TEST(ResultWriterTest, TableAlignsOneRowPerLevelUnderItsHeader) {
  LevelResult open = ClosedLoopResult();
  open.mode = LoadMode::kRate;
  open.level = 500;
  open.send_lateness = LatencySummary{};
  open.send_lateness->count = 10;
  open.send_lateness->p99 = absl::Milliseconds(3);
  const std::string table = WriteAll(ResultWriter::Format::kTable, {ClosedLoopResult(), open});
  std::vector<std::string> lines;
  std::istringstream in(table);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 4u);  // header, two rows, footnote
  EXPECT_EQ(lines[0].find("label"), 0u);
  // Every fixed column ends where its header ends.
  const size_t p99_end = lines[0].find("p99_ms") + std::string("p99_ms").size();
  EXPECT_EQ(lines[1].substr(p99_end - 5, 5), "4.000");
  EXPECT_EQ(lines[2].substr(p99_end - 5, 5), "4.000");
  EXPECT_THAT(lines[1], HasSubstr("DEADLINE_EXCEEDED=3 UNAVAILABLE=1"));
  EXPECT_THAT(lines[2], HasSubstr("3.000*"));
  EXPECT_THAT(lines[3], HasSubstr("fell behind"));
}

TEST(LevelResultTest, GeneratorIsBehindOnlyAboveOneMillisecondAtP99) {
  LevelResult result;
  EXPECT_FALSE(result.generator_behind());  // closed loop: no schedule
  result.send_lateness = LatencySummary{};
  result.send_lateness->count = 100;
  result.send_lateness->p99 = absl::Milliseconds(1);
  EXPECT_FALSE(result.generator_behind());
  result.send_lateness->p99 = absl::Microseconds(1001);
  EXPECT_TRUE(result.generator_behind());
}

}  // namespace
}  // namespace coalesce
