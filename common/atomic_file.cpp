#include "common/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "common/errors.h"

namespace brainage {
namespace fs = std::filesystem;

namespace {

/// "dir/name.nii.gz" -> "dir/.name.tmp-<pid>-<n>.nii.gz": hidden, unique per process and
/// call, and ending with the same (possibly double) extension.
fs::path temp_sibling(const fs::path& path) {
  static std::atomic<unsigned> counter{0};
  std::string name = path.filename().string();
  std::string stem = name, ext;
  const auto dot = name.find('.', 1);
  if (dot != std::string::npos) {
    stem = name.substr(0, dot);
    ext = name.substr(dot);
  }
  return path.parent_path() / ("." + stem + ".tmp-" + std::to_string(::getpid()) + "-" +
                               std::to_string(counter++) + ext);
}

void fsync_path(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

void write_via_temp(const fs::path& path, const std::function<void(const fs::path&)>& writer) {
  const fs::path tmp = temp_sibling(path);
  try {
    writer(tmp);
    if (!fs::exists(tmp)) throw OutputError(path.string() + ": writer produced no file");
    fsync_path(tmp);
    std::error_code ec;
    fs::rename(tmp, path, ec);
    if (ec) throw OutputError(path.string() + ": cannot move finished file into place (" + ec.message() + ")");
  } catch (...) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw;
  }
}

void write_file_atomic(const fs::path& path, const std::string& content) {
  write_via_temp(path, [&](const fs::path& tmp) {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw OutputError(path.string() + ": cannot open for writing (" + std::strerror(errno) + ")");
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    out.flush();
    if (!out) throw OutputError(path.string() + ": write failed (disk full?)");
  });
}

void ensure_writable_directory(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir))
    throw OutputError(dir.string() + ": cannot create output directory (" + ec.message() + ")");
  if (::access(dir.c_str(), W_OK) != 0)
    throw OutputError(dir.string() + ": output directory is not writable");
}

void check_writable_directory(const fs::path& dir) {
  std::error_code ec;
  fs::path existing = fs::absolute(dir, ec);
  if (ec) throw OutputError(dir.string() + ": cannot resolve the output directory (" + ec.message() + ")");
  // exists() is false (without an error) for a path below a regular file (ENOTDIR).
  while (!fs::exists(existing, ec) && existing.has_relative_path()) existing = existing.parent_path();
  if (!fs::is_directory(existing, ec))
    throw OutputError(dir.string() + ": cannot create the output directory (" + existing.string() +
                      " is not a directory)");
  if (::access(existing.c_str(), W_OK | X_OK) != 0)
    throw OutputError(dir.string() + ": output directory is not writable (" + existing.string() + ": " +
                      std::strerror(errno) + ")");
}

}  // namespace brainage
