#pragma once
// How model/trainer.cpp splits its data over the ranks of a data-parallel job
// (model/distributed.h). Kept here so the trainer only calls these helpers.
//
// Sharding (docs/DISTRIBUTED.md): every rank reads the whole manifest's ages and computes
// the same seeded train/validation split (split_subjects). Rank r keeps a FIXED strided
// shard of the training subjects (shard_indices, padded so all ranks take the same number
// of steps) and the whole validation split (every rank validates on all of it, so best
// epoch and early stopping agree without communication). The app loads only those
// volumes (TrainingData::volume_rows maps subjects to the loaded rows).
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "model/distributed.h"
#include "model/trainer.h"

namespace brainage::model {

/// The training subjects rank `rank` of `world` trains on (fixed for the whole run; with
/// repeats when the shards are padded). `train` = split_subjects(...).first.
std::vector<int64_t> rank_training_subjects(const std::vector<int64_t>& train, int rank, int world);

/// Manifest rows (subjects) whose volumes rank `rank` of `world` needs: its training shard
/// and the whole validation split, sorted, without repeats. World 1: every subject.
std::vector<int64_t> subjects_needed_by_rank(const std::vector<double>& ages, const TrainOptions& options, int rank,
                                             int world);

/// This rank's training order for one epoch: its shard, sorted by the position each
/// subject has in `epoch_order` (the epoch's shuffle of all training subjects, identical on
/// every rank). World 1: `epoch_order` itself.
std::vector<int64_t> rank_epoch_order(const std::vector<int64_t>& epoch_order, const std::vector<int64_t>& train,
                                      const DistributedContext& dist);

/// Volumes of `subjects` as [B,C,Z,Y,X], through data.volume_rows when it is set. Throws
/// ModelError naming the subject when its volume was not loaded on this rank.
torch::Tensor select_volumes(const TrainingData& data, const std::vector<int64_t>& subjects);

/// Global inputs of `subjects` as [B,G] (the rows of data.globals, through data.volume_rows
/// as the volumes); an undefined tensor when data.globals is. Throws as select_volumes.
torch::Tensor select_globals(const TrainingData& data, const std::vector<int64_t>& subjects);

}  // namespace brainage::model
