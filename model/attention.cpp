#include "model/attention.h"

#include <cmath>

namespace brainage::model {

MultiHeadSelfAttentionImpl::MultiHeadSelfAttentionImpl(int64_t dim, int64_t heads) : heads_(heads) {
  TORCH_CHECK(heads >= 1 && dim % heads == 0, "MultiHeadSelfAttention: heads (", heads, ") must divide dim (", dim,
              ")");
  qkv_ = register_module("qkv", torch::nn::Linear(dim, 3 * dim));
  out_ = register_module("out", torch::nn::Linear(dim, dim));
}

torch::Tensor MultiHeadSelfAttentionImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 3, "MultiHeadSelfAttention: expected [B,T,d], got ", x.dim(), "D");
  const int64_t b = x.size(0), t = x.size(1), d = x.size(2), hd = d / heads_;
  const auto qkv = qkv_(x).view({b, t, 3, heads_, hd}).permute({2, 0, 3, 1, 4});  // [3,B,H,T,hd]
  const auto q = qkv[0], k = qkv[1], v = qkv[2];
  const auto attn = torch::softmax(q.matmul(k.transpose(-2, -1)) * (1.0 / std::sqrt(double(hd))), -1);
  const auto y = attn.matmul(v).transpose(1, 2).reshape({b, t, d});
  return out_(y);
}

}  // namespace brainage::model
