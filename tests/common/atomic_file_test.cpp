#include "common/atomic_file.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <fstream>
#include <sstream>

#include "common/errors.h"
#include "tests/test_data.h"

namespace fs = std::filesystem;
using brainage::testing::scratch_dir;

namespace {
std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
size_t count_entries(const fs::path& dir) {
  return static_cast<size_t>(std::distance(fs::directory_iterator(dir), fs::directory_iterator{}));
}
}  // namespace

TEST(AtomicFile, WritesContentAndLeavesNoTemporary) {
  const auto dir = scratch_dir("atomic-write");
  brainage::write_file_atomic(dir / "a.json", "{\"x\": 1}");
  EXPECT_EQ(slurp(dir / "a.json"), "{\"x\": 1}");
  EXPECT_EQ(count_entries(dir), 1u);
}

TEST(AtomicFile, FailingWriterKeepsOldFileAndRemovesTemporary) {
  const auto dir = scratch_dir("atomic-fail");
  brainage::write_file_atomic(dir / "out.csv", "old");
  EXPECT_THROW(brainage::write_via_temp(dir / "out.csv",
                                        [](const fs::path& tmp) {
                                          std::ofstream(tmp) << "half";
                                          throw std::runtime_error("killed mid-write");
                                        }),
               std::runtime_error);
  EXPECT_EQ(slurp(dir / "out.csv"), "old");
  EXPECT_EQ(count_entries(dir), 1u);
}

TEST(AtomicFile, TemporaryKeepsDoubleExtension) {
  const auto dir = scratch_dir("atomic-ext");
  std::string seen;
  brainage::write_via_temp(dir / "t1.nii.gz", [&](const fs::path& tmp) {
    seen = tmp.filename().string();
    std::ofstream(tmp) << "x";
  });
  EXPECT_NE(seen.find(".nii.gz"), std::string::npos);
  EXPECT_EQ(seen.substr(seen.size() - 7), ".nii.gz");
}

TEST(AtomicFile, UnwritableDirectoryIsAnOutputError) {
  if (::geteuid() == 0) {
    // root ignores permissions; use a path below a regular file instead.
    const auto dir = scratch_dir("atomic-unwritable");
    std::ofstream(dir / "file") << "x";
    EXPECT_THROW(brainage::ensure_writable_directory(dir / "file" / "sub"), brainage::OutputError);
    EXPECT_THROW(brainage::write_file_atomic(dir / "file" / "x.txt", "y"), brainage::OutputError);
  } else {
    EXPECT_THROW(brainage::ensure_writable_directory("/proc/brainage-cannot-exist"), brainage::OutputError);
  }
}

// The up-front check of `brainage preprocess/predict -o`: refuses without creating anything.
TEST(AtomicFile, CheckWritableDirectoryCreatesNothing) {
  const auto dir = scratch_dir("atomic-check");
  std::ofstream(dir / "file") << "x";
  EXPECT_NO_THROW(brainage::check_writable_directory(dir / "new" / "deeper"));
  EXPECT_FALSE(fs::exists(dir / "new")) << "a check, not a mkdir";
  EXPECT_NO_THROW(brainage::check_writable_directory(dir));
  try {
    brainage::check_writable_directory(dir / "file" / "out");
    ADD_FAILURE() << "a path below a regular file was accepted";
  } catch (const brainage::OutputError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind((dir / "file" / "out").string() + ": ", 0), 0u) << msg;
    EXPECT_NE(msg.find("is not a directory"), std::string::npos) << msg;
  }
  EXPECT_THROW(brainage::check_writable_directory(dir / "file"), brainage::OutputError);
  if (::geteuid() != 0) {  // root writes into a read-only folder anyway
    fs::create_directories(dir / "ro");
    fs::permissions(dir / "ro", fs::perms::owner_read | fs::perms::owner_exec);
    EXPECT_THROW(brainage::check_writable_directory(dir / "ro" / "out"), brainage::OutputError);
    fs::permissions(dir / "ro", fs::perms::owner_all);
  }
}
