#pragma once
// Stable content hashes: the same bytes give the same hash on every machine and run
// (64-bit FNV-1a), printed as 16 hex digits. Used as preprocessing cache keys and to
// assign subjects to shards.
#include <cstdint>
#include <filesystem>
#include <string>

namespace brainage::cohort {

/// FNV-1a 64 of `bytes`, continuing from `seed` (the FNV offset basis by default).
std::uint64_t fnv1a64(const std::string& bytes, std::uint64_t seed = 14695981039346656037ull);

/// FNV-1a 64 of a file's bytes (read in 1 MiB blocks). Throws InvalidInputError naming
/// the file when it cannot be read.
std::uint64_t hash_file(const std::filesystem::path& path);

/// 16 lower-case hex digits.
std::string to_hex(std::uint64_t value);

}  // namespace brainage::cohort
