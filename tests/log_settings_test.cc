// The LogSettings RPC (Triton's logging extension) over a real server on loopback, its effect
// read from a sink that captures what the server logs.
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "proto/inference.grpc.pb.h"
#include "server/log_control.h"
#include "spdlog/spdlog.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "tests/capture_sink.h"
#include "tests/echo_test_server.h"

namespace coalesce {
namespace {

using Settings = google::protobuf::Map<std::string, inference::LogSettingsResponse::SettingValue>;

class LogSettingsTest : public testing::Test {
 protected:
  void SetUp() override {
    capture_ = std::make_shared<CaptureSink>();
    ASSERT_TRUE(LogControl::Global().Apply(LogSettings()).ok());
    LogControl::Global().Install(capture_);
    auto server = StartEchoServer({});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = LoopbackStub(*server_);
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(absl::Seconds(5));
    server_.reset();
    LogControl::Global().Apply(LogSettings()).IgnoreError();
    LogControl::Global().Install(std::make_shared<spdlog::sinks::stdout_sink_mt>());
  }

  grpc::Status Change(const inference::LogSettingsRequest& request, Settings* now = nullptr) {
    grpc::ClientContext context;
    inference::LogSettingsResponse response;
    grpc::Status status = stub_->LogSettings(&context, request, &response);
    if (now != nullptr) *now = response.settings();
    return status;
  }
  void InferOnce() {
    grpc::ClientContext context;
    inference::ModelInferResponse response;
    ASSERT_TRUE(stub_->ModelInfer(&context, EchoRequest(1), &response).ok());
  }

  std::shared_ptr<CaptureSink> capture_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub_;
};

TEST_F(LogSettingsTest, AnEmptyRequestReturnsEverySettingInTritonsNamesAndTypes) {
  Settings now;
  ASSERT_TRUE(Change({}, &now).ok());
  ASSERT_EQ(now.size(), 6u);
  EXPECT_EQ(now.at("log_file").string_param(), "");
  EXPECT_TRUE(now.at("log_info").bool_param());
  EXPECT_TRUE(now.at("log_warning").bool_param());
  EXPECT_TRUE(now.at("log_error").bool_param());
  EXPECT_EQ(now.at("log_verbose_level").parameter_choice_case(),
            inference::LogSettingsResponse::SettingValue::kUint32Param);
  EXPECT_EQ(now.at("log_verbose_level").uint32_param(), 0u);
  EXPECT_EQ(now.at("log_format").string_param(), "default");
}

TEST_F(LogSettingsTest, VerboseLevelOneShowsEachRequestsDebugLine) {
  InferOnce();
  EXPECT_EQ(capture_->CountContaining("access model=demo"), 0);
  inference::LogSettingsRequest request;
  (*request.mutable_settings())["log_verbose_level"].set_uint32_param(1);
  Settings now;
  ASSERT_TRUE(Change(request, &now).ok());
  EXPECT_EQ(now.at("log_verbose_level").uint32_param(), 1u);
  InferOnce();
  EXPECT_EQ(capture_->CountContaining("access model=demo"), 1);
}

TEST_F(LogSettingsTest, InfoOffHidesInfoLinesButNotWarnings) {
  inference::LogSettingsRequest request;
  (*request.mutable_settings())["log_info"].set_bool_param(false);
  Settings now;
  ASSERT_TRUE(Change(request, &now).ok());
  EXPECT_FALSE(now.at("log_info").bool_param());
  spdlog::info("an info line after info went off");
  spdlog::warn("a warning line after info went off");
  EXPECT_EQ(capture_->CountContaining("an info line after info went off"), 0);
  EXPECT_EQ(capture_->CountContaining("a warning line after info went off"), 1);

  (*request.mutable_settings())["log_info"].set_bool_param(true);
  ASSERT_TRUE(Change(request).ok());
  spdlog::info("an info line after info came back");
  EXPECT_EQ(capture_->CountContaining("an info line after info came back"), 1);
}

TEST_F(LogSettingsTest, FormatsSwitchBetweenTextIsoAndJson) {
  inference::LogSettingsRequest request;
  (*request.mutable_settings())["log_format"].set_string_param("json");
  ASSERT_TRUE(Change(request).ok());
  spdlog::warn("json please");
  (*request.mutable_settings())["log_format"].set_string_param("ISO8601");
  Settings now;
  ASSERT_TRUE(Change(request, &now).ok());
  EXPECT_EQ(now.at("log_format").string_param(), "ISO8601");
  spdlog::warn("iso please");
  std::string json, iso;
  for (const std::string& line : capture_->Lines()) {
    if (absl::StrContains(line, "json please")) json = line;
    if (absl::StrContains(line, "iso please")) iso = line;
  }
  EXPECT_EQ(json.rfind("{\"time\":", 0), 0u) << json;
  // 2026-12-07T10:11:12.123456Z [warning] iso please
  ASSERT_GT(iso.size(), 28u) << iso;
  EXPECT_EQ(iso[10], 'T') << iso;
  EXPECT_NE(iso.find("Z [warning] iso please"), std::string::npos) << iso;
}

TEST_F(LogSettingsTest, BadSettingsAreRefusedNamingTheKeyOrValueAndChangeNothing) {
  auto refused = [&](const std::string& key, auto set, const std::string& named,
                     grpc::StatusCode code = grpc::StatusCode::INVALID_ARGUMENT) {
    inference::LogSettingsRequest request;
    (*request.mutable_settings())["log_info"].set_bool_param(false);  // Valid, and not applied.
    set((*request.mutable_settings())[key]);
    grpc::Status status = Change(request);
    EXPECT_EQ(status.error_code(), code) << key;
    EXPECT_NE(status.error_message().find(named), std::string::npos) << status.error_message();
    EXPECT_TRUE(LogControl::Global().Get().info) << key;
  };
  using Value = inference::LogSettingsRequest::SettingValue;
  refused("log_level", [](Value& v) { v.set_string_param("debug"); }, "'log_level'");
  refused("log_format", [](Value& v) { v.set_string_param("xml"); }, "'xml'");
  refused("log_info", [](Value& v) { v.set_string_param("yes"); }, "expect boolean for 'log_info'");
  refused("log_verbose_level", [](Value& v) { v.set_bool_param(true); },
          "expect int32 for 'log_verbose_level'");
  refused("log_file", [](Value& v) { v.set_string_param("/tmp/x.log"); },
          "log file location can not be updated through network protocol",
          grpc::StatusCode::UNIMPLEMENTED);
}

// Two changes of different settings at once (info off, verbose on) both stay: the second reads the
// settings only after the first has applied its own. The first change is held open while the
// second is started; reading before the first applies would bring info back on.
TEST(LogControlTest, ConcurrentUpdatesOfDifferentSettingsBothStay) {
  LogControl& control = LogControl::Global();
  ASSERT_TRUE(control.Apply(LogSettings()).ok());
  absl::Notification first_read, release_first;
  std::thread first([&] {
    auto done = control.Update([&](const LogSettings& current) -> absl::StatusOr<LogSettings> {
      LogSettings next = current;
      next.info = false;
      first_read.Notify();
      release_first.WaitForNotification();
      return next;
    });
    EXPECT_TRUE(done.ok()) << done.status();
  });
  first_read.WaitForNotification();
  std::thread second([&] {
    auto done = control.Update([](const LogSettings& current) -> absl::StatusOr<LogSettings> {
      LogSettings next = current;
      next.verbose_level = 1;
      return next;
    });
    EXPECT_TRUE(done.ok()) << done.status();
  });
  // Time for the second change to run if nothing holds it back (it would then be overwritten by
  // the first's stale copy); with the change serialised it waits, whatever the timing.
  absl::SleepFor(absl::Milliseconds(100));
  release_first.Notify();
  first.join();
  second.join();
  const LogSettings now = control.Get();
  EXPECT_FALSE(now.info);
  EXPECT_EQ(now.verbose_level, 1u);
  ASSERT_TRUE(control.Apply(LogSettings()).ok());
}

}  // namespace
}  // namespace coalesce
