// SHA-256 through OpenSSL: the FIPS 180-4 test vectors, files, and folders (DICOM series)
// hashed by content.
#include "common/content_hash.h"

#include <gtest/gtest.h>

#include <fstream>

#include "common/errors.h"
#include "tests/test_data.h"

namespace fs = std::filesystem;
using brainage::testing::scratch_dir;

namespace {
void write(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }
}  // namespace

TEST(ContentHash, Sha256KnownVectors) {
  EXPECT_EQ(brainage::sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(brainage::sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(brainage::sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(brainage::sha256_prefix64("abc"), 0xba7816bf8f01cfeaull);
}

TEST(ContentHash, FileDigestIsTheDigestOfItsBytes) {
  const auto dir = scratch_dir("content-hash-file");
  std::string big(3 << 20, 'x');  // more than one 1 MiB block
  big[12345] = 'y';
  write(dir / "big.bin", big);
  EXPECT_EQ(brainage::sha256_file_hex(dir / "big.bin"), brainage::sha256_hex(big));
  EXPECT_EQ(brainage::sha256_path_hex(dir / "big.bin"), brainage::sha256_hex(big));
  EXPECT_THROW(brainage::sha256_file_hex(dir / "absent.bin"), brainage::InvalidInputError);
  EXPECT_THROW(brainage::sha256_path_hex(dir / "absent.bin"), brainage::InvalidInputError);
  EXPECT_THROW(brainage::sha256_file_hex(dir), brainage::InvalidInputError) << "a folder is not a file";
}

// Two DICOM series folders with different slices must never share a digest (they did when
// a folder was hashed as if it were a file: every folder got the same key).
TEST(ContentHash, FoldersAreHashedByTheirFiles) {
  const auto dir = scratch_dir("content-hash-folder");
  fs::create_directories(dir / "a/sub");
  write(dir / "a/IM0001", "slice one");
  write(dir / "a/sub/IM0002", "slice two");
  fs::create_directories(dir / "b/sub");
  write(dir / "b/IM0001", "slice one");
  write(dir / "b/sub/IM0002", "slice 2");
  const auto a = brainage::sha256_path_hex(dir / "a");
  EXPECT_EQ(a.size(), 64u);
  EXPECT_NE(a, brainage::sha256_path_hex(dir / "b")) << "different content";
  fs::rename(dir / "a", dir / "renamed");
  EXPECT_EQ(brainage::sha256_path_hex(dir / "renamed"), a) << "the folder's name is not content";
  fs::create_directories(dir / "empty1");
  fs::create_directories(dir / "c");
  write(dir / "c/IM0001", "slice one");
  EXPECT_NE(brainage::sha256_path_hex(dir / "c"), a) << "a missing file changes the digest";
}
