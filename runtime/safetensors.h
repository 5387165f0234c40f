// safetensors: reading and writing the format of huggingface/safetensors exactly, so weights move
// between zerotrain and other frameworks, and loading those weights into a Module.
//
// Note [safetensors layout]
// A file is: 8 bytes little-endian u64 N, then N bytes of UTF-8 JSON (padded with spaces to a
// multiple of 8, as the reference writer does), then the data buffer. The header maps each tensor
// name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the data buffer)
// and may hold "__metadata__": {string: string}. The reference writer orders tensors by dtype
// alignment (largest first) then by name, so with the 8-aligned header every tensor lands on an
// address aligned to its element size; it writes "__metadata__" first. Reading is strict: the
// tensors must cover the buffer exactly, without holes or overlaps, and each byte range must equal
// numel x element size.
#pragma once
#include <map>
#include <string>

#include "nn/module.h"

namespace zt {

struct SafetensorsFile {
  TensorDict tensors;  // in file (data offset) order, on the CPU, contiguous
  std::map<std::string, std::string> metadata;
};

// "F32", "F16", "BF16", "F64", "I32", "I64", "U8", "BOOL".
const char* safetensors_dtype_name(DType t);
// The DType of a safetensors dtype name; an error naming `tensor` and the accepted names otherwise.
DType parse_safetensors_dtype(const std::string& name, const std::string& tensor);

// The bytes of a safetensors file holding `tensors` (any device, any strides: they are copied).
std::string serialize_safetensors(const TensorDict& tensors,
                                  const std::map<std::string, std::string>& metadata = {});
// Parses and validates the bytes of a file; `source` names it in errors (a path).
SafetensorsFile parse_safetensors(const std::string& bytes, const std::string& source);

// Writes atomically (Note [Atomic writes] in runtime/checkpoint_io.h).
void save_safetensors(const std::string& path, const TensorDict& tensors,
                      const std::map<std::string, std::string>& metadata = {});
SafetensorsFile load_safetensors(const std::string& path);

// Copies the weights of a safetensors file into module's parameters and buffers (by state_dict
// name), converting the dtype to the module's (an f32 file loads into a bf16 model). Shapes must
// match. With strict, missing and unexpected names are one error listing all of them; without,
// they are skipped.
void load_safetensors_into(Module& module, const std::string& path, bool strict = true);

}  // namespace zt
