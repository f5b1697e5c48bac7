#pragma once
// The resume journal: one JSON file per finished subject in <out>/journal/, each written
// atomically (common/atomic_file.h) the moment the subject finishes. A run killed at any
// point leaves only complete entries; the same command restarted skips them.
#include <filesystem>
#include <map>
#include <string>

#include "app/cohort/subject_record.h"

namespace brainage::cohort {

/// A file-system-safe name for a subject id: [A-Za-z0-9._-] kept, other bytes replaced by
/// '_', plus 8 hex digits of the id's hash so distinct ids never collide.
std::string safe_name(const std::string& subject_id);

class Journal {
 public:
  explicit Journal(std::filesystem::path dir);
  const std::filesystem::path& dir() const { return dir_; }

  /// Every complete entry, by subject id. Files that do not parse are ignored (the
  /// subject is processed again).
  std::map<std::string, SubjectRecord> read_all() const;
  /// Writes (or replaces) the entry of `record.subject_id` atomically.
  void write(const SubjectRecord& record) const;

 private:
  std::filesystem::path dir_;
};

}  // namespace brainage::cohort
