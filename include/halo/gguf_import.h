// A GGUF file (llama.cpp's single-file format) -> a Hugging Face model directory that every
// halo command and transformers read: config.json, model.safetensors, tokenizer.json,
// tokenizer_config.json, special_tokens_map.json, generation_config.json, plus
// halo_import.json (what was imported, from where). No torch here.
//
// Architectures: llama, qwen2, qwen3. Weights are dequantized to float32 (every type that
// halo::dequantize() reads), renamed to transformers' names, checked against the config's
// shapes, and for llama the rows of attn_q / attn_k (and their biases) are put back in
// Hugging Face order: llama.cpp's converter interleaves the two rotary halves of each head,
// transformers rotates halves. The tokenizer must be byte-level BPE (tokenizer.ggml.model
// "gpt2"); tokenizer.ggml.pre picks the pre-tokenizer as llama.cpp does.
//
// Everything is written into a temporary directory beside `out_dir` and renamed into place at
// the end, so a failure leaves `out_dir` as it was. An `out_dir` that exists and is not empty
// is refused, unless `overwrite` is set and it holds an earlier halo import (halo_import.json),
// which is then replaced.
#pragma once
#include <cstdint>
#include <string>

#include "halo/gguf.h"

namespace halo {

struct GgufImportOptions {
  // "float32" (default) or "bfloat16". float32 keeps the dequantized weights exactly (each is
  // scale * q + min computed in float32), so the directory computes what llama.cpp and
  // transformers' own GGUF loader compute; bfloat16 halves the size and rounds each weight
  // (round to nearest even) on top of the quantization error.
  std::string dtype = "float32";
  // Dequantization threads (0: hardware concurrency, at most 16).
  int threads = 0;
  // Replace an `out_dir` that holds an earlier halo import.
  bool overwrite = false;
  // A progress bar with ETA on stderr while dequantizing (halo::ProgressBar).
  bool progress = true;
};

// What import_gguf did, for the CLI's last line.
struct GgufImportResult {
  std::string architecture;  // "llama" | "qwen2" | "qwen3"
  int64_t parameters = 0;    // elements written (lm_head not counted when tied)
  int64_t tensors = 0;
  uint64_t bytes = 0;  // bytes of tensor data written
  bool tied_embeddings = false;
};

// Imports `gguf_path` into `out_dir` (see above). Fails with one halo::Error line naming the
// file and the key or tensor at fault: unsupported architecture, tokenizer or quant type;
// missing or inconsistent metadata; unknown, missing or mis-shaped tensors; an occupied out_dir.
GgufImportResult import_gguf(const std::string& gguf_path, const std::string& out_dir,
                             const GgufImportOptions& options = {});

// A human summary of a GGUF file for `halo info`: architecture, name, sizes, parameter count,
// tensor types, tokenizer model/pre and vocabulary, context length. Works for any architecture
// (missing keys show as "-"); fails only when the file cannot be read.
std::string describe_gguf(const std::string& gguf_path);
std::string describe_gguf(const GgufFile& file);

// Whether `path` names a GGUF file (a regular file starting with the magic "GGUF").
bool is_gguf_file(const std::string& path);

}  // namespace halo
