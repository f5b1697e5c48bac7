#pragma once
// Training of the brain-age model on volumes already in the model grid (tensors): a
// seeded, age-stratified validation split or k-fold fold, augmentation, AdamW with
// linear warm-up + cosine decay, L1 loss on the age (in units of age_std) or the KL
// divergence to Gaussian soft labels over 1-year age bins (model/soft_label_loss.h), gradient
// clipping, QR retraction of the ERMoE bases after every step, early stopping on the
// validation MAE, a checkpoint after every epoch (resumable exactly), per-epoch metrics
// (metrics.csv, metrics.json), and the final model — the best validation epoch, or the
// last epoch (FinalWeights) — with a bias correction fitted on its validation predictions.
// val_fraction 0 (and folds 0) trains on every subject without a validation set; the
// final model is then the last epoch's and early stopping is off.
//
// Output folder:
//   checkpoints/epoch_NNN.{pt,json,optim.pt}  the last two epochs (resume state in the JSON)
//   best.{pt,json}                            the best validation epoch so far
//   model.{pt,json}                           the final model (best or last epoch + bias correction)
//   metrics.csv, metrics.json, validation_predictions.csv, split.csv
//
// Exact resume: the epoch's data order, augmentation and dropout draw from generators
// seeded by (seed, epoch), and the optimiser state is checkpointed, so a run resumed
// after epoch n is bit-identical to an uninterrupted one at the same thread count.
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "model/augmentation.h"
#include "model/model_options.h"

namespace brainage::model {

class DistributedContext;  // model/distributed.h

struct TrainingData {
  torch::Tensor volumes;                 // [N,C,Z,Y,X] float on the CPU (the model grid; C = model channels)
  torch::Tensor globals;                 // [N,G] float raw global inputs (ln mL), rows as volumes; undefined when G = 0
  std::vector<double> ages;              // N, years
  std::vector<std::string> subject_ids;  // N
  std::vector<double> csf_wm_ratios;     // N, each scan's CSF/WM contrast (preprocessing/t1_contrast_check.h); may be empty
  // Distributed ranks load only the volumes they need (model/distributed_training.h):
  // subject i's row in `volumes`, -1 = not loaded on this rank. Empty = row i.
  std::vector<int64_t> volume_rows;
};

/// Which weights become the final model.
enum class FinalWeights {
  kBestValidation,  // the epoch with the lowest validation MAE (optimistic as a CV estimate)
  kLastEpoch,       // the weights after the last epoch (the validation fold stays unseen)
};
FinalWeights final_weights_from_string(const std::string& name);  // "best" | "last"; ModelError otherwise
std::string to_string(FinalWeights weights);

struct TrainOptions {
  ModelOptions model;                    // age_mean/age_std, age bins and global_mean/std are set from the training data
  std::filesystem::path output_dir;      // required
  int64_t epochs = 60;                   /** Default = 60. Upper bound (early stopping may end sooner). */
  int64_t batch_size = 8;                /** Default = 8. */
  double learning_rate = 1e-3;           /** Default = 1e-3. Peak AdamW learning rate. */
  double weight_decay = 0.05;            /** Default = 0.05. AdamW decoupled weight decay. */
  int64_t warmup_epochs = 3;             /** Default = 3. Linear warm-up from 0 to the peak. */
  double min_lr_fraction = 0.02;         /** Default = 0.02. Cosine decays to this fraction of the peak. */
  double grad_clip = 1.0;                /** Default = 1.0. Max global gradient norm (0 = off). */
  int64_t patience = 15;                 /** Default = 15. Epochs without a better validation MAE before stopping (0 = off; off without a validation set). */
  FinalWeights final_weights = FinalWeights::kBestValidation;  /** Default = best validation epoch. Must be kLastEpoch without a validation set. */
  uint64_t seed = 42;                    /** Default = 42. Split, order, augmentation, init, dropout. */
  double val_fraction = 0.2;             /** Default = 0.2. Validation share when folds == 0, in [0, 1); 0 = train on everyone. */
  int64_t folds = 0;                     /** Default = 0 (use val_fraction). k-fold: validate on fold `fold` of `folds`. */
  int64_t fold = 0;                      /** Default = 0. Which fold is validation (0-based). */
  /** Default = none (the split uses `seed`). Seeds the split alone, so runs with different
      `seed`s (init, order, augmentation) share one k-fold partition: the members of a
      cross-validated seed ensemble (model/ensemble.h). */
  std::optional<uint64_t> split_seed;
  AugmentationOptions augmentation;      // see augmentation.h
  double age_bin_margin = 5.0;           /** Default = 5. KL loss: the age bins span [min age - x, max age + x] of the training subjects, years. */
  bool resume = false;                   /** Default = false. Continue from the newest epoch checkpoint in output_dir. */
  int64_t stop_after_epoch = 0;          /** Default = 0 (off). Stop after this epoch (simulates an interruption). */
  bool progress = true;                  /** Default = true. Progress bar on stderr (when a terminal) + one line per epoch on stdout. */
  int64_t eval_batch_size = 16;          /** Default = 16. */
  std::string preprocessing_version = "unknown";    // recorded in the checkpoints
  std::string intensity_normalisation = "unknown";  // recorded in the checkpoints
  nlohmann::json data_summary = nlohmann::json::object();  // recorded in the checkpoints
  /** Default = null (one process). Data-parallel group (model/distributed.h): batch_size is
      then the global batch, each rank trains on its shard, rank 0 writes every output. */
  DistributedContext* distributed = nullptr;
};

struct EpochMetrics {
  int64_t epoch = 0;  // 1-based
  double train_loss = 0, train_mae = 0, val_mae = 0, val_rmse = 0, val_r = 0;
  double learning_rate = 0, seconds = 0, scans_per_second = 0;
  double load_cv = 0, routing_entropy = 0;  // mean over MoE layers, validation set
  double aux_loss = 0;
};

struct TrainResult {
  int64_t epochs_run = 0;     // epochs completed in total (including before a resume)
  int64_t best_epoch = 0;
  double best_val_mae = 0;
  bool stopped_early = false;
  bool interrupted = false;   // stop_after_epoch hit
  std::filesystem::path model_path;  // output_dir/model.json (empty when interrupted)
  std::vector<EpochMetrics> history;
};

/// Age-stratified split of N subjects, seeded by split_seed (else seed): returns (train,
/// validation) indices.
/// folds == 0: about val_fraction of the subjects validate (none when it is 0); else fold
/// `fold` of `folds`.
std::pair<std::vector<int64_t>, std::vector<int64_t>> split_subjects(const std::vector<double>& ages,
                                                                     const TrainOptions& options);

/// Learning rate at optimiser step `step` (0-based) of `total_steps`, with `warmup_steps`.
double learning_rate_at(int64_t step, int64_t warmup_steps, int64_t total_steps, double peak, double min_fraction);

/// Trains; throws ModelError (bad data, nothing to resume) or OutputError.
TrainResult train_model(const TrainingData& data, const TrainOptions& options);

nlohmann::json to_json(const EpochMetrics& metrics);

}  // namespace brainage::model
