#include "app/prediction/training_overlap.h"

#include <set>

namespace brainage::prediction {

std::vector<std::string> training_subject_ids(const nlohmann::json& training) {
  if (!training.is_object()) return {};
  const nlohmann::json* list = nullptr;
  if (const auto data = training.find("data"); data != training.end() && data->is_object() && data->contains("subject_ids"))
    list = &data->at("subject_ids");
  else if (training.contains("subject_ids"))
    list = &training.at("subject_ids");
  if (!list || !list->is_array()) return {};
  std::vector<std::string> ids;
  for (const auto& id : *list)
    if (id.is_string()) ids.push_back(id.get<std::string>());
  return ids;
}

std::vector<std::string> training_subjects_in(const std::vector<std::string>& cohort_ids,
                                              const std::vector<std::string>& training_ids) {
  const std::set<std::string> trained(training_ids.begin(), training_ids.end());
  std::vector<std::string> shared;
  for (const auto& id : cohort_ids)
    if (trained.count(id)) shared.push_back(id);
  return shared;
}

std::optional<std::string> training_overlap_warning(const std::vector<std::string>& shared, std::size_t cohort_size) {
  if (shared.empty()) return std::nullopt;
  std::string named;
  for (std::size_t i = 0; i < shared.size() && i < 5; ++i) named += (i ? ", " : "") + shared[i];
  if (shared.size() > 5) named += ", ...";
  return std::to_string(shared.size()) + " of " + std::to_string(cohort_size) +
         " cohort subjects were training subjects of the model (" + named +
         "): their ages are in-sample, leave them out to measure accuracy";
}

}  // namespace brainage::prediction
