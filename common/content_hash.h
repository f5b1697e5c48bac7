#pragma once
// Content hashes: SHA-256 (FIPS 180-4) computed by OpenSSL's libcrypto (Debian
// libssl-dev), printed as 64 lower-case hex digits. The same bytes give the same digest
// on every machine and run. Used for checkpoint checksums and model ids, preprocessing
// cache keys, journal file names and shard assignment.
#include <cstdint>
#include <filesystem>
#include <string>

namespace brainage {

/// SHA-256 of `bytes`, 64 lower-case hex digits. Never throws (except std::bad_alloc).
std::string sha256_hex(const std::string& bytes);

/// SHA-256 of a file's bytes (read in 1 MiB blocks). Throws InvalidInputError naming the
/// file when it cannot be opened or read.
std::string sha256_file_hex(const std::filesystem::path& path);

/// The content digest of a scan: for a regular file its sha256_file_hex; for a folder (a
/// DICOM series) the SHA-256 of the sorted list "<relative path>\t<file sha256>\n" of every
/// regular file below it, so two different series never share a digest and renaming the
/// folder keeps it. Throws InvalidInputError naming the path when it does not exist, is
/// neither a file nor a folder, or a file cannot be read.
std::string sha256_path_hex(const std::filesystem::path& path);

/// The first 64 bits of sha256_hex(bytes), as a number: a stable, well-mixed key (shard
/// assignment). Never throws.
std::uint64_t sha256_prefix64(const std::string& bytes);

}  // namespace brainage
