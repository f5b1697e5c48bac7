#include "common/content_hash.h"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <memory>
#include <vector>

#include "common/errors.h"

namespace brainage {
namespace fs = std::filesystem;
namespace {

/// One SHA-256 computation through OpenSSL's EVP interface (the one OpenSSL 3 keeps).
class Sha256 {
 public:
  Sha256() : context_(EVP_MD_CTX_new(), &EVP_MD_CTX_free) {
    if (!context_ || EVP_DigestInit_ex(context_.get(), EVP_sha256(), nullptr) != 1) throw std::bad_alloc();
  }
  void update(const void* data, std::size_t size) { EVP_DigestUpdate(context_.get(), data, size); }
  std::string hex() {
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int length = 0;
    EVP_DigestFinal_ex(context_.get(), digest.data(), &length);
    static const char* const kDigits = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < length; ++i) {
      out += kDigits[digest[i] >> 4];
      out += kDigits[digest[i] & 15];
    }
    return out;
  }

 private:
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context_;
};

}  // namespace

std::string sha256_hex(const std::string& bytes) {
  Sha256 sha;
  sha.update(bytes.data(), bytes.size());
  return sha.hex();
}

std::string sha256_file_hex(const fs::path& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw InvalidInputError(path.string() + ": is a folder, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InvalidInputError(path.string() + ": file cannot be opened for reading");
  Sha256 sha;
  std::vector<char> block(1 << 20);
  while (in) {
    in.read(block.data(), static_cast<std::streamsize>(block.size()));
    sha.update(block.data(), static_cast<std::size_t>(in.gcount()));
  }
  if (in.bad()) throw InvalidInputError(path.string() + ": read error while hashing the file");
  return sha.hex();
}

std::string sha256_path_hex(const fs::path& path) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return sha256_file_hex(path);
  if (!fs::is_directory(path, ec)) {
    if (!fs::exists(path, ec)) throw InvalidInputError(path.string() + ": file does not exist");
    throw InvalidInputError(path.string() + ": neither a file nor a folder, cannot be hashed");
  }
  std::vector<std::string> lines;
  for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    lines.push_back(it->path().lexically_relative(path).generic_string() + "\t" + sha256_file_hex(it->path()) + "\n");
  }
  if (ec) throw InvalidInputError(path.string() + ": folder cannot be listed (" + ec.message() + ")");
  std::sort(lines.begin(), lines.end());
  Sha256 sha;
  for (const auto& line : lines) sha.update(line.data(), line.size());
  return sha.hex();
}

std::uint64_t sha256_prefix64(const std::string& bytes) { return std::stoull(sha256_hex(bytes).substr(0, 16), nullptr, 16); }

}  // namespace brainage
