// Embedding module: weight drawn from N(0, 1), as torch.nn.Embedding.
#include "nn/embedding.h"

#include "autograd/ops.h"
#include "nn/init.h"

namespace zt {

Embedding::Embedding(const EmbeddingOptions& o)
    : num_embeddings_(o.num_embeddings), embedding_dim_(o.embedding_dim) {
  ZT_CHECK(o.num_embeddings > 0 && o.embedding_dim > 0,
           "Embedding: expected positive sizes, found num_embeddings=", o.num_embeddings,
           " embedding_dim=", o.embedding_dim);
  Generator& gen = o.generator ? *o.generator : default_generator();
  Tensor w = empty({o.num_embeddings, o.embedding_dim}, TensorOptions(o.dtype, o.device));
  init::normal_(w, 0.0, 1.0, gen);
  register_parameter("weight", w);
}

Embedding::Embedding(int64_t num_embeddings, int64_t embedding_dim)
    : Embedding(EmbeddingOptions{num_embeddings, embedding_dim}) {}

Tensor Embedding::forward(const Tensor& indices) {
  ZT_CHECK(is_integral(indices.dtype()), "Embedding: expected integer indices, found ",
           dtype_name(indices.dtype()));
  return embedding(weight(), indices);
}

}  // namespace zt
