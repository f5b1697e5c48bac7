#pragma once
// Every file brainage writes goes through here: the content is written to a temporary
// name in the destination folder, flushed, and renamed into place, so a run killed at
// any moment leaves either the old file or the complete new one, never half of one.
#include <filesystem>
#include <functional>
#include <string>

namespace brainage {

/// Writes `content` to `path` atomically. Throws OutputError naming the path on failure.
void write_file_atomic(const std::filesystem::path& path, const std::string& content);

/// Calls `writer(temp_path)` to produce the file under a temporary name in the same
/// folder, then renames it to `path`. Use it for writers that need a file name (ITK,
/// VTK, torch::save). The temporary keeps the final extension so writers that dispatch
/// on it (".nii.gz", ".png") behave as for the final name. On failure the temporary is
/// removed and the exception is rethrown.
void write_via_temp(const std::filesystem::path& path,
                    const std::function<void(const std::filesystem::path&)>& writer);

/// Creates `dir` (and parents) or throws OutputError if it cannot be created or written.
void ensure_writable_directory(const std::filesystem::path& dir);

/// Throws OutputError naming `dir` when it could not be created or written, creating
/// nothing: its nearest existing ancestor (or itself) must be a writable directory. For
/// commands to check up front, before minutes of work whose outputs have nowhere to go.
void check_writable_directory(const std::filesystem::path& dir);

}  // namespace brainage
