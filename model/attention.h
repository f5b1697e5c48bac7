#pragma once
// Multi-head self-attention over tokens [B, T, d] (no mask; all tokens see each other).
#include <torch/torch.h>

namespace brainage::model {

class MultiHeadSelfAttentionImpl : public torch::nn::Module {
 public:
  MultiHeadSelfAttentionImpl(int64_t dim, int64_t heads);
  torch::Tensor forward(const torch::Tensor& x);  // [B,T,d] -> [B,T,d]

 private:
  int64_t heads_;
  torch::nn::Linear qkv_{nullptr}, out_{nullptr};
};
TORCH_MODULE(MultiHeadSelfAttention);

}  // namespace brainage::model
