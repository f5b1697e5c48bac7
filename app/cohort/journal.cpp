#include "app/cohort/journal.h"

#include <fstream>

#include "common/content_hash.h"
#include "common/atomic_file.h"

namespace brainage::cohort {
namespace fs = std::filesystem;

std::string safe_name(const std::string& id) {
  std::string out;
  for (unsigned char c : id) out += (std::isalnum(c) || c == '.' || c == '_' || c == '-') ? static_cast<char>(c) : '_';
  if (out.empty() || out[0] == '.') out = "_" + out;
  if (out.size() > 80) out.resize(80);
  return out + "-" + sha256_hex(id).substr(0, 8);
}

Journal::Journal(fs::path dir) : dir_(std::move(dir)) { ensure_writable_directory(dir_); }

std::map<std::string, SubjectRecord> Journal::read_all() const {
  std::map<std::string, SubjectRecord> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    const auto name = entry.path().filename().string();
    if (name.empty() || name[0] == '.' || entry.path().extension() != ".json") continue;
    try {
      std::ifstream in(entry.path());
      auto record = record_from_json(nlohmann::json::parse(in));
      out[record.subject_id] = std::move(record);
    } catch (const std::exception&) {
      // not a complete entry: the subject runs again
    }
  }
  return out;
}

void Journal::write(const SubjectRecord& record) const {
  write_file_atomic(dir_ / (safe_name(record.subject_id) + ".json"), to_json(record).dump(1) + "\n");
}

}  // namespace brainage::cohort
