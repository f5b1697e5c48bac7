#include "model/soft_label_loss.h"

#include "common/errors.h"

namespace brainage::model {

torch::Tensor age_bin_centres(const ModelOptions& o) {
  if (o.age_bins < 1) throw ModelError("age bins: the model options have no age bins (age_bins = " +
                                       std::to_string(o.age_bins) + ")");
  return torch::arange(o.age_bins, torch::kFloat32) + static_cast<float>(o.age_bin_start);
}

torch::Tensor gaussian_soft_labels(const torch::Tensor& ages, const torch::Tensor& centres, double sigma) {
  if (!(sigma > 0)) throw ModelError("soft labels: sigma must be > 0 years, got " + std::to_string(sigma));
  if (ages.dim() != 1 || centres.dim() != 1 || centres.size(0) < 1)
    throw ModelError("soft labels: expected ages [B] and centres [K]");
  const auto d = (centres.unsqueeze(0) - ages.to(centres.dtype()).unsqueeze(1)) / sigma;  // [B, K]
  // Normalised in log space, so an age far outside the bins still gives a finite row.
  return torch::softmax(-0.5 * d * d, 1);
}

torch::Tensor soft_label_kl_loss(const torch::Tensor& logits, const torch::Tensor& targets) {
  TORCH_CHECK(logits.dim() == 2 && logits.sizes() == targets.sizes(), "soft_label_kl_loss: expected logits and targets [B,K], got ",
              logits.sizes(), " and ", targets.sizes());
  const auto log_q = torch::log_softmax(logits, 1);
  return (torch::xlogy(targets, targets) - targets * log_q).sum(1).mean();
}

torch::Tensor expected_age(const torch::Tensor& logits, const torch::Tensor& centres) {
  TORCH_CHECK(logits.dim() == 2 && centres.dim() == 1 && logits.size(1) == centres.size(0),
              "expected_age: expected logits [B,K] and centres [K], got ", logits.sizes(), " and ", centres.sizes());
  return (torch::softmax(logits, 1) * centres.to(logits.device(), logits.scalar_type())).sum(1);
}

}  // namespace brainage::model
