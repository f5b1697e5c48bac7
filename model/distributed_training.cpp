#include "model/distributed_training.h"

#include <algorithm>
#include <string>
#include <unordered_map>

#include "common/errors.h"

namespace brainage::model {

std::vector<int64_t> rank_training_subjects(const std::vector<int64_t>& train, int rank, int world) {
  std::vector<std::size_t> order(train.begin(), train.end());
  const auto shard = shard_indices(order, rank, world, /*pad=*/true);
  return std::vector<int64_t>(shard.begin(), shard.end());
}

std::vector<int64_t> subjects_needed_by_rank(const std::vector<double>& ages, const TrainOptions& options, int rank,
                                             int world) {
  const auto [train, validation] = split_subjects(ages, options);
  auto needed = rank_training_subjects(train, rank, world);
  needed.insert(needed.end(), validation.begin(), validation.end());
  std::sort(needed.begin(), needed.end());
  needed.erase(std::unique(needed.begin(), needed.end()), needed.end());
  return needed;
}

std::vector<int64_t> rank_epoch_order(const std::vector<int64_t>& epoch_order, const std::vector<int64_t>& train,
                                      const DistributedContext& dist) {
  if (!dist.enabled()) return epoch_order;
  std::unordered_map<int64_t, std::size_t> position;
  for (std::size_t i = 0; i < epoch_order.size(); ++i) position[epoch_order[i]] = i;
  auto mine = rank_training_subjects(train, dist.rank(), dist.world_size());
  std::stable_sort(mine.begin(), mine.end(), [&](int64_t a, int64_t b) { return position.at(a) < position.at(b); });
  return mine;
}

namespace {

/// The loaded rows of `subjects` (data.volume_rows, or the subjects themselves).
torch::Tensor loaded_rows(const TrainingData& data, const std::vector<int64_t>& subjects, int64_t loaded) {
  if (data.volume_rows.empty()) return torch::tensor(subjects, torch::kInt64);
  std::vector<int64_t> rows;
  rows.reserve(subjects.size());
  for (int64_t s : subjects) {
    const int64_t row = (s >= 0 && s < static_cast<int64_t>(data.volume_rows.size())) ? data.volume_rows[s] : -1;
    if (row < 0 || row >= loaded) {
      const std::string id = s >= 0 && s < static_cast<int64_t>(data.subject_ids.size()) ? data.subject_ids[s]
                                                                                          : std::to_string(s);
      throw ModelError("training: subject " + id + ": volume not loaded on this rank (the shard it loaded does not "
                       "match the split; every rank must use the same manifest, seed and split options)");
    }
    rows.push_back(row);
  }
  return torch::tensor(rows, torch::kInt64);
}

}  // namespace

torch::Tensor select_volumes(const TrainingData& data, const std::vector<int64_t>& subjects) {
  return data.volumes.index_select(0, loaded_rows(data, subjects, data.volumes.size(0)));
}

torch::Tensor select_globals(const TrainingData& data, const std::vector<int64_t>& subjects) {
  if (!data.globals.defined()) return {};
  return data.globals.index_select(0, loaded_rows(data, subjects, data.globals.size(0)));
}

}  // namespace brainage::model
