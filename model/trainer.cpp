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

#include "common/atomic_file.h"
#include "common/errors.h"
#include "model/brain_age_model.h"
#include "model/checkpoint.h"
#include "model/distributed.h"
#include "model/distributed_training.h"
#include "model/routing_stats.h"
#include "model/sha256.h"

namespace brainage::model {
namespace fs = std::filesystem;

namespace {

struct EvalResult {
  std::vector<double> predictions;
  double mae = 0, rmse = 0, r = 0, load_cv = 0, entropy = 0;
  static EvalResult not_measured() {  // no validation set
    const double nan = std::numeric_limits<double>::quiet_NaN();
    EvalResult e;
    e.mae = e.rmse = e.r = e.load_cv = e.entropy = nan;
    return e;
  }
};

double pearson(const std::vector<double>& a, const std::vector<double>& b) {
  const size_t n = a.size();
  if (n < 2) return 0;
  const double ma = std::accumulate(a.begin(), a.end(), 0.0) / n, mb = std::accumulate(b.begin(), b.end(), 0.0) / n;
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < n; ++i) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  return (saa > 0 && sbb > 0) ? sab / std::sqrt(saa * sbb) : 0.0;
}

EvalResult evaluate(BrainAgeModel& model, const TrainingData& data, const std::vector<int64_t>& indices,
                    int64_t batch_size) {
  EvalResult result;
  model->eval();
  torch::NoGradGuard no_grad;
  std::vector<std::vector<LayerRouting>> records;
  for (size_t start = 0; start < indices.size(); start += batch_size) {
    const size_t end = std::min(indices.size(), start + static_cast<size_t>(batch_size));
    const std::vector<int64_t> rows(indices.begin() + start, indices.begin() + end);
    const auto out = model->forward(select_volumes(data, rows), /*with_routing=*/true);
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
      ++moe_layers;
    }
  }
  if (moe_layers > 0) {
    result.load_cv /= moe_layers;
    result.entropy /= moe_layers;
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
  return {{"epochs", o.epochs},
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
          {"loss", "l1"},
          {"augmentation",
           {{"enabled", o.augmentation.enabled},
            {"flip_probability", o.augmentation.flip_probability},
            {"max_rotation_deg", o.augmentation.max_rotation_deg},
            {"max_scale", o.augmentation.max_scale},
            {"max_translation_vox", o.augmentation.max_translation_vox},
            {"affine_probability", o.augmentation.affine_probability},
            {"intensity_scale", o.augmentation.intensity_scale},
            {"intensity_shift", o.augmentation.intensity_shift}}}};
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

void draw_progress(int64_t epoch, int64_t epochs, int64_t done, int64_t total, double loss) {
  const int width = 30;
  const int filled = total > 0 ? static_cast<int>(width * done / total) : width;
  std::cerr << "\repoch " << epoch << "/" << epochs << " [" << std::string(filled, '=')
            << std::string(width - filled, ' ') << "] " << done << "/" << total << " scans  loss " << std::fixed
            << std::setprecision(4) << loss << std::defaultfloat << std::flush;
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
  std::mt19937_64 rng(o.seed);
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

TrainResult train_model(const TrainingData& data, const TrainOptions& o) {
  const int64_t n = static_cast<int64_t>(data.ages.size());
  const int64_t volumes_expected = data.volume_rows.empty() ? n : data.volumes.size(0);  // distributed: a subset
  if (!data.volumes.defined() || data.volumes.dim() != 5 || data.volumes.size(0) != volumes_expected ||
      (!data.volume_rows.empty() && static_cast<int64_t>(data.volume_rows.size()) != n))
    throw ModelError("training: volumes must be [N,1,Z,Y,X] with N = number of ages (" + std::to_string(n) + ")");
  const auto& g = o.model.grid;
  if (data.volumes.size(2) != g[0] || data.volumes.size(3) != g[1] || data.volumes.size(4) != g[2])
    throw ModelError("training: volumes do not have the model grid " + std::to_string(g[0]) + "x" +
                     std::to_string(g[1]) + "x" + std::to_string(g[2]));
  if (n < 2) throw ModelError("training: needs at least 2 subjects, got " + std::to_string(n));
  if (o.batch_size < 1 || o.epochs < 1) throw ModelError("training: batch_size and epochs must be >= 1");
  if (o.output_dir.empty()) throw ModelError("training: no output folder given");
  const fs::path checkpoints = o.output_dir / "checkpoints";
  ensure_writable_directory(checkpoints);
  // Data parallel (model/distributed.h): every rank runs this function on its shard; the
  // gradients are averaged every step and only rank 0 writes outputs and prints.
  DistributedContext single_process;
  DistributedContext& dist = o.distributed ? *o.distributed : single_process;
  const bool main_rank = dist.is_main();
  if (o.batch_size % dist.world_size() != 0)
    throw ModelError("training: batch size " + std::to_string(o.batch_size) + " (the global batch) must be a multiple of the " +
                     std::to_string(dist.world_size()) + " ranks");
  const int64_t local_batch = o.batch_size / dist.world_size();
  dist.check_same_on_all_ranks("the number of subjects in the manifest", n);

  const auto [train_idx, val_idx] = split_subjects(data.ages, o);
  const bool validating = !val_idx.empty();
  const bool train_on_everyone = o.folds == 0 && o.val_fraction == 0;  // no validation set, as asked
  if (train_idx.empty() || (!validating && !train_on_everyone))
    throw ModelError("training: the split leaves an empty training or validation set (" +
                     std::to_string(train_idx.size()) + " / " + std::to_string(val_idx.size()) + ")");
  if (!validating && o.final_weights != FinalWeights::kLastEpoch)
    throw ModelError("training: without a validation set (val_fraction 0) the final model can only be the last "
                     "epoch's (final weights 'last'), not the best validation epoch's");
  if (main_rank) {
    std::ostringstream split;
    split << "subject_id,age,set\n";
    for (int64_t i = 0; i < n; ++i)
      split << (data.subject_ids.size() == size_t(n) ? data.subject_ids[i] : std::to_string(i)) << ','
            << data.ages[i] << ','
            << (std::find(val_idx.begin(), val_idx.end(), i) != val_idx.end() ? "validation" : "train") << '\n';
    write_file_atomic(o.output_dir / "split.csv", split.str());
  }

  ModelOptions model_options = o.model;
  {
    double mean = 0, var = 0;
    for (auto i : train_idx) mean += data.ages[i];
    mean /= train_idx.size();
    for (auto i : train_idx) var += (data.ages[i] - mean) * (data.ages[i] - mean);
    model_options.age_mean = mean;
    model_options.age_std = std::max(1.0, std::sqrt(var / train_idx.size()));
  }
  const nlohmann::json run_options = options_json(o);

  CheckpointInfo base_info;
  base_info.preprocessing_version = o.preprocessing_version;
  base_info.intensity_normalisation = o.intensity_normalisation;
  base_info.training = {{"options", run_options},
                        {"data", o.data_summary},
                        {"subjects_train", train_idx.size()},
                        {"subjects_validation", val_idx.size()},
                        {"loss", "L1 on age / age_std (+ weighted aux loss for softmax MoE)"}};

  // ---- fresh start or resume ---------------------------------------------------------
  torch::manual_seed(o.seed);
  BrainAgeModel model(model_options);
  int64_t start_epoch = 1, best_epoch = 0, since_best = 0, step = 0;
  double best_val = std::numeric_limits<double>::infinity();
  std::vector<EpochMetrics> history;
  fs::path resume_optimizer;
  if (o.resume) {
    std::vector<fs::path> candidates;
    for (const auto& entry : fs::directory_iterator(checkpoints)) {
      const auto name = entry.path().filename().string();
      if (name.rfind("epoch_", 0) == 0 && entry.path().extension() == ".json") candidates.push_back(entry.path());
    }
    std::sort(candidates.rbegin(), candidates.rend());
    std::string last_error = "no epoch checkpoint in " + checkpoints.string();
    for (const auto& json_path : candidates) {
      try {
        auto loaded = load_checkpoint(json_path);
        const auto& state = loaded.info.training.at("state");
        if (loaded.info.training.at("options") != run_options)
          throw ModelError(json_path.string() + ": training options differ from the interrupted run's (resume needs the same options)");
        const fs::path optim = json_path.parent_path() / state.at("optimizer_file").get<std::string>();
        if (!fs::exists(optim) || sha256_file_hex(optim) != state.at("optimizer_sha256").get<std::string>())
          throw ModelError(optim.string() + ": optimiser state missing or corrupt");
        model = loaded.model;
        start_epoch = state.at("epoch").get<int64_t>() + 1;
        step = state.at("step").get<int64_t>();
        best_epoch = state.at("best_epoch").get<int64_t>();
        best_val = state.at("best_val_mae").is_null() ? std::numeric_limits<double>::infinity()
                                                      : state.at("best_val_mae").get<double>();
        since_best = state.at("epochs_since_best").get<int64_t>();
        for (const auto& m : state.at("history")) history.push_back(metrics_from_json(m));
        resume_optimizer = optim;
        if (o.progress) std::cout << "resuming after epoch " << start_epoch - 1 << " from " << json_path.string() << "\n";
        break;
      } catch (const ModelError& e) {
        last_error = e.what();
      } catch (const nlohmann::json::exception& e) {
        last_error = json_path.string() + ": resume state unreadable (" + e.what() + ")";
      }
    }
    if (resume_optimizer.empty()) throw ModelError("cannot resume: " + last_error);
  }
  dist.check_same_on_all_ranks("the epoch training resumes after", start_epoch - 1);
  dist.broadcast_parameters(*model);
  if (!o.resume && main_rank) {
    // A fresh run owns the folder: epoch checkpoints of an earlier run would otherwise be
    // picked up by a later --resume.
    std::vector<fs::path> stale;
    for (const auto& entry : fs::directory_iterator(checkpoints))
      if (entry.path().filename().string().rfind("epoch_", 0) == 0) stale.push_back(entry.path());
    for (const auto& p : stale) fs::remove(p);
  }
  model->train();
  torch::optim::AdamW optimizer(parameter_groups(model, o));
  if (!resume_optimizer.empty()) {
    try {
      torch::load(optimizer, resume_optimizer.string());
    } catch (const c10::Error& e) {
      throw ModelError(resume_optimizer.string() + ": optimiser state does not load");
    }
  }

  const int64_t n_train = static_cast<int64_t>(train_idx.size());
  const int64_t n_local = dist.enabled() ? static_cast<int64_t>(rank_training_subjects(train_idx, dist.rank(), dist.world_size()).size())
                                         : n_train;  // this rank's (padded) shard
  const int64_t steps_per_epoch = (n_local + local_batch - 1) / local_batch;
  const int64_t total_steps = steps_per_epoch * o.epochs;
  const int64_t warmup_steps = steps_per_epoch * o.warmup_epochs;
  const double age_std = model_options.age_std;
  const bool tty = o.progress && main_rank && ::isatty(2);

  TrainResult result;
  for (int64_t epoch = start_epoch; epoch <= o.epochs; ++epoch) {
    const auto t0 = std::chrono::steady_clock::now();
    model->train();
    std::mt19937_64 rng(o.seed * 1000003ULL + static_cast<uint64_t>(epoch));
    torch::manual_seed(o.seed * 7919ULL + static_cast<uint64_t>(epoch));  // dropout
    std::vector<int64_t> order = train_idx;
    std::shuffle(order.begin(), order.end(), rng);
    if (dist.enabled()) {  // this rank's shard; its own augmentation and dropout draws
      order = rank_epoch_order(order, train_idx, dist);
      rng.seed(o.seed * 1000003ULL + static_cast<uint64_t>(epoch) + 7919ULL * static_cast<uint64_t>(dist.rank() + 1));
      torch::manual_seed(o.seed * 7919ULL + static_cast<uint64_t>(epoch) + 1000003ULL * static_cast<uint64_t>(dist.rank()));
    }
    double loss_sum = 0, abs_sum = 0, aux_sum = 0, lr = 0;
    for (int64_t start = 0; start < n_local; start += local_batch) {
      const int64_t end = std::min(n_local, start + local_batch);
      std::vector<int64_t> batch(order.begin() + start, order.begin() + end);
      std::vector<float> ages;
      for (auto i : batch) ages.push_back(static_cast<float>(data.ages[i]));
      const auto x = augment_batch(select_volumes(data, batch), o.augmentation, rng);
      const auto y = torch::tensor(ages);
      lr = learning_rate_at(step, warmup_steps, total_steps, o.learning_rate, o.min_lr_fraction);
      for (auto& group : optimizer.param_groups())
        static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
      const auto out = model->forward(x);
      const auto l1 = (out.age - y).abs().mean();
      const auto loss = l1 / age_std + out.aux_loss;
      optimizer.zero_grad();
      loss.backward();
      dist.all_reduce_gradients(*model);  // average over ranks (no-op in one process)
      if (o.grad_clip > 0) torch::nn::utils::clip_grad_norm_(model->parameters(), o.grad_clip);
      optimizer.step();
      model->retract_bases();
      ++step;
      const double count = static_cast<double>(end - start);
      loss_sum += loss.item<double>() * count;
      abs_sum += l1.item<double>() * count;
      aux_sum += out.aux_loss.item<double>() * count;
      if (tty) draw_progress(epoch, o.epochs, end, n_local, loss_sum / end);
    }
    if (tty) std::cerr << "\r" << std::string(90, ' ') << "\r" << std::flush;
    // Sums over ranks; every rank validates on the whole validation split with the same
    // weights, and decides on rank 0's numbers (identical bits on every rank).
    const auto totals = dist.all_reduce_sum({loss_sum, abs_sum, aux_sum, static_cast<double>(n_local)});
    const double n_seen = totals[3];
    loss_sum = totals[0];
    abs_sum = totals[1];
    aux_sum = totals[2];
    const double train_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    auto eval = validating ? evaluate(model, data, val_idx, o.eval_batch_size) : EvalResult::not_measured();
    if (dist.enabled() && validating) {
      const auto rank0 = dist.all_reduce_sum({main_rank ? eval.mae : 0.0, main_rank ? eval.rmse : 0.0, main_rank ? eval.r : 0.0});
      eval.mae = rank0[0];
      eval.rmse = rank0[1];
      eval.r = rank0[2];
    }
    EpochMetrics m;
    m.epoch = epoch;
    m.train_loss = loss_sum / n_seen;
    m.train_mae = abs_sum / n_seen;
    m.aux_loss = aux_sum / n_seen;
    m.val_mae = eval.mae;
    m.val_rmse = eval.rmse;
    m.val_r = eval.r;
    m.learning_rate = lr;
    m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    m.scans_per_second = n_seen / std::max(1e-9, train_seconds);
    m.load_cv = eval.load_cv;
    m.routing_entropy = eval.entropy;
    history.push_back(m);

    CheckpointInfo info = base_info;
    info.metrics = to_json(m);
    if (validating && eval.mae < best_val) {
      best_val = eval.mae;
      best_epoch = epoch;
      since_best = 0;
      CheckpointInfo best_info = info;
      best_info.training["epoch"] = epoch;
      if (main_rank) save_checkpoint(o.output_dir / "best", model, best_info);
    } else {
      ++since_best;
    }

    // Epoch checkpoint: optimiser state first, weights, then the JSON that names both.
    if (main_rank) {  // (distributed: rank 0 writes, every rank resumes from it)
    const std::string stem = epoch_stem(epoch);
    const fs::path optim_path = checkpoints / (stem + ".optim.pt");
    write_via_temp(optim_path, [&](const fs::path& temp) { torch::save(optimizer, temp.string()); });
    nlohmann::json history_json = nlohmann::json::array();
    for (const auto& h : history) history_json.push_back(to_json(h));
    info.training["state"] = {{"epoch", epoch},
                              {"step", step},
                              {"best_epoch", best_epoch},
                              {"best_val_mae", best_val},
                              {"epochs_since_best", since_best},
                              {"optimizer_file", optim_path.filename().string()},
                              {"optimizer_sha256", sha256_file_hex(optim_path)},
                              {"history", history_json}};
    save_checkpoint(checkpoints / stem, model, info);
    // Keep the two newest epoch checkpoints.
    if (epoch >= 3) {
      const std::string old = epoch_stem(epoch - 2);
      for (const char* ext : {".json", ".pt", ".optim.pt"}) fs::remove(checkpoints / (old + ext));
    }
    write_metrics(o.output_dir, history);
    }  // main_rank
    if (o.progress && main_rank) {
      std::cout << "epoch " << epoch << "/" << o.epochs << std::fixed << std::setprecision(3) << "  loss "
                << m.train_loss << "  train MAE " << std::setprecision(2) << m.train_mae << "  val MAE " << m.val_mae
                << "  r " << std::setprecision(3) << m.val_r << "  lr " << std::scientific << std::setprecision(2)
                << m.learning_rate << std::fixed << "  " << std::setprecision(1) << m.seconds << " s ("
                << m.scans_per_second << " scans/s)" << (best_epoch == epoch ? "  *best" : "") << std::defaultfloat
                << std::endl;
    }
    result.epochs_run = epoch;
    if (o.stop_after_epoch > 0 && epoch == o.stop_after_epoch && epoch < o.epochs) {
      result.interrupted = true;
      break;
    }
    if (validating && o.patience > 0 && since_best >= o.patience) {
      result.stopped_early = true;
      if (o.progress && main_rank) std::cout << "early stopping: no better validation MAE for " << since_best << " epochs\n";
      break;
    }
  }
  result.history = history;
  result.best_epoch = best_epoch;
  result.best_val_mae = best_val;
  if (result.interrupted || !main_rank) return result;  // rank 0 writes the final model

  // ---- final model: best or last epoch + bias correction on its validation predictions --
  LoadedModel chosen;
  if (o.final_weights == FinalWeights::kBestValidation) {
    chosen = load_checkpoint(o.output_dir / "best.json");
  } else {
    chosen.model = model;  // save_checkpoint records its options
    chosen.info = base_info;
    chosen.info.training["epoch"] = result.epochs_run;
  }
  const auto eval = validating ? evaluate(chosen.model, data, val_idx, o.eval_batch_size) : EvalResult::not_measured();
  std::vector<double> val_ages;
  for (auto i : val_idx) val_ages.push_back(data.ages[i]);
  CheckpointInfo final_info = chosen.info;
  final_info.bias_correction = BiasCorrection::fit(val_ages, eval.predictions);
  std::vector<double> corrected;
  for (double p : eval.predictions) corrected.push_back(final_info.bias_correction.apply(p));
  double corrected_mae = corrected.empty() ? std::numeric_limits<double>::quiet_NaN() : 0.0;
  for (size_t i = 0; i < corrected.size(); ++i) corrected_mae += std::abs(corrected[i] - val_ages[i]) / corrected.size();
  final_info.metrics = {{"final_weights", to_string(o.final_weights)},
                        {"final_epoch", o.final_weights == FinalWeights::kLastEpoch ? result.epochs_run : best_epoch},
                        {"best_epoch", best_epoch},
                        {"val_mae", eval.mae},
                        {"val_rmse", eval.rmse},
                        {"val_r", eval.r},
                        {"val_mae_bias_corrected_in_sample", corrected_mae},
                        {"val_load_cv", eval.load_cv},
                        {"val_routing_entropy", eval.entropy},
                        {"epochs_run", result.epochs_run},
                        {"stopped_early", result.stopped_early}};
  final_info.training.erase("state");
  save_checkpoint(o.output_dir / "model", chosen.model, final_info);
  std::ostringstream csv;
  csv << "subject_id,age,predicted_age,bias_corrected_age\n" << std::setprecision(6);
  for (size_t i = 0; i < val_idx.size(); ++i)
    csv << (data.subject_ids.size() == size_t(n) ? data.subject_ids[val_idx[i]] : std::to_string(val_idx[i])) << ','
        << val_ages[i] << ',' << eval.predictions[i] << ',' << corrected[i] << '\n';
  write_file_atomic(o.output_dir / "validation_predictions.csv", csv.str());
  result.model_path = o.output_dir / "model.json";
  return result;
}

}  // namespace brainage::model
