#include "model/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <limits>
#include <numeric>
#include <random>
#include <sstream>
#include <tuple>

#include "common/atomic_file.h"
#include "common/errors.h"
#include "common/progress_bar.h"
#include "model/brain_age_model.h"
#include "model/checkpoint.h"
#include "model/distributed.h"
#include "model/distributed_training.h"
#include "model/routing_stats.h"
#include "model/soft_label_loss.h"
#include "common/content_hash.h"

namespace brainage::model {
namespace fs = std::filesystem;

namespace {

struct EvalResult {
  std::vector<double> predictions;
  double mae = 0, rmse = 0, r = 0, load_cv = 0, entropy = 0;
  double scan_load_cv = 0;  // each scan's own expert-load CV, mean over scans and MoE layers
  static EvalResult not_measured() {  // no validation set
    const double nan = std::numeric_limits<double>::quiet_NaN();
    EvalResult e;
    e.mae = e.rmse = e.r = e.load_cv = e.entropy = e.scan_load_cv = nan;
    return e;
  }
};

EvalResult evaluate(BrainAgeModel& model, const TrainingData& data, const std::vector<int64_t>& indices,
                    int64_t batch_size) {
  EvalResult result;
  model->eval();
  torch::NoGradGuard no_grad;
  std::vector<std::vector<LayerRouting>> records;
  for (size_t start = 0; start < indices.size(); start += batch_size) {
    const size_t end = std::min(indices.size(), start + static_cast<size_t>(batch_size));
    const std::vector<int64_t> rows(indices.begin() + start, indices.begin() + end);
    const auto out = model->forward(select_volumes(data, rows), /*with_routing=*/true, select_globals(data, rows));
    const auto ages = out.age.to(torch::kFloat64).contiguous();
    for (int64_t i = 0; i < ages.size(0); ++i) result.predictions.push_back(ages[i].item<double>());
    records.push_back(out.layers);
  }
  std::vector<double> truth;
  for (auto i : indices) truth.push_back(data.ages[i]);
  double abs_sum = 0, sq_sum = 0;
  for (size_t i = 0; i < truth.size(); ++i) {
    abs_sum += std::abs(result.predictions[i] - truth[i]);
    sq_sum += (result.predictions[i] - truth[i]) * (result.predictions[i] - truth[i]);
  }
  if (!truth.empty()) {
    result.mae = abs_sum / truth.size();
    result.rmse = std::sqrt(sq_sum / truth.size());
  }
  result.r = pearson(truth, result.predictions);
  // Routing statistics per MoE layer over the whole validation set, averaged over layers.
  int moe_layers = 0;
  if (!records.empty()) {
    for (size_t layer = 0; layer < records.front().size(); ++layer) {
      if (!records.front()[layer].is_moe) continue;
      LayerRouting merged = records.front()[layer];
      std::vector<torch::Tensor> ids, scores;
      for (const auto& batch : records) {
        ids.push_back(batch[layer].expert_ids);
        scores.push_back(batch[layer].scores);
      }
      merged.expert_ids = torch::cat(ids, 0);
      merged.scores = torch::cat(scores, 0);
      result.load_cv += load_coefficient_of_variation(merged);
      result.entropy += routing_entropy(merged);
      // Each scan alone: what one scan's expert map shows (the cohort-wide load can be
      // balanced while every scan sends its tokens to one or two experts).
      double scan_sum = 0;
      int64_t scans = 0;
      for (const auto& batch : records)
        for (int64_t b = 0; b < batch[layer].expert_ids.size(0); ++b) {
          LayerRouting one = batch[layer];
          one.expert_ids = batch[layer].expert_ids.narrow(0, b, 1);
          one.scores = batch[layer].scores.narrow(0, b, 1);
          scan_sum += load_coefficient_of_variation(one);
          ++scans;
        }
      if (scans > 0) result.scan_load_cv += scan_sum / static_cast<double>(scans);
      ++moe_layers;
    }
  }
  if (moe_layers > 0) {
    result.load_cv /= moe_layers;
    result.entropy /= moe_layers;
    result.scan_load_cv /= moe_layers;
  }
  return result;
}

std::vector<torch::optim::OptimizerParamGroup> parameter_groups(BrainAgeModel& model, const TrainOptions& o) {
  // Decoupled weight decay on weight matrices only; not on biases, norms, position
  // embeddings or the expert bases (those are kept orthonormal by retraction).
  std::vector<torch::Tensor> decay, no_decay;
  for (const auto& p : model->named_parameters()) {
    const auto& name = p.key();
    const bool is_basis = name.size() >= 5 && name.compare(name.size() - 5, 5, "bases") == 0;
    if (p.value().dim() >= 2 && !is_basis && name != "position")
      decay.push_back(p.value());
    else
      no_decay.push_back(p.value());
  }
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(
                                 torch::optim::AdamWOptions(o.learning_rate).weight_decay(o.weight_decay)));
  groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(
                                    torch::optim::AdamWOptions(o.learning_rate).weight_decay(0.0)));
  return groups;
}

nlohmann::json options_json(const TrainOptions& o) {
  nlohmann::json j = {{"epochs", o.epochs},
          {"batch_size", o.batch_size},
          {"learning_rate", o.learning_rate},
          {"weight_decay", o.weight_decay},
          {"warmup_epochs", o.warmup_epochs},
          {"min_lr_fraction", o.min_lr_fraction},
          {"grad_clip", o.grad_clip},
          {"patience", o.patience},
          {"final_weights", to_string(o.final_weights)},
          {"seed", o.seed},
          {"val_fraction", o.val_fraction},
          {"folds", o.folds},
          {"fold", o.fold},
          {"loss", to_string(o.model.loss)},
          {"augmentation",
           {{"enabled", o.augmentation.enabled},
            {"flip_probability", o.augmentation.flip_probability},
            {"max_rotation_deg", o.augmentation.max_rotation_deg},
            {"max_scale", o.augmentation.max_scale},
            {"max_translation_vox", o.augmentation.max_translation_vox},
            {"affine_probability", o.augmentation.affine_probability},
            {"intensity_scale", o.augmentation.intensity_scale},
            {"intensity_shift", o.augmentation.intensity_shift}}}};
  if (o.model.loss == LossKind::kKl) j["age_bin_margin"] = o.age_bin_margin;  // absent for L1, as before it existed
  if (o.split_seed) j["split_seed"] = *o.split_seed;  // absent unless set, as before it existed
  return j;
}

EpochMetrics metrics_from_json(const nlohmann::json& j) {
  EpochMetrics m;
  m.epoch = j.at("epoch");
  m.train_loss = j.at("train_loss");
  m.train_mae = j.at("train_mae");
  // Without a validation set the validation numbers are NaN, which JSON stores as null.
  auto number = [&](const char* key) {
    const auto& v = j.at(key);
    return v.is_null() ? std::numeric_limits<double>::quiet_NaN() : v.get<double>();
  };
  m.val_mae = number("val_mae");
  m.val_rmse = number("val_rmse");
  m.val_r = number("val_r");
  m.learning_rate = j.at("learning_rate");
  m.seconds = j.at("seconds");
  m.scans_per_second = j.at("scans_per_second");
  m.load_cv = number("load_cv");
  m.routing_entropy = number("routing_entropy");
  m.aux_loss = j.at("aux_loss");
  return m;
}

void write_metrics(const fs::path& dir, const std::vector<EpochMetrics>& history) {
  std::ostringstream csv;
  csv << "epoch,train_loss,train_mae,val_mae,val_rmse,val_r,learning_rate,seconds,scans_per_second,load_cv,"
         "routing_entropy,aux_loss\n";
  nlohmann::json json = nlohmann::json::array();
  csv << std::setprecision(6);
  for (const auto& m : history) {
    csv << m.epoch << ',' << m.train_loss << ',' << m.train_mae << ',' << m.val_mae << ',' << m.val_rmse << ','
        << m.val_r << ',' << m.learning_rate << ',' << m.seconds << ',' << m.scans_per_second << ',' << m.load_cv
        << ',' << m.routing_entropy << ',' << m.aux_loss << '\n';
    json.push_back(to_json(m));
  }
  write_file_atomic(dir / "metrics.csv", csv.str());
  write_file_atomic(dir / "metrics.json", json.dump(2) + "\n");
}

std::string epoch_stem(int64_t epoch) {
  char name[32];
  std::snprintf(name, sizeof name, "epoch_%03lld", static_cast<long long>(epoch));
  return name;
}

}  // namespace

FinalWeights final_weights_from_string(const std::string& name) {
  if (name == "best") return FinalWeights::kBestValidation;
  if (name == "last") return FinalWeights::kLastEpoch;
  throw ModelError("final weights must be 'best' (best validation epoch) or 'last' (last epoch), got '" + name + "'");
}

std::string to_string(FinalWeights weights) { return weights == FinalWeights::kLastEpoch ? "last" : "best"; }

nlohmann::json to_json(const EpochMetrics& m) {
  return {{"epoch", m.epoch},
          {"train_loss", m.train_loss},
          {"train_mae", m.train_mae},
          {"val_mae", m.val_mae},
          {"val_rmse", m.val_rmse},
          {"val_r", m.val_r},
          {"learning_rate", m.learning_rate},
          {"seconds", m.seconds},
          {"scans_per_second", m.scans_per_second},
          {"load_cv", m.load_cv},
          {"routing_entropy", m.routing_entropy},
          {"aux_loss", m.aux_loss}};
}

std::pair<std::vector<int64_t>, std::vector<int64_t>> split_subjects(const std::vector<double>& ages,
                                                                     const TrainOptions& o) {
  const int64_t n = static_cast<int64_t>(ages.size());
  int64_t folds = o.folds, fold = o.fold;
  if (folds == 0) {
    if (!(o.val_fraction >= 0 && o.val_fraction < 1))
      throw ModelError("training: val_fraction must be in [0, 1), got " + std::to_string(o.val_fraction));
    if (o.val_fraction == 0) {  // everyone trains
      std::vector<int64_t> all(n);
      std::iota(all.begin(), all.end(), int64_t{0});
      return {all, {}};
    }
    folds = std::max<int64_t>(2, std::llround(1.0 / o.val_fraction));
    fold = 0;
  }
  if (folds < 2 || fold < 0 || fold >= folds)
    throw ModelError("training: fold " + std::to_string(fold) + " of " + std::to_string(folds) +
                     " is not valid (need folds >= 2, 0 <= fold < folds)");
  // Age-stratified: sort by age, cut into consecutive groups of `folds`, and give each
  // member of a group a different fold in a seeded random order.
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return ages[a] < ages[b]; });
  std::mt19937_64 rng(o.split_seed.value_or(o.seed));
  std::vector<int64_t> assignment(n);
  for (int64_t start = 0; start < n; start += folds) {
    std::vector<int64_t> labels(folds);
    std::iota(labels.begin(), labels.end(), int64_t{0});
    std::shuffle(labels.begin(), labels.end(), rng);
    for (int64_t i = start; i < std::min(n, start + folds); ++i) assignment[order[i]] = labels[i - start];
  }
  std::vector<int64_t> train, val;
  for (int64_t i = 0; i < n; ++i) (assignment[i] == fold ? val : train).push_back(i);
  return {train, val};
}

double learning_rate_at(int64_t step, int64_t warmup_steps, int64_t total_steps, double peak, double min_fraction) {
  if (warmup_steps > 0 && step < warmup_steps) return peak * double(step + 1) / double(warmup_steps);
  const double span = std::max<int64_t>(1, total_steps - warmup_steps);
  const double progress = std::min(1.0, double(step - warmup_steps) / span);
  return peak * (min_fraction + (1 - min_fraction) * 0.5 * (1 + std::cos(M_PI * progress)));
}

namespace {

// ---- train_model, step by step ------------------------------------------------------

/// Step 1: the data and options fit together. Throws ModelError naming the rule.
void check_training_inputs(const TrainingData& data, const TrainOptions& o) {
  const int64_t n = static_cast<int64_t>(data.ages.size());
  const int64_t volumes_expected = data.volume_rows.empty() ? n : data.volumes.size(0);  // distributed: a subset
  if (!data.volumes.defined() || data.volumes.dim() != 5 || data.volumes.size(0) != volumes_expected ||
      (!data.volume_rows.empty() && static_cast<int64_t>(data.volume_rows.size()) != n))
    throw ModelError("training: volumes must be [N,1,Z,Y,X] with N = number of ages (" + std::to_string(n) + ")");
  const auto& g = o.model.grid;
  if (data.volumes.size(2) != g[0] || data.volumes.size(3) != g[1] || data.volumes.size(4) != g[2])
    throw ModelError("training: volumes do not have the model grid " + std::to_string(g[0]) + "x" +
                     std::to_string(g[1]) + "x" + std::to_string(g[2]));
  if (data.volumes.size(1) != o.model.in_channels())
    throw ModelError("training: volumes have " + std::to_string(data.volumes.size(1)) + " channels, the model " +
                     std::to_string(o.model.in_channels()) + " (" + std::to_string(o.model.channels.size()) + " named)");
  const int64_t gw = o.model.global_width();
  if (gw > 0 && (!data.globals.defined() || data.globals.dim() != 2 || data.globals.size(0) != data.volumes.size(0) ||
                 data.globals.size(1) != gw))
    throw ModelError("training: global input " + to_string(o.model.global_input) + " needs globals [N," +
                     std::to_string(gw) + "] beside the volumes");
  if (gw > 0 && !torch::isfinite(data.globals).all().item<bool>())
    throw ModelError("training: a global input is not finite (a scan without tissue maps?)");
  if (o.model.loss == LossKind::kKl && !(o.age_bin_margin >= 0))
    throw ModelError("training: age_bin_margin must be >= 0 years");
  if (n < 2) throw ModelError("training: needs at least 2 subjects, got " + std::to_string(n));
  if (o.batch_size < 1 || o.epochs < 1) throw ModelError("training: batch_size and epochs must be >= 1");
  if (o.output_dir.empty()) throw ModelError("training: no output folder given");
}

/// What a run decides before its first epoch.
struct RunPlan {
  std::vector<int64_t> train_idx, val_idx;
  bool validating = false;
  int64_t local_batch = 0;        // this rank's share of the global batch
  ModelOptions model_options;     // o.model with age_mean/age_std of the training ages
  nlohmann::json run_options;     // options_json(o): a resume must match it
  CheckpointInfo base_info;       // metadata every checkpoint of the run carries
  fs::path checkpoints;           // output_dir/checkpoints
};

/// Step 2: the split (written to split.csv), the age normalisation and the checkpoint
/// metadata. Throws ModelError for an unusable split or batch.
RunPlan plan_run(const TrainingData& data, const TrainOptions& o, DistributedContext& dist) {
  const int64_t n = static_cast<int64_t>(data.ages.size());
  RunPlan plan;
  plan.checkpoints = o.output_dir / "checkpoints";
  ensure_writable_directory(plan.checkpoints);
  if (o.batch_size % dist.world_size() != 0)
    throw ModelError("training: batch size " + std::to_string(o.batch_size) + " (the global batch) must be a multiple of the " +
                     std::to_string(dist.world_size()) + " ranks");
  plan.local_batch = o.batch_size / dist.world_size();
  dist.check_same_on_all_ranks("the number of subjects in the manifest", n);

  std::tie(plan.train_idx, plan.val_idx) = split_subjects(data.ages, o);
  plan.validating = !plan.val_idx.empty();
  const bool train_on_everyone = o.folds == 0 && o.val_fraction == 0;  // no validation set, as asked
  if (plan.train_idx.empty() || (!plan.validating && !train_on_everyone))
    throw ModelError("training: the split leaves an empty training or validation set (" +
                     std::to_string(plan.train_idx.size()) + " / " + std::to_string(plan.val_idx.size()) + ")");
  if (!plan.validating && o.final_weights != FinalWeights::kLastEpoch)
    throw ModelError("training: without a validation set (val_fraction 0) the final model can only be the last "
                     "epoch's (final weights 'last'), not the best validation epoch's");
  if (dist.is_main()) {
    std::ostringstream split;
    split << "subject_id,age,set\n";
    for (int64_t i = 0; i < n; ++i)
      split << (data.subject_ids.size() == size_t(n) ? data.subject_ids[i] : std::to_string(i)) << ','
            << data.ages[i] << ','
            << (std::find(plan.val_idx.begin(), plan.val_idx.end(), i) != plan.val_idx.end() ? "validation" : "train")
            << '\n';
    write_file_atomic(o.output_dir / "split.csv", split.str());
  }

  plan.model_options = o.model;
  double mean = 0, var = 0;
  for (auto i : plan.train_idx) mean += data.ages[i];
  mean /= plan.train_idx.size();
  for (auto i : plan.train_idx) var += (data.ages[i] - mean) * (data.ages[i] - mean);
  plan.model_options.age_mean = mean;
  plan.model_options.age_std = std::max(1.0, std::sqrt(var / plan.train_idx.size()));
  if (o.model.loss == LossKind::kKl) {  // 1-year bins over the training ages ± the margin
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (auto i : plan.train_idx) {
      lo = std::min(lo, data.ages[i]);
      hi = std::max(hi, data.ages[i]);
    }
    plan.model_options.age_bin_start = std::floor(lo - o.age_bin_margin);
    plan.model_options.age_bins = static_cast<int64_t>(std::ceil(hi + o.age_bin_margin) - plan.model_options.age_bin_start) + 1;
  }
  if (o.model.global_width() > 0) {  // standardisation of the global input on the training subjects
    // Distributed: each rank sees its own rows; the mean is over the subjects it loaded of
    // the training split (every rank loads the whole validation split and its shard only,
    // so this is the shard's mean: broadcast below keeps every rank on rank 0's numbers).
    std::vector<int64_t> loaded;
    for (auto i : plan.train_idx)
      if (data.volume_rows.empty() || data.volume_rows[i] >= 0) loaded.push_back(i);
    const auto values = select_globals(data, loaded).to(torch::kFloat64);  // [n, G]
    double g_mean = values.mean().item<double>(), g_sd = values.numel() > 1 ? values.std().item<double>() : 1.0;
    const auto rank0 = dist.all_reduce_sum({dist.is_main() ? g_mean : 0.0, dist.is_main() ? g_sd : 0.0});
    plan.model_options.global_mean = rank0[0];
    plan.model_options.global_std = std::max(1e-3, rank0[1]);
  }
  plan.run_options = options_json(o);

  plan.base_info.preprocessing_version = o.preprocessing_version;
  plan.base_info.intensity_normalisation = o.intensity_normalisation;
  plan.base_info.training = {{"options", plan.run_options},
                             {"data", o.data_summary},
                             {"subjects_train", plan.train_idx.size()},
                             {"subjects_validation", plan.val_idx.size()},
                             {"loss", o.model.loss == LossKind::kKl
                                          ? "KL(Gaussian soft label, sigma label_sigma y, over 1-year age bins || softmax) "
                                            "(+ weighted load-balancing loss: softmax MoE, ERMoE with ermoe_balance_weight > 0); age = expectation over the bins"
                                          : "L1 on age / age_std (+ weighted load-balancing loss: softmax MoE, ERMoE with ermoe_balance_weight > 0)"}};
  return plan;
}

/// What evolves over the epochs and an epoch checkpoint stores for --resume.
struct RunState {
  BrainAgeModel model{nullptr};
  int64_t start_epoch = 1, best_epoch = 0, since_best = 0, step = 0;
  double best_val = std::numeric_limits<double>::infinity();
  std::vector<EpochMetrics> history;
  fs::path resume_optimizer;  // the optimiser state to load ("" for a fresh run)
};

/// Step 3a: the newest usable epoch checkpoint of an interrupted run with the same options.
/// Throws ModelError naming the last reason when there is none.
void resume_from_checkpoint(RunState& state, const RunPlan& plan, const TrainOptions& o) {
  std::vector<fs::path> candidates;
  for (const auto& entry : fs::directory_iterator(plan.checkpoints)) {
    const auto name = entry.path().filename().string();
    if (name.rfind("epoch_", 0) == 0 && entry.path().extension() == ".json") candidates.push_back(entry.path());
  }
  std::sort(candidates.rbegin(), candidates.rend());
  std::string last_error = "no epoch checkpoint in " + plan.checkpoints.string();
  for (const auto& json_path : candidates) {
    try {
      auto loaded = load_checkpoint(json_path);
      const auto& saved = loaded.info.training.at("state");
      if (loaded.info.training.at("options") != plan.run_options)
        throw ModelError(json_path.string() + ": training options differ from the interrupted run's (resume needs the same options)");
      const fs::path optim = json_path.parent_path() / saved.at("optimizer_file").get<std::string>();
      if (!fs::exists(optim) || sha256_file_hex(optim) != saved.at("optimizer_sha256").get<std::string>())
        throw ModelError(optim.string() + ": optimiser state missing or corrupt");
      state.model = loaded.model;
      state.start_epoch = saved.at("epoch").get<int64_t>() + 1;
      state.step = saved.at("step").get<int64_t>();
      state.best_epoch = saved.at("best_epoch").get<int64_t>();
      state.best_val = saved.at("best_val_mae").is_null() ? std::numeric_limits<double>::infinity()
                                                          : saved.at("best_val_mae").get<double>();
      state.since_best = saved.at("epochs_since_best").get<int64_t>();
      for (const auto& m : saved.at("history")) state.history.push_back(metrics_from_json(m));
      state.resume_optimizer = optim;
      if (o.progress) std::cout << "resuming after epoch " << state.start_epoch - 1 << " from " << json_path.string() << "\n";
      return;
    } catch (const ModelError& e) {
      last_error = e.what();
    } catch (const nlohmann::json::exception& e) {
      last_error = json_path.string() + ": resume state unreadable (" + e.what() + ")";
    }
  }
  throw ModelError("cannot resume: " + last_error);
}

/// Step 3b: a fresh run owns the folder. Epoch checkpoints of an earlier run would otherwise
/// be picked up by a later --resume, and its best.{json,pt} chosen as this run's final model.
void clear_earlier_run(const RunPlan& plan, const TrainOptions& o) {
  std::vector<fs::path> stale{o.output_dir / "best.json", o.output_dir / "best.pt"};
  for (const auto& entry : fs::directory_iterator(plan.checkpoints))
    if (entry.path().filename().string().rfind("epoch_", 0) == 0) stale.push_back(entry.path());
  for (const auto& p : stale) fs::remove(p);
}

/// Step 3: a freshly initialised model (seeded), or the state of the interrupted run.
RunState start_or_resume(const RunPlan& plan, const TrainOptions& o, DistributedContext& dist) {
  torch::manual_seed(o.seed);
  RunState state;
  state.model = BrainAgeModel(plan.model_options);
  if (o.resume) resume_from_checkpoint(state, plan, o);
  dist.check_same_on_all_ranks("the epoch training resumes after", state.start_epoch - 1);
  dist.broadcast_parameters(*state.model);
  if (!o.resume && dist.is_main()) clear_earlier_run(plan, o);
  state.model->train();
  return state;
}

/// Loads the interrupted run's optimiser state (nothing for a fresh run). Throws ModelError.
void load_optimizer_state(torch::optim::AdamW& optimizer, const fs::path& path) {
  if (path.empty()) return;
  try {
    torch::load(optimizer, path.string());
  } catch (const c10::Error& e) {
    throw ModelError(path.string() + ": optimiser state does not load");
  }
}

/// The learning-rate schedule in optimiser steps, from this rank's shard size.
struct Schedule {
  int64_t n_local = 0;  // training subjects this rank sees per epoch (padded shard)
  int64_t total_steps = 0, warmup_steps = 0;
};

Schedule make_schedule(const RunPlan& plan, const TrainOptions& o, const DistributedContext& dist) {
  Schedule s;
  const int64_t n_train = static_cast<int64_t>(plan.train_idx.size());
  s.n_local = dist.enabled()
                  ? static_cast<int64_t>(rank_training_subjects(plan.train_idx, dist.rank(), dist.world_size()).size())
                  : n_train;
  const int64_t steps_per_epoch = (s.n_local + plan.local_batch - 1) / plan.local_batch;
  s.total_steps = steps_per_epoch * o.epochs;
  s.warmup_steps = steps_per_epoch * o.warmup_epochs;
  return s;
}

/// Sums over one epoch's training steps (all ranks).
struct EpochTotals {
  double loss_sum = 0, abs_sum = 0, aux_sum = 0, n_seen = 0;
  double learning_rate = 0;  // of the last step
  double seconds = 0;        // training only (without validation)
};

/// Step 4: one pass over this rank's shard in a seeded order, with augmentation, AdamW
/// steps, gradient averaging over ranks, clipping and basis retraction.
EpochTotals train_one_epoch(RunState& state, torch::optim::AdamW& optimizer, const TrainingData& data,
                            const RunPlan& plan, const Schedule& schedule, const TrainOptions& o,
                            DistributedContext& dist, int64_t epoch) {
  const auto t0 = std::chrono::steady_clock::now();
  auto& model = state.model;
  model->train();
  std::mt19937_64 rng(o.seed * 1000003ULL + static_cast<uint64_t>(epoch));
  torch::manual_seed(o.seed * 7919ULL + static_cast<uint64_t>(epoch));  // dropout
  std::vector<int64_t> order = plan.train_idx;
  std::shuffle(order.begin(), order.end(), rng);
  if (dist.enabled()) {  // this rank's shard; its own augmentation and dropout draws
    order = rank_epoch_order(order, plan.train_idx, dist);
    rng.seed(o.seed * 1000003ULL + static_cast<uint64_t>(epoch) + 7919ULL * static_cast<uint64_t>(dist.rank() + 1));
    torch::manual_seed(o.seed * 7919ULL + static_cast<uint64_t>(epoch) + 1000003ULL * static_cast<uint64_t>(dist.rank()));
  }
  const int64_t n_local = schedule.n_local;
  const bool tty = o.progress && dist.is_main() && ::isatty(2);
  ProgressBar bar(static_cast<std::size_t>(n_local), tty, std::cerr, /*interactive=*/true,
                  "epoch " + std::to_string(epoch) + "/" + std::to_string(o.epochs));
  double loss_sum = 0, abs_sum = 0, aux_sum = 0, lr = 0;
  std::vector<bool> jitter_channels;  // intensity jitter on the T1 only, not on tissue maps
  for (const auto& c : plan.model_options.channels) jitter_channels.push_back(c == "t1");
  const bool kl = plan.model_options.loss == LossKind::kKl;
  const auto centres = kl ? age_bin_centres(plan.model_options) : torch::Tensor();
  for (int64_t start = 0; start < n_local; start += plan.local_batch) {
    const int64_t end = std::min(n_local, start + plan.local_batch);
    std::vector<int64_t> batch(order.begin() + start, order.begin() + end);
    std::vector<float> ages;
    for (auto i : batch) ages.push_back(static_cast<float>(data.ages[i]));
    const auto x = augment_batch(select_volumes(data, batch), o.augmentation, rng, jitter_channels);
    const auto y = torch::tensor(ages);
    lr = learning_rate_at(state.step, schedule.warmup_steps, schedule.total_steps, o.learning_rate, o.min_lr_fraction);
    for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    const auto out = model->forward(x, /*with_routing=*/false, select_globals(data, batch));
    const auto l1 = (out.age - y).abs().mean();
    const auto loss = (kl ? soft_label_kl_loss(out.logits, gaussian_soft_labels(y, centres, plan.model_options.label_sigma))
                          : l1 / plan.model_options.age_std) +
                      out.aux_loss;
    optimizer.zero_grad();
    loss.backward();
    dist.all_reduce_gradients(*model);  // average over ranks (no-op in one process)
    if (o.grad_clip > 0) torch::nn::utils::clip_grad_norm_(model->parameters(), o.grad_clip);
    optimizer.step();
    model->retract_bases();
    ++state.step;
    const double count = static_cast<double>(end - start);
    loss_sum += loss.item<double>() * count;
    abs_sum += l1.item<double>() * count;
    aux_sum += out.aux_loss.item<double>() * count;
    char loss_text[32];
    std::snprintf(loss_text, sizeof loss_text, "loss %.4f", loss_sum / end);
    bar.update(static_cast<std::size_t>(end), loss_text);
  }
  bar.finish(/*erase=*/true);
  // Sums over ranks; every rank validates on the whole validation split with the same
  // weights, and decides on rank 0's numbers (identical bits on every rank).
  const auto totals = dist.all_reduce_sum({loss_sum, abs_sum, aux_sum, static_cast<double>(n_local)});
  EpochTotals t;
  t.loss_sum = totals[0];
  t.abs_sum = totals[1];
  t.aux_sum = totals[2];
  t.n_seen = totals[3];
  t.learning_rate = lr;
  t.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return t;
}

/// Step 5: the epoch's metrics, with the validation on rank 0's numbers.
EpochMetrics measure_epoch(BrainAgeModel& model, const EpochTotals& t, const TrainingData& data, const RunPlan& plan,
                           const TrainOptions& o, DistributedContext& dist, int64_t epoch,
                           std::chrono::steady_clock::time_point epoch_start) {
  auto eval = plan.validating ? evaluate(model, data, plan.val_idx, o.eval_batch_size) : EvalResult::not_measured();
  if (dist.enabled() && plan.validating) {
    const bool main_rank = dist.is_main();
    const auto rank0 = dist.all_reduce_sum({main_rank ? eval.mae : 0.0, main_rank ? eval.rmse : 0.0, main_rank ? eval.r : 0.0});
    eval.mae = rank0[0];
    eval.rmse = rank0[1];
    eval.r = rank0[2];
  }
  EpochMetrics m;
  m.epoch = epoch;
  m.train_loss = t.loss_sum / t.n_seen;
  m.train_mae = t.abs_sum / t.n_seen;
  m.aux_loss = t.aux_sum / t.n_seen;
  m.val_mae = eval.mae;
  m.val_rmse = eval.rmse;
  m.val_r = eval.r;
  m.learning_rate = t.learning_rate;
  m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_start).count();
  m.scans_per_second = t.n_seen / std::max(1e-9, t.seconds);
  m.load_cv = eval.load_cv;
  m.routing_entropy = eval.entropy;
  return m;
}

/// Step 6: a better validation MAE makes this epoch the best (rank 0 saves best.{pt,json}).
void keep_if_best(RunState& state, const EpochMetrics& m, const RunPlan& plan, const TrainOptions& o, bool main_rank) {
  if (plan.validating && m.val_mae < state.best_val) {
    state.best_val = m.val_mae;
    state.best_epoch = m.epoch;
    state.since_best = 0;
    CheckpointInfo best_info = plan.base_info;
    best_info.metrics = to_json(m);
    best_info.training["epoch"] = m.epoch;
    if (main_rank) save_checkpoint(o.output_dir / "best", state.model, best_info);
  } else {
    ++state.since_best;
  }
}

/// Step 7 (rank 0): the epoch checkpoint (optimiser state first, weights, then the JSON that
/// names both and holds the resume state), the two newest kept; metrics.{csv,json}.
void save_epoch_checkpoint(const RunState& state, torch::optim::AdamW& optimizer, const EpochMetrics& m,
                           const RunPlan& plan, const TrainOptions& o) {
  const std::string stem = epoch_stem(m.epoch);
  const fs::path optim_path = plan.checkpoints / (stem + ".optim.pt");
  write_via_temp(optim_path, [&](const fs::path& temp) { torch::save(optimizer, temp.string()); });
  nlohmann::json history_json = nlohmann::json::array();
  for (const auto& h : state.history) history_json.push_back(to_json(h));
  CheckpointInfo info = plan.base_info;
  info.metrics = to_json(m);
  info.training["state"] = {{"epoch", m.epoch},
                            {"step", state.step},
                            {"best_epoch", state.best_epoch},
                            {"best_val_mae", state.best_val},
                            {"epochs_since_best", state.since_best},
                            {"optimizer_file", optim_path.filename().string()},
                            {"optimizer_sha256", sha256_file_hex(optim_path)},
                            {"history", history_json}};
  BrainAgeModel model = state.model;
  save_checkpoint(plan.checkpoints / stem, model, info);
  if (m.epoch >= 3) {
    const std::string old = epoch_stem(m.epoch - 2);
    for (const char* ext : {".json", ".pt", ".optim.pt"}) fs::remove(plan.checkpoints / (old + ext));
  }
  write_metrics(o.output_dir, state.history);
}

void print_epoch(const EpochMetrics& m, const TrainOptions& o, bool best) {
  std::cout << "epoch " << m.epoch << "/" << o.epochs << std::fixed << std::setprecision(3) << "  loss " << m.train_loss
            << "  train MAE " << std::setprecision(2) << m.train_mae << "  val MAE " << m.val_mae << "  r "
            << std::setprecision(3) << m.val_r << "  lr " << std::scientific << std::setprecision(2) << m.learning_rate
            << std::fixed << "  " << std::setprecision(1) << m.seconds << " s (" << m.scans_per_second << " scans/s)"
            << (best ? "  *best" : "") << std::defaultfloat << std::endl;
}

/// Step 8 (rank 0): the final model — the best validation epoch's or the last epoch's
/// weights — with a bias correction fitted on its validation predictions, saved as
/// model.{pt,json}, and validation_predictions.csv. Throws ModelError when the best epoch
/// is asked for and no epoch reached a finite validation MAE.
void write_final_model(TrainResult& result, const RunState& state, const TrainingData& data, const RunPlan& plan,
                       const TrainOptions& o) {
  LoadedModel chosen;
  if (o.final_weights == FinalWeights::kBestValidation) {
    if (state.best_epoch == 0)  // every validation MAE was NaN (diverged weights or non-finite inputs)
      throw ModelError(o.output_dir.string() + ": no epoch reached a finite validation MAE, so there is no best model "
                       "(check the inputs for NaN, or lower the learning rate)");
    chosen = load_checkpoint(o.output_dir / "best.json");
  } else {
    chosen.model = state.model;  // save_checkpoint records its options
    chosen.info = plan.base_info;
    chosen.info.training["epoch"] = result.epochs_run;
  }
  const auto& val_idx = plan.val_idx;
  const auto eval = plan.validating ? evaluate(chosen.model, data, val_idx, o.eval_batch_size) : EvalResult::not_measured();
  std::vector<double> val_ages;
  for (auto i : val_idx) val_ages.push_back(data.ages[i]);
  CheckpointInfo final_info = chosen.info;
  final_info.bias_correction = BiasCorrection::fit(val_ages, eval.predictions);
  std::vector<double> corrected;
  for (double p : eval.predictions) corrected.push_back(final_info.bias_correction.apply(p));
  double corrected_mae = corrected.empty() ? std::numeric_limits<double>::quiet_NaN() : 0.0;
  for (size_t i = 0; i < corrected.size(); ++i) corrected_mae += std::abs(corrected[i] - val_ages[i]) / corrected.size();
  final_info.metrics = {{"final_weights", to_string(o.final_weights)},
                        {"final_epoch", o.final_weights == FinalWeights::kLastEpoch ? result.epochs_run : state.best_epoch},
                        {"best_epoch", state.best_epoch},
                        {"val_mae", eval.mae},
                        {"val_rmse", eval.rmse},
                        {"val_r", eval.r},
                        {"val_mae_bias_corrected_in_sample", corrected_mae},
                        {"val_load_cv", eval.load_cv},
                        {"val_scan_load_cv", eval.scan_load_cv},
                        {"val_routing_entropy", eval.entropy},
                        {"epochs_run", result.epochs_run},
                        {"stopped_early", result.stopped_early}};
  final_info.training.erase("state");
  save_checkpoint(o.output_dir / "model", chosen.model, final_info);
  const int64_t n = static_cast<int64_t>(data.ages.size());
  std::ostringstream csv;
  csv << "subject_id,age,predicted_age,bias_corrected_age\n" << std::setprecision(6);
  for (size_t i = 0; i < val_idx.size(); ++i)
    csv << (data.subject_ids.size() == size_t(n) ? data.subject_ids[val_idx[i]] : std::to_string(val_idx[i])) << ','
        << val_ages[i] << ',' << eval.predictions[i] << ',' << corrected[i] << '\n';
  write_file_atomic(o.output_dir / "validation_predictions.csv", csv.str());
  result.model_path = o.output_dir / "model.json";
}

}  // namespace

TrainResult train_model(const TrainingData& data, const TrainOptions& o) {
  check_training_inputs(data, o);
  // Data parallel (model/distributed.h): every rank runs this function on its shard; the
  // gradients are averaged every step and only rank 0 writes outputs and prints.
  DistributedContext single_process;
  DistributedContext& dist = o.distributed ? *o.distributed : single_process;
  const bool main_rank = dist.is_main();
  const RunPlan plan = plan_run(data, o, dist);
  RunState state = start_or_resume(plan, o, dist);
  torch::optim::AdamW optimizer(parameter_groups(state.model, o));
  load_optimizer_state(optimizer, state.resume_optimizer);
  const Schedule schedule = make_schedule(plan, o, dist);

  TrainResult result;
  for (int64_t epoch = state.start_epoch; epoch <= o.epochs; ++epoch) {
    const auto epoch_start = std::chrono::steady_clock::now();
    const EpochTotals totals = train_one_epoch(state, optimizer, data, plan, schedule, o, dist, epoch);
    const EpochMetrics m = measure_epoch(state.model, totals, data, plan, o, dist, epoch, epoch_start);
    state.history.push_back(m);
    keep_if_best(state, m, plan, o, main_rank);
    if (main_rank) save_epoch_checkpoint(state, optimizer, m, plan, o);  // every rank resumes from it
    if (o.progress && main_rank) print_epoch(m, o, state.best_epoch == epoch);
    result.epochs_run = epoch;
    if (o.stop_after_epoch > 0 && epoch == o.stop_after_epoch && epoch < o.epochs) {
      result.interrupted = true;
      break;
    }
    if (plan.validating && o.patience > 0 && state.since_best >= o.patience) {
      result.stopped_early = true;
      if (o.progress && main_rank) std::cout << "early stopping: no better validation MAE for " << state.since_best << " epochs\n";
      break;
    }
  }
  result.history = state.history;
  result.best_epoch = state.best_epoch;
  result.best_val_mae = state.best_val;
  if (result.interrupted || !main_rank) return result;  // rank 0 writes the final model
  write_final_model(result, state, data, plan, o);
  return result;
}

}  // namespace brainage::model
