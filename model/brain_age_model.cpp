#include "model/brain_age_model.h"

#include <algorithm>

#include "model/soft_label_loss.h"

namespace brainage::model {

TransformerBlockImpl::TransformerBlockImpl(const ModelOptions& o, bool moe) {
  norm1_ = register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.dim})));
  attention_ = register_module("attention", MultiHeadSelfAttention(o.dim, o.heads));
  norm2_ = register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.dim})));
  dropout_ = register_module("dropout", torch::nn::Dropout(o.dropout));
  balance_per_scan_ = o.balance_per_scan;
  RoutingOptions routing{o.top_k, o.top_d_threshold};
  if (!moe)
    dense_ = register_module("ffn", FeedForward(o.dim, o.ffn_hidden));
  else if (o.ffn == FfnKind::kErmoe)
    ermoe_ = register_module("ermoe", ErmoeLayer(o.dim, o.num_experts, o.expert_rank, o.expert_hidden, routing));
  else
    softmax_moe_ = register_module("moe", SoftmaxMoeLayer(o.dim, o.num_experts, o.expert_hidden, routing));
}

torch::Tensor TransformerBlockImpl::forward(const torch::Tensor& x, LayerRouting* record, torch::Tensor* aux) {
  auto h = x + dropout_(attention_(norm1_(x)));
  const auto normed = norm2_(h);
  if (dense_) return h + dropout_(dense_(normed));
  const int64_t b = normed.size(0), t = normed.size(1), d = normed.size(2);
  const int64_t groups = balance_per_scan_ ? b : 1;
  MoeOutput moe = ermoe_ ? ermoe_(normed.reshape({b * t, d}), groups) : softmax_moe_(normed.reshape({b * t, d}), groups);
  if (record) {
    record->is_moe = true;
    record->expert_ids = moe.routing.expert_ids.view({b, t, -1});
    record->scores = moe.routing.scores.detach().view({b, t, -1});
  }
  if (aux) *aux = moe.aux_loss;
  return h + dropout_(moe.output.view({b, t, d}));
}

BrainAgeModelImpl::BrainAgeModelImpl(const ModelOptions& options) : options_(options) {
  options_.validate();
  if (options_.stem == StemKind::kConv)
    stem_ = register_module("stem", ConvStem(options_.in_channels(), options_.patch_size, options_.dim,
                                             options_.stem_width, options_.stem_pool));
  else
    embed_ = register_module("embed", PatchEmbedding(options_.patch_size, options_.dim, options_.patch_pool,
                                                     options_.in_channels()));
  position_ = register_parameter("position", torch::randn({1, options_.num_tokens(), options_.dim}) * 0.02);
  blocks_ = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < options_.depth; ++i) {
    block_list_.push_back(TransformerBlock(options_, options_.block_is_moe(i)));
    blocks_->push_back(block_list_.back());
  }
  norm_ = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({options_.dim})));
  dropout_ = register_module("dropout", torch::nn::Dropout(options_.dropout));
  head_ = register_module("head", torch::nn::Linear(options_.dim + options_.global_width(), options_.head_outputs()));
  if (options_.loss == LossKind::kKl) bin_centres_ = age_bin_centres(options_);
  torch::NoGradGuard no_grad;
  head_->bias.zero_();  // L1: starts at age_mean; KL: at the uniform distribution over the bins
}

ModelOutput BrainAgeModelImpl::forward(const torch::Tensor& volumes, bool with_routing, const torch::Tensor& global) {
  ModelOutput out = forward_once(volumes, with_routing, global);
  if (options_.test_time_flip && !is_training()) {
    const auto mirrored = forward_once(volumes.flip({4}), /*with_routing=*/false, global);  // X: about the MNI midline
    out.age = 0.5 * (out.age + mirrored.age);
  }
  return out;
}

ModelOutput BrainAgeModelImpl::forward_once(const torch::Tensor& volumes, bool with_routing, const torch::Tensor& global) {
  const auto& g = options_.grid;
  const int64_t c = options_.in_channels(), gw = options_.global_width();
  TORCH_CHECK(volumes.dim() == 5 && volumes.size(1) == c && volumes.size(2) == g[0] && volumes.size(3) == g[1] &&
                  volumes.size(4) == g[2],
              "BrainAgeModel: expected [B,", c, ",", g[0], ",", g[1], ",", g[2], "], got ", volumes.sizes());
  TORCH_CHECK(gw == 0 ? !global.defined()
                      : (global.defined() && global.dim() == 2 && global.size(0) == volumes.size(0) && global.size(1) == gw),
              "BrainAgeModel: global input ", to_string(options_.global_input), " expects [B,", gw, "] (B = ",
              volumes.size(0), "), got ", global.defined() ? global.sizes() : c10::IntArrayRef{});
  ModelOutput out;
  auto x = dropout_((stem_ ? stem_(volumes) : embed_(volumes)) + position_);
  out.aux_loss = torch::zeros({}, x.options());
  for (size_t i = 0; i < block_list_.size(); ++i) {
    LayerRouting record;
    record.layer = static_cast<int64_t>(i) + 1;
    torch::Tensor aux;
    x = block_list_[i]->forward(x, with_routing ? &record : nullptr, &aux);
    if (aux.defined()) out.aux_loss = out.aux_loss + aux;
    if (with_routing) out.layers.push_back(record);
  }
  const double aux_weight = options_.ffn == FfnKind::kSoftmaxMoe ? options_.aux_loss_weight
                            : options_.ffn == FfnKind::kErmoe     ? options_.ermoe_balance_weight
                                                                  : 0.0;
  out.aux_loss = out.aux_loss * aux_weight;
  auto pooled = dropout_(options_.norm_after_pool ? norm_(x.mean(1)) : norm_(x).mean(1));  // [B, d]
  if (gw > 0)
    pooled = torch::cat({pooled, (global.to(pooled.scalar_type()) - options_.global_mean) / options_.global_std}, 1);
  if (options_.loss == LossKind::kKl) {
    out.logits = head_(pooled);                         // [B, K]
    out.age = expected_age(out.logits, bin_centres_);  // [B] years
  } else {
    out.age = head_(pooled).squeeze(-1) * options_.age_std + options_.age_mean;
  }
  return out;
}

void BrainAgeModelImpl::retract_bases() {
  for (auto& block : block_list_)
    if (auto layer = block->ermoe()) layer->retract();
}

double BrainAgeModelImpl::max_basis_orthonormality_error() const {
  double worst = 0;
  for (const auto& block : block_list_)
    if (auto layer = block->ermoe()) worst = std::max(worst, layer->orthonormality_error());
  return worst;
}

}  // namespace brainage::model
