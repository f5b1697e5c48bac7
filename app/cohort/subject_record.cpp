#include "app/cohort/subject_record.h"

namespace brainage::cohort {
namespace fs = std::filesystem;

nlohmann::json to_json(const SubjectRecord& r) {
  nlohmann::json j;
  j["subject_id"] = r.subject_id;
  j["row"] = r.row;
  j["scan"] = r.scan;
  j["scan_signature"] = r.scan_signature;
  j["processing_key"] = r.processing_key;
  j["ok"] = r.ok;
  j["predicted_age"] = r.ok ? nlohmann::json(r.predicted_age) : nlohmann::json(nullptr);
  if (r.ok && std::isfinite(r.age_sd_years)) j["age_sd_years"] = r.age_sd_years;  // absent when not known
  j["qc_flags"] = r.qc_flags;
  j["error"] = r.error;
  j["error_code"] = r.error_code;
  j["qc_image"] = r.qc_image;
  j["seconds"] = r.seconds;
  j["details"] = r.details;
  return j;
}

SubjectRecord record_from_json(const nlohmann::json& j) {
  SubjectRecord r;
  r.subject_id = j.at("subject_id").get<std::string>();
  r.row = j.at("row").get<std::size_t>();
  r.scan = j.at("scan").get<std::string>();
  r.scan_signature = j.at("scan_signature").get<std::string>();
  r.processing_key = j.value("processing_key", std::string());
  r.ok = j.at("ok").get<bool>();
  if (r.ok) r.predicted_age = j.at("predicted_age").get<double>();
  if (r.ok && j.contains("age_sd_years") && j["age_sd_years"].is_number()) r.age_sd_years = j["age_sd_years"].get<double>();
  r.qc_flags = j.at("qc_flags").get<std::vector<std::string>>();
  r.error = j.at("error").get<std::string>();
  r.error_code = j.value("error_code", 0);
  r.qc_image = j.value("qc_image", std::string());
  r.seconds = j.value("seconds", 0.0);
  r.details = j.value("details", nlohmann::json::object());
  return r;
}

std::string scan_signature(const fs::path& scan) {
  std::error_code ec;
  const auto size = fs::file_size(scan, ec);
  if (ec) return "missing";
  const auto mtime = fs::last_write_time(scan, ec);
  if (ec) return "missing";
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(mtime.time_since_epoch()).count();
  return std::to_string(size) + ":" + std::to_string(ns);
}

}  // namespace brainage::cohort
