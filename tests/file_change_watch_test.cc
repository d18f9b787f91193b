#include "server/file_change_watch.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace coalesce {
namespace {

namespace fs = std::filesystem;

class FileChangeWatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string dir = (fs::temp_directory_path() / "file-change-watch-XXXXXX").string();
    ASSERT_NE(mkdtemp(dir.data()), nullptr);
    dir_ = dir;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Writes `contents` to `path` stamped with modification time `seconds`, so that two versions
  // differ (or not) by what the test says rather than by the clock's resolution.
  static void Write(const fs::path& path, const std::string& contents, time_t seconds) {
    std::ofstream(path, std::ios::trunc) << contents;
    const timespec times[2] = {{seconds, 0}, {seconds, 0}};
    ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW), 0);
  }
  // Replaces `path` by a rename, as an operator's tooling should.
  static void Replace(const fs::path& path, const std::string& contents, time_t seconds) {
    const fs::path temporary = path.string() + ".new";
    Write(temporary, contents, seconds);
    fs::rename(temporary, path);
  }

  fs::path dir_;
};

TEST_F(FileChangeWatchTest, UnchangedFilesAreNeverReported) {
  Write(dir_ / "cert.pem", "cert", 1000);
  Write(dir_ / "token", "token", 1000);
  FileChangeWatch watch({(dir_ / "cert.pem").string(), (dir_ / "token").string()});
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(watch.Changed());
}

TEST_F(FileChangeWatchTest, AFileReplacedByARenameIsReportedOnceOnTheNextLookThatSeesItSettled) {
  Write(dir_ / "cert.pem", "first", 1000);
  FileChangeWatch watch({(dir_ / "cert.pem").string()});
  Replace(dir_ / "cert.pem", "other", 1000);  // Same size and time: only the inode differs.
  EXPECT_FALSE(watch.Changed());              // Changed since the last look: may still move.
  EXPECT_TRUE(watch.Changed());
  EXPECT_FALSE(watch.Changed());
  EXPECT_FALSE(watch.Changed());
}

TEST_F(FileChangeWatchTest, AFileWrittenInPlaceIsReportedOnlyOnceItStopsChanging) {
  Write(dir_ / "token", "t", 1000);
  FileChangeWatch watch({(dir_ / "token").string()});
  Write(dir_ / "token", "to", 1001);
  EXPECT_FALSE(watch.Changed());
  Write(dir_ / "token", "tok", 1002);
  EXPECT_FALSE(watch.Changed());
  Write(dir_ / "token", "toke", 1002);  // Same time, another size.
  EXPECT_FALSE(watch.Changed());
  EXPECT_TRUE(watch.Changed());
  EXPECT_FALSE(watch.Changed());
}

TEST_F(FileChangeWatchTest, TheCertificateAndKeyReplacedOneAfterTheOtherAreOneChange) {
  Write(dir_ / "cert.pem", "cert", 1000);
  Write(dir_ / "key.pem", "key", 1000);
  FileChangeWatch watch({(dir_ / "cert.pem").string(), (dir_ / "key.pem").string()});
  Replace(dir_ / "cert.pem", "cert2", 1001);
  EXPECT_FALSE(watch.Changed());
  Replace(dir_ / "key.pem", "key2", 1001);
  EXPECT_FALSE(watch.Changed());
  EXPECT_TRUE(watch.Changed());
  EXPECT_FALSE(watch.Changed());
}

TEST_F(FileChangeWatchTest, ASecretVolumeSwappingItsDataLinkIsAChange) {
  // A Kubernetes Secret volume: name -> ..data/name, ..data -> a timestamped directory that
  // the kubelet replaces by renaming a new link over ..data.
  fs::create_directory(dir_ / "v1");
  fs::create_directory(dir_ / "v2");
  Write(dir_ / "v1" / "token", "first", 1000);
  Write(dir_ / "v2" / "token", "other", 1000);
  fs::create_directory_symlink("v1", dir_ / "..data");
  fs::create_symlink("..data/token", dir_ / "token");
  FileChangeWatch watch({(dir_ / "token").string()});
  fs::create_directory_symlink("v2", dir_ / "..data_tmp");
  fs::rename(dir_ / "..data_tmp", dir_ / "..data");
  EXPECT_FALSE(watch.Changed());
  EXPECT_TRUE(watch.Changed());
}

TEST_F(FileChangeWatchTest, AFileRemovedAndOneCreatedAreChanges) {
  Write(dir_ / "token", "token", 1000);
  FileChangeWatch watch({(dir_ / "token").string(), (dir_ / "ca.pem").string()});
  fs::remove(dir_ / "token");
  EXPECT_FALSE(watch.Changed());
  EXPECT_TRUE(watch.Changed());
  Write(dir_ / "ca.pem", "ca", 1000);
  EXPECT_FALSE(watch.Changed());
  EXPECT_TRUE(watch.Changed());
}

TEST_F(FileChangeWatchTest, ResetTakesTheFilesAsTheyAreNowAsReported) {
  Write(dir_ / "token", "token", 1000);
  FileChangeWatch watch({(dir_ / "token").string()});
  Replace(dir_ / "token", "other", 1001);
  watch.Reset();  // A SIGHUP reload read them.
  EXPECT_FALSE(watch.Changed());
  EXPECT_FALSE(watch.Changed());
}

TEST_F(FileChangeWatchTest, EmptyPathsAreLeftOut) {
  EXPECT_TRUE(FileChangeWatch({"", ""}).empty());
  Write(dir_ / "token", "token", 1000);
  EXPECT_FALSE(FileChangeWatch({"", (dir_ / "token").string()}).empty());
}

}  // namespace
}  // namespace coalesce
