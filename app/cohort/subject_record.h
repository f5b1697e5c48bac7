#pragma once
// The outcome of one subject, as the journal stores it and the outputs read it.
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace brainage::cohort {

/// What a per-subject processor returns; failures are thrown (typed errors of
/// common/errors.h), not returned.
struct SubjectOutcome {
  double predicted_age = std::nan("");
  double age_sd_years = std::nan("");  // spread of an ensemble's member ages (0 for one model; NaN = not known)
  std::vector<std::string> qc_flags;   // warnings that did not stop the subject
  std::filesystem::path qc_image;      // preprocessing qc.png, "" when none
  nlohmann::json details = nlohmann::json::object();  // e.g. model id, cache key, timings
};

struct SubjectRecord {
  std::string subject_id;
  std::size_t row = 0;                 // cohort row (1-based)
  std::string scan;                    // absolute path processed
  std::string scan_signature;          // "<bytes>:<mtime ns>" when processed, "missing" if absent
  std::string processing_key;          // RunOptions::processing_key it was made with ("" in older journals)
  bool ok = false;
  double predicted_age = std::nan("");
  double age_sd_years = std::nan("");  // SubjectOutcome's; NaN when not known (journals written before it)
  std::vector<std::string> qc_flags;
  std::string error;                   // "<ErrorKind>: <message>" when !ok
  int error_code = 0;                  // the ExitCode the error carries
  std::string qc_image;                // absolute path, "" when none
  double seconds = 0;                  // processing time (not part of any compared output)
  nlohmann::json details = nlohmann::json::object();
};

nlohmann::json to_json(const SubjectRecord& record);
/// Throws std::exception (nlohmann) for JSON that lacks a field.
SubjectRecord record_from_json(const nlohmann::json& json);

/// "<bytes>:<mtime ns>" of the file, or "missing". Used to notice a scan replaced since
/// it was journaled.
std::string scan_signature(const std::filesystem::path& scan);

}  // namespace brainage::cohort
