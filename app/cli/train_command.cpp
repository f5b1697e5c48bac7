#include "app/cli/train_command.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>

#include "app/cli/cli.h"
#include "app/cli/ensemble_command.h"
#include "common/atomic_file.h"
#include "common/build_info.h"
#include "common/csv.h"
#include "common/age_statistics.h"
#include "common/errors.h"
#include "model/distributed_training.h"
#include "model/runtime.h"
#include "app/prediction/scan_prediction.h"
#include "app/prediction/training_data.h"

namespace brainage::app {
namespace fs = std::filesystem;
using prediction::load_training_data;
using prediction::ManifestEntry;
using prediction::read_training_manifest;

namespace {

const char* kIntensityNormalisation =
    "brain voxels divided by the brain's 99th intensity percentile, clipped to [0, 1.5]; background 0";

/// Distributed: joins the group, then loads only the volumes this rank trains and
/// validates on (model/distributed_training.h); the ages and ids of every subject are kept
/// so each rank computes the same split. One process: loads everything.
model::TrainingData load_rank_data(const std::vector<ManifestEntry>& entries, const model::TrainOptions& train,
                                   model::DistributedContext& dist, bool progress) {
  const fs::path cache = train.output_dir / "cache";
  model::CheckpointInfo reads;  // what the model to train reads: its channels and global input
  reads.model = train.model;
  if (!dist.enabled()) return load_training_data(entries, cache, progress, reads);
  std::vector<double> ages;
  for (const auto& e : entries) ages.push_back(e.age);
  const auto needed = model::subjects_needed_by_rank(ages, train, dist.rank(), dist.world_size());
  std::vector<ManifestEntry> subset;
  for (int64_t i : needed) subset.push_back(entries[i]);
  auto data = load_training_data(subset, cache, progress, reads);
  data.volume_rows.assign(entries.size(), -1);
  for (size_t row = 0; row < needed.size(); ++row) data.volume_rows[needed[row]] = static_cast<int64_t>(row);
  data.ages = ages;
  // Every subject's CSF/WM contrast (the checkpoint records the whole training set's range,
  // not this rank's): each rank adds the ratios it measured and their counts.
  const size_t n = entries.size();
  std::vector<double> sums(2 * n, 0.0);
  for (size_t row = 0; row < needed.size(); ++row) {
    sums[static_cast<size_t>(needed[row])] += data.csf_wm_ratios[row];
    sums[n + static_cast<size_t>(needed[row])] += 1.0;
  }
  sums = dist.all_reduce_sum(sums);
  data.csf_wm_ratios.clear();
  for (size_t i = 0; i < n; ++i)
    if (sums[n + i] > 0) data.csf_wm_ratios.push_back(sums[i] / sums[n + i]);
  data.subject_ids.clear();
  for (const auto& e : entries) data.subject_ids.push_back(e.subject_id);
  return data;
}

/// `train --model-kind vbm`: the modulated tissue maps of every subject (the same data path
/// as the transformer), fit_vbm (FWHM and λ by inner CV, bias correction on the inner
/// out-of-fold predictions), one checkpoint DIR/model.{pt,json} that predict and evaluate load.
/// The augmentation copies of `--vbm-augment` (model::VbmAugmentation): each row's subject_id
/// must be one of the manifest's and carry its age. Throws InvalidInputError naming the file
/// and the row.
model::VbmAugmentation load_vbm_augmentation(const fs::path& manifest, const std::vector<ManifestEntry>& subjects,
                                             const fs::path& cache_dir, bool progress,
                                             const model::CheckpointInfo& reads) {
  model::VbmAugmentation augmentation;
  if (manifest.empty()) return augmentation;
  const auto copies = read_training_manifest(manifest);
  std::map<std::string, std::size_t> row_of;
  for (std::size_t i = 0; i < subjects.size(); ++i) row_of.emplace(subjects[i].subject_id, i);
  for (std::size_t j = 0; j < copies.size(); ++j) {
    const auto found = row_of.find(copies[j].subject_id);
    const std::string where = manifest.string() + ": copy " + std::to_string(j + 1) + " (" + copies[j].subject_id + ")";
    if (found == row_of.end())
      throw InvalidInputError(where + " is of no subject of the training manifest: a copy trains with its subject");
    if (std::abs(subjects[found->second].age - copies[j].age) > 1e-6)
      throw InvalidInputError(where + ": age " + std::to_string(copies[j].age) + ", the manifest says " +
                              std::to_string(subjects[found->second].age) + " for that subject");
    augmentation.subject_index.push_back(static_cast<int64_t>(found->second));
  }
  augmentation.maps = load_training_data(copies, cache_dir, progress, reads).volumes;
  return augmentation;
}

int run_train_vbm(const TrainCommandOptions& options, const std::vector<ManifestEntry>& entries, int threads) {
  const auto& t = options.train;
  model::CheckpointInfo reads;
  reads.model_kind = model::kVbmModelKind;
  const auto data = load_training_data(entries, t.output_dir / "cache", t.progress, reads);
  const auto augmentation =
      load_vbm_augmentation(options.vbm_augment, entries, t.output_dir / "cache", t.progress, reads);
  const auto t0 = std::chrono::steady_clock::now();
  const auto fit = model::fit_vbm(data.volumes, data.ages, options.vbm, augmentation);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // The inner CV's out-of-fold predictions at the chosen FWHM and λ (fit_vbm scored them).
  const double inner_mae = fit.selection.at("chosen_inner_cv_mae").get<double>();
  const double inner_r = pearson(data.ages, fit.inner_oof_predictions);
  model::CheckpointInfo info;
  info.model_kind = model::kVbmModelKind;
  info.model.grid = fit.model.grid;
  info.preprocessing_version = prediction::preprocessing_version();
  info.intensity_normalisation = "modulated tissue maps (mL per voxel): no intensity normalisation";
  info.training = {{"manifest", fs::absolute(options.manifest).string()},
                   {"subjects", data.ages.size()},
                   {"subject_ids", data.subject_ids},
                   {"threads", threads},
                   {"seconds", seconds},
                   {"selection", fit.selection},
                   {"augmentation",
                    {{"manifest", options.vbm_augment.empty() ? "" : fs::absolute(options.vbm_augment).string()},
                     {"copies", augmentation.subject_index.size()}}},
                   {"brainage_version", build_info::kVersion},
                   {"git_sha", build_info::kGitSha},
                   {"data", prediction::training_data_summary(data)}};
  info.metrics = {{"inner_cv_mae", inner_mae}, {"inner_cv_pearson_r", inner_r}};
  const std::string id = model::save_checkpoint(t.output_dir / "model", fit.model, info);
  // The inner-CV out-of-fold ages: what `brainage ensemble --vbm DIR` weighs this model by.
  std::ostringstream oof;
  oof << std::setprecision(6) << csv_record({"subject_id", "age", "predicted_age"});
  for (std::size_t i = 0; i < data.ages.size(); ++i)
    oof << csv_field(data.subject_ids[i]) << ',' << data.ages[i] << ',' << fit.inner_oof_predictions[i] << '\n';
  write_file_atomic(t.output_dir / "oof_predictions.csv", oof.str());
  std::cout << "VBM model " << id << ": FWHM " << fit.model.fwhm_mm << " mm, lambda " << fit.model.lambda_relative
            << " x trace(K)/n, inner-CV MAE " << std::fixed << std::setprecision(2) << inner_mae << " y (r "
            << inner_r << ") on " << data.ages.size() << " subjects, fitted in " << std::setprecision(1)
            << seconds << " s\nmodel: " << (t.output_dir / "model.json").string() << "\n";
  return 0;
}

/// `train --seeds K` (model/ensemble.h): the K members on the already loaded data, each in
/// DIR/member<k>/ on fold k of one partition (split seed = the seed), then the ensemble.
int run_train_ensemble(const TrainCommandOptions& options, const model::TrainingData& data,
                       const model::TrainOptions& train) {
  EnsembleCommandOptions ensemble;
  ensemble.output_dir = train.output_dir;
  for (int64_t k = 0; k < options.seeds; ++k) {
    model::TrainOptions member = train;
    member.output_dir = train.output_dir / ("member" + std::to_string(k));
    member.folds = options.seeds;
    member.fold = k;
    member.seed = train.seed + static_cast<uint64_t>(k);
    member.split_seed = train.seed;
    member.final_weights = model::FinalWeights::kLastEpoch;
    member.patience = 0;  // no epoch chosen on the held-out fold
    if (train.progress)
      std::cout << "member " << k << " of " << options.seeds << ": fold " << k << ", seed " << member.seed << std::endl;
    const auto result = model::train_model(data, member);
    if (result.interrupted) {
      std::cout << "member " << k << " stopped after epoch " << result.epochs_run << " (--stop-after); continue with --resume\n";
      return 0;
    }
    ensemble.members.push_back(member.output_dir);
  }
  return run_ensemble(ensemble);
}

}  // namespace

int run_train(const TrainCommandOptions& options) {
  if (options.train.output_dir.empty()) throw UsageError("train: -o/--output DIR is required");
  const int threads = configure_all_threads(options.threads);
  ensure_writable_directory(options.train.output_dir);
  auto entries = read_training_manifest(options.manifest);
  if (options.limit > 0 && static_cast<size_t>(options.limit) < entries.size()) entries.resize(options.limit);
  if (options.fit_vbm) return run_train_vbm(options, entries, threads);
  model::DistributedContext dist(options.distributed);  // world size 1: nothing to join
  model::TrainOptions train = options.train;
  train.distributed = &dist;
  train.progress = options.train.progress && dist.is_main();
  if (dist.enabled())
    std::cout << "rank " << dist.rank() << " of " << dist.world_size() << " joined tcp://"
              << options.distributed.master_addr << ":" << options.distributed.master_port << " (gloo)" << std::endl;
  const auto data = load_rank_data(entries, train, dist, train.progress);

  train.preprocessing_version = prediction::preprocessing_version();
  train.intensity_normalisation = kIntensityNormalisation;
  train.data_summary = prediction::training_data_summary(data);  // subjects, age range, tissue contrast
  train.data_summary.update({{"manifest", fs::absolute(options.manifest).string()},
                             {"subject_ids", data.subject_ids},
                             {"threads", threads},
                             {"world_size", dist.world_size()},
                             {"brainage_version", build_info::kVersion},
                             {"git_sha", build_info::kGitSha}});
  if (train.progress)
    std::cout << "training " << model::to_string(train.model.ffn) << " on " << data.ages.size() << " subjects, "
              << threads << " threads" << (dist.enabled() ? " per rank x " + std::to_string(dist.world_size()) + " ranks" : "")
              << ", BLAS " << model::blas_description() << std::endl;
  if (options.seeds >= 2) {
    if (dist.enabled()) throw UsageError("train: --seeds trains its members in one process: drop --world-size");
    return run_train_ensemble(options, data, train);
  }
  const auto result = model::train_model(data, train);
  if (!dist.is_main()) return 0;  // rank 0 reports
  if (result.interrupted) {
    std::cout << "stopped after epoch " << result.epochs_run << " (--stop-after); continue with --resume\n";
    return 0;
  }
  if (train.final_weights == model::FinalWeights::kLastEpoch)
    std::cout << "final model: last epoch (" << result.epochs_run << ")";
  else
    std::cout << "final model: best validation epoch (" << result.best_epoch << ")";
  if (result.best_epoch > 0)
    std::cout << "; best validation MAE " << std::fixed << std::setprecision(2) << result.best_val_mae << std::defaultfloat
              << " y at epoch " << result.best_epoch;
  std::cout << "\nmodel: " << result.model_path.string() << "\n";
  return 0;
}

int train_main(const std::vector<std::string>& args) {
  TrainCommandOptions o;
  o.distributed = model::DistributedOptions::from_environment();  // the flags below override
  auto& t = o.train;
  // The command's defaults are the recipe that learns on ~100 IXI scans (docs/RESULTS.md,
  // "Diagnosis runs", run I2); the library structs keep the first design's values.
  t.model.dim = 64;
  t.model.depth = 2;
  t.model.heads = 2;
  t.model.num_experts = 4;
  t.model.expert_rank = 8;
  t.model.patch_pool = 4;
  t.model.norm_after_pool = true;
  t.model.dropout = 0.0;
  t.epochs = 300;
  t.warmup_epochs = 5;
  t.patience = 60;
  t.augmentation.intensity_scale = 0.0;
  std::string manifest, output, kind = "ermoe", final_weights = "best", vbm_scaling, vbm_fwhm, vbm_channels;
  std::string channels = "t1", stem = "patch", loss = "l1", global_input = "none";
  bool no_augment = false, quiet = false, vbm_asymmetric = false;
  po::options_description desc("train options");
  desc.add_options()
    ("manifest", po::value(&manifest)->required(), "CSV with subject_id, age, path (or t1): preprocessed t1_mni2mm.nii.gz or raw scans")
    ("output,o", po::value(&output)->required(), "output folder: checkpoints, metrics, model.{pt,json}, cache/")
    ("model-kind", po::value(&kind)->default_value("ermoe"),
     "ermoe | softmax_moe | dense (transformers on the T1) | vbm (ridge on modulated tissue maps, fitted in seconds)")
    ("epochs", po::value(&t.epochs)->default_value(t.epochs), "maximum epochs")
    ("batch-size", po::value(&t.batch_size)->default_value(t.batch_size), "scans per step")
    ("lr", po::value(&t.learning_rate)->default_value(t.learning_rate, "0.001"), "peak AdamW learning rate")
    ("weight-decay", po::value(&t.weight_decay)->default_value(t.weight_decay, "0.05"), "AdamW weight decay")
    ("warmup-epochs", po::value(&t.warmup_epochs)->default_value(t.warmup_epochs), "linear warm-up epochs, then cosine")
    ("patience", po::value(&t.patience)->default_value(t.patience), "early stopping patience in epochs (0 = off)")
    ("final", po::value(&final_weights)->default_value("best"),
     "final model: best (lowest validation MAE) | last (last epoch: keeps the validation fold unseen, as CV needs)")
    ("val-fraction", po::value(&t.val_fraction)->default_value(t.val_fraction, "0.2"),
     "validation share (age-stratified) when --folds is 0; 0 = train on every subject (needs --final last; no early stopping)")
    ("folds", po::value(&t.folds)->default_value(t.folds), "k-fold: number of folds (0 = use --val-fraction)")
    ("fold", po::value(&t.fold)->default_value(t.fold), "k-fold: the validation fold (0-based)")
    ("seed", po::value(&t.seed)->default_value(t.seed), "seed of split, order, augmentation, init, dropout")
    ("split-seed", po::value<uint64_t>(),
     "seed of the split alone (default: --seed): members of one K-fold partition trained separately for "
     "`brainage ensemble` share it while their --seed differs")
    ("seeds", po::value(&o.seeds)->default_value(o.seeds),
     "1 = one model; K >= 2 = a cross-validated seed ensemble: member k trains in DIR/member<k>/ on every fold but k "
     "of one K-fold partition (--folds K --fold k), seed --seed + k, --final last, no early stopping; then DIR/model.json "
     "lists the K members (mean age, their sd as a per-scan spread) with a bias correction fitted on their pooled "
     "out-of-fold predictions (DIR/oof_predictions.csv)")
    ("no-augment", po::bool_switch(&no_augment), "disable augmentation (affine jitter, LR flip, intensity jitter)")
    ("intensity-jitter", po::value(&t.augmentation.intensity_scale)->default_value(t.augmentation.intensity_scale),
     "augmentation: random gain in [1-x, 1+x] and offset in [-x, x] (0 = off; global tissue contrast is an age cue)")
    ("channels", po::value(&channels)->default_value(channels),
     "input channels, comma-separated, from t1 (normalised T1), gm, wm, csf (modulated tissue maps / 0.008 mL, the "
     "2 mm voxel's volume), e.g. t1,gm,wm,csf")
    ("stem", po::value(&stem)->default_value(stem),
     "patch (one linear projection per patch, of --patch-pool block averages) | conv (avg-pool --stem-pool, then "
     "3^3 stride-2 Conv3d + GroupNorm + GELU layers of --stem-width, 2x, 4x channels down to tokens of --patch-size)")
    ("stem-width", po::value(&t.model.stem_width)->default_value(t.model.stem_width),
     "--stem conv: channels of the first convolution (a multiple of 8), doubled per layer")
    ("stem-pool", po::value(&t.model.stem_pool)->default_value(t.model.stem_pool),
     "--stem conv: average voxels in pool^3 blocks before the first convolution")
    ("patch-size", po::value(&t.model.patch_size)->default_value(t.model.patch_size),
     "token edge in voxels: 16 (5x6x5 = 150 tokens of 32 mm) or 8 (10x12x10 = 1200 tokens of 16 mm)")
    ("loss", po::value(&loss)->default_value(loss),
     "l1 (L1 on the age) | kl (KL divergence to a Gaussian soft label over 1-year age bins spanning the training "
     "ages +- 5 y; predicted age = expectation, as SFCN)")
    ("label-sigma", po::value(&t.model.label_sigma)->default_value(t.model.label_sigma, "1"),
     "--loss kl: standard deviation of the soft label in years")
    ("global-input", po::value(&global_input)->default_value(global_input),
     "none | log_brain_volume (ln of the brain tissue volume in mL, the sum of the modulated tissue maps, "
     "standardised on the training subjects and joined to the pooled tokens before the head)")
    ("norm-after-pool", po::value(&t.model.norm_after_pool)->default_value(t.model.norm_after_pool),
     "1: average the tokens, then LayerNorm (keeps each patch's tissue magnitude); 0: LayerNorm each token first")
    ("test-time-flip", po::value(&t.model.test_time_flip)->default_value(t.model.test_time_flip),
     "1: in validation and prediction, the age is the mean over the scan and its left-right mirror image "
     "(exactly invariant to a left-right flip; twice the forward time)")
    ("patch-pool", po::value(&t.model.patch_pool)->default_value(t.model.patch_pool),
     "average voxels in pool^3 blocks inside each patch before the projection (1 = off)")
    ("dim", po::value(&t.model.dim)->default_value(t.model.dim), "token width")
    ("depth", po::value(&t.model.depth)->default_value(t.model.depth), "transformer blocks")
    ("heads", po::value(&t.model.heads)->default_value(t.model.heads), "attention heads")
    ("experts", po::value(&t.model.num_experts)->default_value(t.model.num_experts), "experts per MoE layer")
    ("top-k", po::value(&t.model.top_k)->default_value(t.model.top_k), "experts per token")
    ("ermoe-balance", po::value(&t.model.ermoe_balance_weight)->default_value(t.model.ermoe_balance_weight),
     "ERMoE only: weight of a load-balancing loss on the normalised Eigenbasis Scores (0 = none, as published)")
    ("balance-per-scan", po::bool_switch(&t.model.balance_per_scan),
     "compute the load-balancing loss on each scan's tokens and average (default: over the whole batch)")
    ("expert-rank", po::value(&t.model.expert_rank)->default_value(t.model.expert_rank), "rank r of each expert basis")
    ("dropout", po::value(&t.model.dropout)->default_value(t.model.dropout, "0"), "dropout")
    ("resume", po::bool_switch(&t.resume), "continue from the newest epoch checkpoint in the output folder")
    ("stop-after", po::value(&t.stop_after_epoch)->default_value(0), "stop after this epoch (resume later)")
    ("limit", po::value(&o.limit)->default_value(0), "use only the first N manifest rows (0 = all)")
    ("threads", po::value(&o.threads)->default_value(0), "threads (0 = all cores)")
    ("world-size", po::value(&o.distributed.world_size), "data-parallel ranks (default: $WORLD_SIZE, else 1)")
    ("rank", po::value(&o.distributed.rank), "this rank, 0..world-size-1 (default: $RANK, else 0)")
    ("master-addr", po::value(&o.distributed.master_addr), "host of rank 0 (default: $MASTER_ADDR, else 127.0.0.1)")
    ("master-port", po::value(&o.distributed.master_port), "TCP port on rank 0 (default: $MASTER_PORT, else 29500)")
    ("dist-timeout", po::value<int>(), "seconds before a dead or hung rank fails the job (default: 60)")
    ("vbm-scaling", po::value(&vbm_scaling)->default_value("proportional"),
     "--model-kind vbm: proportional (each subject's maps scaled to 1500 mL of CSF+GM+WM: head size removed) | "
     "parenchyma (scaled to 1200 mL of GM+WM: the CSF rim, which follows the brain mask, left out) | none")
    ("vbm-asymmetric", po::bool_switch(&vbm_asymmetric),
     "--model-kind vbm: keep left and right apart (default: each subject's maps averaged with their mirror image, "
     "so a brain and its left-right mirror get the same age)")
    ("vbm-channels", po::value(&vbm_channels)->default_value("csf,gm,wm"),
     "--model-kind vbm: the modulated maps read, comma-separated, from csf, gm, wm")
    ("vbm-fwhm", po::value(&vbm_fwhm)->default_value("4,6,8"),
     "--model-kind vbm: candidate smoothing FWHMs in mm, chosen by inner CV")
    ("vbm-augment", po::value(&o.vbm_augment),
     "--model-kind vbm: CSV of augmentation copies (subject_id, age, path like --manifest; each a copy of a manifest "
     "subject's scan, e.g. skull-stripped or under a bias field): they train with their subject's inner-CV fold and "
     "are never scored")
    ("quiet", po::bool_switch(&quiet), "no progress display");
  const auto vm = parse_command_line("train", "--manifest CSV -o DIR [options]", args, desc);
  if (!vm) return 0;
  if (vm->count("dist-timeout")) o.distributed.timeout = std::chrono::seconds((*vm)["dist-timeout"].as<int>());
  o.distributed.validate();
  o.manifest = manifest;
  t.output_dir = output;
  t.augmentation.enabled = !no_augment;
  if (!(t.augmentation.intensity_scale >= 0 && t.augmentation.intensity_scale < 1))
    throw UsageError("--intensity-jitter must be in [0, 1), got " + std::to_string(t.augmentation.intensity_scale));
  t.augmentation.intensity_shift = t.augmentation.intensity_scale;
  t.progress = !quiet;
  try {
    t.final_weights = model::final_weights_from_string(final_weights);
  } catch (const ModelError& e) {
    throw UsageError(std::string("--final: ") + e.what());
  }
  if (t.folds == 0 && !(t.val_fraction >= 0 && t.val_fraction < 1))
    throw UsageError("--val-fraction must be in [0, 1), got " + std::to_string(t.val_fraction));
  if (t.folds == 0 && t.val_fraction == 0 && t.final_weights != model::FinalWeights::kLastEpoch)
    throw UsageError("--val-fraction 0 trains without a validation set: pass --final last (there is no best epoch)");
  if (vm->count("split-seed")) t.split_seed = (*vm)["split-seed"].as<uint64_t>();
  if (o.seeds < 1) throw UsageError("--seeds must be >= 1, got " + std::to_string(o.seeds));
  if (o.seeds >= 2) {
    if (t.folds != 0) throw UsageError("--seeds K sets the folds itself (member k validates on fold k of K): drop --folds");
    if (!(*vm)["final"].defaulted() && t.final_weights != model::FinalWeights::kLastEpoch)
      throw UsageError("--seeds K keeps each member's last epoch (its validation fold must stay unseen): drop --final best");
    if (kind == model::kVbmModelKind) throw UsageError("--seeds K trains transformer members: not with --model-kind vbm");
    if (o.distributed.world_size > 1) throw UsageError("--seeds trains its members in one process: drop --world-size");
    if (t.split_seed) throw UsageError("--seeds K uses --seed as the split seed: drop --split-seed");
  }
  o.fit_vbm = kind == model::kVbmModelKind;
  if (!o.vbm_augment.empty() && !o.fit_vbm)
    throw UsageError("--vbm-augment is read by --model-kind vbm only (the transformers augment while training)");
  if (o.fit_vbm) {
    if (o.distributed.world_size > 1) throw UsageError("--model-kind vbm fits in one process: drop --world-size");
    o.vbm.seed = t.seed;
    try {
      o.vbm.scaling = model::vbm_scaling_from_string(vbm_scaling);
    } catch (const ModelError& e) {
      throw UsageError(std::string("--vbm-scaling: ") + e.what());
    }
    o.vbm.channels.clear();
    std::stringstream names(vbm_channels);
    for (std::string item; std::getline(names, item, ',');) {
      const int64_t c = item == "csf" ? 0 : item == "gm" ? 1 : item == "wm" ? 2 : -1;
      if (c < 0) throw UsageError("--vbm-channels: '" + item + "' is not one of csf, gm, wm");
      if (std::find(o.vbm.channels.begin(), o.vbm.channels.end(), c) != o.vbm.channels.end())
        throw UsageError("--vbm-channels: '" + item + "' given twice");
      o.vbm.channels.push_back(c);
    }
    if (o.vbm.channels.empty()) throw UsageError("--vbm-channels: no channel given");
    o.vbm.left_right_symmetric = !vbm_asymmetric;
    o.vbm.fwhm_mm.clear();
    std::stringstream list(vbm_fwhm);
    for (std::string item; std::getline(list, item, ',');) {
      try {
        std::size_t used = 0;
        const double fwhm = std::stod(item, &used);
        if (used != item.size() || !(fwhm >= 0 && fwhm <= 30)) throw std::invalid_argument(item);
        o.vbm.fwhm_mm.push_back(fwhm);
      } catch (const std::exception&) {
        throw UsageError("--vbm-fwhm: '" + item + "' is not a FWHM in [0, 30] mm");
      }
    }
    if (o.vbm.fwhm_mm.empty()) throw UsageError("--vbm-fwhm: no FWHM given");
    return run_train(o);
  }
  try {
    t.model.ffn = model::ffn_kind_from_string(kind);
    t.model.stem = model::stem_kind_from_string(stem);
    t.model.loss = model::loss_kind_from_string(loss);
    t.model.global_input = model::global_input_from_string(global_input);
  } catch (const ModelError& e) {
    throw UsageError(std::string("train: ") + e.what());
  }
  t.model.channels.clear();
  std::stringstream channel_list(channels);
  for (std::string item; std::getline(channel_list, item, ',');) t.model.channels.push_back(item);
  try {  // before any data is read or any file written
    model::ModelOptions check = t.model;
    if (check.loss == model::LossKind::kKl) check.age_bins = 2;  // the trainer sets the bins from the training ages
    check.validate();
  } catch (const ModelError& e) {
    throw UsageError(std::string("train: ") + e.what());
  }
  return run_train(o);
}

}  // namespace brainage::app
