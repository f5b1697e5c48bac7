#pragma once
// SHA-256 (FIPS 180-4) of bytes and files, for checkpoint checksums and model ids.
#include <filesystem>
#include <string>

namespace brainage::model {

/// Lower-case hex digest of `data`.
std::string sha256_hex(const std::string& data);
/// Lower-case hex digest of the file's bytes; throws ModelError naming the file if unreadable.
std::string sha256_file_hex(const std::filesystem::path& path);

}  // namespace brainage::model
