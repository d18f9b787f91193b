// JsonLogFormatter: one parseable JSON object per record, whatever the message holds.
#include "server/json_log_formatter.h"

#include <chrono>
#include <string>

#include "gtest/gtest.h"
#include "spdlog/details/log_msg.h"

namespace coalesce {
namespace {

std::string Json(absl::string_view text) {
  std::string out;
  AppendJsonString(text, &out);
  return out;
}

std::string Format(const spdlog::details::log_msg& msg) {
  JsonLogFormatter formatter;
  spdlog::memory_buf_t buffer;
  formatter.format(msg, buffer);
  return std::string(buffer.data(), buffer.size());
}

TEST(JsonLogFormatterTest, EscapesQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(Json("plain"), "\"plain\"");
  EXPECT_EQ(Json("say \"hi\" \\ bye"), R"("say \"hi\" \\ bye")");
  EXPECT_EQ(Json("a\nb\rc\td\be\ff"), R"("a\nb\rc\td\be\ff")");
  EXPECT_EQ(Json(std::string("nul\0x\x1f\x7f", 7)), R"("nul\u0000x\u001f\u007f")");
}

TEST(JsonLogFormatterTest, EscapesCharactersThatSomeReadersTakeForLineBreaks) {
  // C1 controls (NEL among them) and the Unicode line and paragraph separators.
  EXPECT_EQ(Json("a\xc2\x85z \xc2\x80 \xc2\x9f"), R"("a\u0085z \u0080 \u009f")");
  EXPECT_EQ(Json("a\xe2\x80\xa8z\xe2\x80\xa9"), R"("a\u2028z\u2029")");
  // Their neighbours are ordinary characters.
  EXPECT_EQ(Json("\xc2\xa0\xe2\x80\xa7"), "\"\xc2\xa0\xe2\x80\xa7\"");
}

TEST(JsonLogFormatterTest, KeepsValidUtf8AndReplacesInvalidBytes) {
  EXPECT_EQ(Json("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
            "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
  // A lone continuation byte, a truncated sequence, an overlong '/', a UTF-16 surrogate.
  EXPECT_EQ(Json("a\x80z"), R"("a\ufffdz")");
  EXPECT_EQ(Json("a\xe2\x82"), R"("a\ufffd\ufffd")");
  EXPECT_EQ(Json("\xc0\xaf"), R"("\ufffd\ufffd")");
  EXPECT_EQ(Json("\xed\xa0\x80"), R"("\ufffd\ufffd\ufffd")");
}

TEST(JsonLogFormatterTest, WritesOneObjectPerLineWithUtcTimeLevelLoggerAndMessage) {
  // 2026-11-26T00:15:02.123Z
  auto time = std::chrono::system_clock::time_point(std::chrono::milliseconds(1795652102123));
  spdlog::details::log_msg msg(time, spdlog::source_loc{}, "coalesce", spdlog::level::warn,
                               "model \"demo\"\nloaded");
  EXPECT_EQ(Format(msg),
            "{\"time\":\"2026-11-26T00:15:02.123Z\",\"level\":\"warning\",\"logger\":\"coalesce\","
            "\"msg\":\"model \\\"demo\\\"\\nloaded\"}\n");
}

TEST(JsonLogFormatterTest, AddsSourceWhenKnownAndNamesTheUnnamedLogger) {
  auto time = std::chrono::system_clock::time_point(std::chrono::milliseconds(0));
  spdlog::details::log_msg msg(time, spdlog::source_loc{"server/main.cc", 42, "Serve"}, "",
                               spdlog::level::info, "stopped");
  EXPECT_EQ(Format(msg),
            "{\"time\":\"1970-01-01T00:00:00.000Z\",\"level\":\"info\",\"logger\":\"coalesce\","
            "\"source\":\"server/main.cc:42\",\"msg\":\"stopped\"}\n");
}

}  // namespace
}  // namespace coalesce
