#pragma once
// Whether the subjects of a cohort were among the subjects a model was trained on. Ages of
// training subjects are in-sample: the shipped default's VBM part fits them almost
// exactly, so a cohort that repeats them (IXI users evaluating on IXI) reports an accuracy
// no new subject gets. `train` and `ensemble` record the training subject ids in the
// checkpoint (training.data.subject_ids); `evaluate` warns on an overlap, matched by
// subject_id (a renamed subject is not recognised).
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace brainage::prediction {

/// The qc_flags line `evaluate` gives a cohort subject whose subject_id is a training
/// subject of the model (app/prediction/subject_predictor.h); the subject stays in the metrics.
inline constexpr const char* kTrainingSubjectFlag =
    "training subject of the model (same subject_id): its age is in-sample, not a test of accuracy";

/// The checkpoint's training subject ids: `training.data.subject_ids` (transformers,
/// ensembles) or `training.subject_ids` (VBM models), i.e. the training manifest's subjects
/// (a single model trained with a validation fold lists its validation subjects too: they
/// chose nothing with `--final last`, but an ensemble of the folds saw them all); empty when the checkpoint does not
/// record them (written before they were recorded) or they are not strings. Never throws.
std::vector<std::string> training_subject_ids(const nlohmann::json& training);

/// The cohort subjects that are training subjects, in cohort order.
std::vector<std::string> training_subjects_in(const std::vector<std::string>& cohort_ids,
                                              const std::vector<std::string>& training_ids);

/// One warning line for `shared` (training_subjects_in) of a cohort of `cohort_size`
/// subjects, e.g. "3 of 20 cohort subjects were training subjects of the model
/// (IXI012-HH-1211, ...): their ages are in-sample, leave them out to measure accuracy";
/// nullopt when `shared` is empty. At most 5 ids are named. Never throws.
std::optional<std::string> training_overlap_warning(const std::vector<std::string>& shared, std::size_t cohort_size);

}  // namespace brainage::prediction
