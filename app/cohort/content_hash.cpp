#include "app/cohort/content_hash.h"

#include <cstdio>
#include <fstream>
#include <vector>

#include "common/errors.h"

namespace brainage::cohort {

namespace {
constexpr std::uint64_t kFnvPrime = 1099511628211ull;
}

std::uint64_t fnv1a64(const std::string& bytes, std::uint64_t seed) {
  std::uint64_t h = seed;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= kFnvPrime;
  }
  return h;
}

std::uint64_t hash_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InvalidInputError(path.string() + ": file cannot be opened for reading");
  std::uint64_t h = 14695981039346656037ull;
  std::vector<char> block(1 << 20);
  while (in) {
    in.read(block.data(), static_cast<std::streamsize>(block.size()));
    const auto n = in.gcount();
    for (std::streamsize i = 0; i < n; ++i) {
      h ^= static_cast<unsigned char>(block[static_cast<std::size_t>(i)]);
      h *= kFnvPrime;
    }
  }
  if (in.bad()) throw InvalidInputError(path.string() + ": read error while hashing the file");
  return h;
}

std::string to_hex(std::uint64_t value) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(value));
  return buf;
}

}  // namespace brainage::cohort
