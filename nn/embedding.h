// Embedding: a lookup table (num_embeddings, embedding_dim) indexed by integer ids.
#pragma once
#include "core/generator.h"
#include "nn/module.h"

namespace zt {

struct EmbeddingOptions {
  int64_t num_embeddings = 0;
  int64_t embedding_dim = 0;
  DType dtype = DType::f32;
  Device device = Device::cpu();
  Generator* generator = nullptr;  // default_generator() when null
};

class Embedding : public Module {
 public:
  explicit Embedding(const EmbeddingOptions& options);
  Embedding(int64_t num_embeddings, int64_t embedding_dim);
  // indices (...) of i32/i64 -> (..., embedding_dim)
  Tensor forward(const Tensor& indices) override;
  const Tensor& weight() const { return parameter("weight"); }  // (num, dim)

 private:
  int64_t num_embeddings_, embedding_dim_;
};

}  // namespace zt
