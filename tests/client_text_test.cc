#include "engine/client_text.h"

#include <string>

#include "gtest/gtest.h"

namespace coalesce {
namespace {

TEST(ClientTextTest, KeepsOrdinaryNamesAsTheyAre) {
  EXPECT_EQ(ClientText("INPUT0"), "INPUT0");
  EXPECT_EQ(ClientText("resnet-50_v2.onnx"), "resnet-50_v2.onnx");
  EXPECT_EQ(ClientText("mod\xc3\xa8le \xe2\x82\xac 'q' \"d\""), "mod\xc3\xa8le \xe2\x82\xac 'q' \"d\"");
  EXPECT_EQ(ClientText(""), "");
}

TEST(ClientTextTest, EscapesLineBreaksControlsAndBackslashes) {
  EXPECT_EQ(ClientText("a\nFORGED line"), "a\\nFORGED line");
  EXPECT_EQ(ClientText("a\r\tb\\n"), "a\\r\\tb\\\\n");
  EXPECT_EQ(ClientText(std::string("nul\0\x1b[31m\x7f", 10)), "nul\\x00\\x1b[31m\\x7f");
  // C1 controls (NEL ends a line for some readers) and the Unicode line and paragraph separators.
  EXPECT_EQ(ClientText("a\xc2\x85z\xc2\x9f"), "a\\u0085z\\u009f");
  EXPECT_EQ(ClientText("a\xe2\x80\xa8z\xe2\x80\xa9"), "a\\u2028z\\u2029");
  // Their neighbours are ordinary characters.
  EXPECT_EQ(ClientText("\xc2\xa0\xe2\x80\xa7"), "\xc2\xa0\xe2\x80\xa7");
}

TEST(ClientTextTest, CutsLongTextAndStatesItsFullSize) {
  EXPECT_EQ(ClientText(std::string(kMaxClientTextBytes, 'n')), std::string(kMaxClientTextBytes, 'n'));
  EXPECT_EQ(ClientText(std::string(1 << 20, 'n')),
            std::string(kMaxClientTextBytes, 'n') + "...(1048576 bytes)");
}

TEST(ClientTextTest, CutsBetweenCharactersNeverInsideOne) {
  // A two-byte character across the limit is left out whole.
  const std::string text = std::string(kMaxClientTextBytes - 1, 'a') + "\xc3\xa9";
  EXPECT_EQ(ClientText(text), std::string(kMaxClientTextBytes - 1, 'a') + "...(129 bytes)");
  const std::string euro = std::string(kMaxClientTextBytes - 2, 'a') + "\xe2\x82\xac";
  EXPECT_EQ(ClientText(euro), std::string(kMaxClientTextBytes - 2, 'a') + "...(129 bytes)");
}

TEST(ClientTextTest, CutsBeforeEscapingSoTheResultStaysBounded) {
  const std::string text = ClientText(std::string(1 << 20, '\n'));
  std::string expected;
  for (size_t i = 0; i < kMaxClientTextBytes; ++i) expected += "\\n";
  EXPECT_EQ(text, expected + "...(1048576 bytes)");
}

TEST(ClientTextTest, LogTextEscapesAWholeMessageAndCutsItAtItsOwnBound) {
  EXPECT_EQ(LogText("load failed:\n  line 2"), "load failed:\\n  line 2");
  EXPECT_EQ(LogText(std::string(5000, 'x')), std::string(kMaxLogTextBytes, 'x') + "...(5000 bytes)");
  EXPECT_EQ(LogText("abcdef", 3), "abc...(6 bytes)");
}

TEST(ClientTextTest, TruncateTextCutsWithoutEscaping) {
  EXPECT_EQ(TruncateText("line 1\nline 2", 100), "line 1\nline 2");
  EXPECT_EQ(TruncateText("line 1\nline 2", 7), "line 1\n...(13 bytes)");
}

}  // namespace
}  // namespace coalesce
