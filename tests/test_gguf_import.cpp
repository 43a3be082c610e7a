// GGUF import tests (halo/gguf_import.h). Tiny GGUF files are written here byte by byte (a
// minimal GGUF v3 writer below) for llama (q/k rows permuted as llama.cpp's converter does,
// which the import must undo), qwen2 (q/k/v biases) and qwen3 (q/k norms), with F32, F16 and
// Q8_0 tensors and a small byte-level BPE vocabulary; the imported directory is read back
// (config.json, safetensors, tokenizer files through halo::load_tokenizer). Bad inputs must
// fail with one line naming the file and the key or tensor, leaving the output untouched.
// The last test imports the real SmolLM2-135M-Instruct GGUF when it is present
// ($HALO_SMOLLM2_GGUF or runs/teachers/smollm2-135m.gguf: scripts/fetch_teacher.sh smollm2)
// and checks its config and tokenizer ids against transformers'.
// No torch here: this suite only needs halo's torch-free sources.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "halo/error.h"
#include "halo/file_system.h"
#include "halo/gguf.h"
#include "halo/gguf_import.h"
#include "halo/safetensors.h"
#include "halo/tokenizer.h"

namespace {

using nlohmann::json;

// ---------------------------------------------------------------------------------------------
// A minimal GGUF v3 writer.

enum Kind : uint32_t { U32 = 4, I32 = 5, F32K = 6, BOOLK = 7, STR = 8, ARR = 9 };
enum Ggml : uint32_t { kF32 = 0, kF16 = 1, kQ8_0 = 8 };

class GgufWriter {
 public:
  void u32(const std::string& key, uint32_t v) {
    header_key(key, U32), put(v);
    ++kv_;
  }
  void f32(const std::string& key, float v) {
    header_key(key, F32K), put(v);
    ++kv_;
  }
  void boolean(const std::string& key, bool v) {
    header_key(key, BOOLK), kv_bytes_.push_back(v ? 1 : 0);
    ++kv_;
  }
  void str(const std::string& key, const std::string& v) {
    header_key(key, STR), put_string(v);
    ++kv_;
  }
  void strings(const std::string& key, const std::vector<std::string>& v) {
    header_key(key, ARR), put(uint32_t{STR}), put(uint64_t{v.size()});
    for (const auto& s : v) put_string(s);
    ++kv_;
  }
  void i32s(const std::string& key, const std::vector<int32_t>& v) {
    header_key(key, ARR), put(uint32_t{I32}), put(uint64_t{v.size()});
    for (int32_t x : v) put(x);
    ++kv_;
  }

  // `ne` in GGUF order (fastest first); `data` the raw encoded bytes.
  void tensor(const std::string& name, Ggml type, std::vector<int64_t> ne, std::string data) {
    tensors_.push_back({name, type, std::move(ne), std::move(data)});
  }

  std::string bytes() const {
    std::string out = "GGUF";
    const auto put_to = [&](auto v) { out.append(reinterpret_cast<const char*>(&v), sizeof v); };
    put_to(uint32_t{3});
    put_to(uint64_t{tensors_.size()});
    put_to(uint64_t{kv_});
    out += kv_bytes_;
    uint64_t offset = 0;
    std::vector<uint64_t> offsets;
    for (const auto& t : tensors_) {
      put_to(uint64_t{t.name.size()});
      out += t.name;
      put_to(uint32_t(t.ne.size()));
      for (int64_t d : t.ne) put_to(uint64_t(d));
      put_to(uint32_t{t.type});
      put_to(offset);
      offsets.push_back(offset);
      offset += (t.data.size() + 31) / 32 * 32;
    }
    out.resize((out.size() + 31) / 32 * 32, '\0');
    for (const auto& t : tensors_) {
      out += t.data;
      out.resize((out.size() + 31) / 32 * 32, '\0');
    }
    return out;
  }

 private:
  struct Tensor {
    std::string name;
    Ggml type;
    std::vector<int64_t> ne;
    std::string data;
  };
  template <class T>
  void put(T v) {
    kv_bytes_.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  void put_string(const std::string& s) {
    put(uint64_t{s.size()});
    kv_bytes_ += s;
  }
  void header_key(const std::string& key, uint32_t kind) {
    put_string(key);
    put(kind);
  }
  std::string kv_bytes_;
  uint64_t kv_ = 0;
  std::vector<Tensor> tensors_;
};

uint16_t to_half(float value) {  // exact for the normal, short-mantissa values used here
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  const uint32_t sign = (bits >> 16) & 0x8000u;
  if ((bits & 0x7FFFFFFFu) == 0) return static_cast<uint16_t>(sign);
  const int exponent = static_cast<int>((bits >> 23) & 0xFF) - 127 + 15;
  return static_cast<uint16_t>(sign | (exponent << 10) | ((bits >> 13) & 0x3FF));
}

std::string encode_f32(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4);
}
std::string encode_f16(const std::vector<float>& v) {
  std::string out;
  for (float x : v) {
    const uint16_t h = to_half(x);
    out.append(reinterpret_cast<const char*>(&h), 2);
  }
  return out;
}
// Q8_0 blocks with scale 1/16: `v` must hold multiples of 1/16 within [-127/16, 127/16].
std::string encode_q8_0(const std::vector<float>& v) {
  std::string out;
  for (size_t b = 0; b < v.size(); b += 32) {
    const uint16_t d = to_half(1.0f / 16);
    out.append(reinterpret_cast<const char*>(&d), 2);
    for (size_t i = 0; i < 32; ++i) out.push_back(static_cast<char>(static_cast<int8_t>(std::lround(v[b + i] * 16))));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// A toy model: HF-layout weights, written as a GGUF file.

// GPT-2's byte-to-unicode table, spelled as UTF-8.
std::string byte_token(int byte) {
  const bool printable =
      (byte >= '!' && byte <= '~') || (byte >= 0xA1 && byte <= 0xAC) || (byte >= 0xAE && byte <= 0xFF);
  uint32_t cp = static_cast<uint32_t>(byte);
  if (!printable) {
    uint32_t next = 256;
    for (int b = 0; b < byte; ++b) {
      const bool p = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      if (!p) ++next;
    }
    cp = next;
  }
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// Token ids of the toy vocabulary: 3 control tokens, the 256 bytes (id 3 + byte), 5 merges, 1
// user-defined token.
constexpr int32_t kEndOfText = 0, kImStart = 1, kImEnd = 2;
int32_t byte_id(char c) {
  return 3 + static_cast<unsigned char>(c);
}
constexpr int32_t kGt = 259, kHe = 260, kGthe = 261, k12 = 262, kG1 = 263, kTool = 264;
constexpr int64_t kVocab = 265;

struct Toy {
  std::string arch = "llama";
  std::string pre = "gpt2";
  std::string tokenizer_model = "gpt2";
  int64_t hidden = 16, heads = 2, kv_heads = 1, head_dim = 8, ffn = 32, layers = 2, context = 128;
  bool tied = true;
  bool attention_bias = false;  // llama / qwen3: q, k, v, o biases
  bool add_bos = false;
  std::vector<float> rope_freqs;  // llama3 scaling when non-empty
  float rope_theta = 10000.0f;
};

struct Weight {
  std::vector<int64_t> shape;  // HF order
  std::vector<float> values;
};

uint32_t g_seed = 12345;
// Deterministic multiples of 1/16 in [-4, 4): exact in F32, F16, BF16 and Q8_0 (scale 1/16).
std::vector<float> values(int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) {
    g_seed = g_seed * 1664525u + 1013904223u;
    x = static_cast<float>(static_cast<int>((g_seed >> 16) % 128) - 64) / 16.0f;
  }
  return v;
}

// llama.cpp's permute(w, n_head, n_head_kv): w.reshape(n, 2, rows/n/2, cols).swapaxes(1, 2).
std::vector<float> llama_cpp_permute(const std::vector<float>& w, int64_t rows, int64_t cols, int64_t n) {
  const int64_t half = rows / n / 2;
  std::vector<float> out(w.size());
  for (int64_t h = 0; h < n; ++h)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t s = 0; s < 2; ++s)
        for (int64_t c = 0; c < cols; ++c)  // out[h][i][s] = in[h][s][i]
          out[static_cast<size_t>(((h * half + i) * 2 + s) * cols + c)] =
              w[static_cast<size_t>(((h * 2 + s) * half + i) * cols + c)];
  return out;
}

void add_tokenizer(GgufWriter& g, const Toy& toy) {
  g.str("tokenizer.ggml.model", toy.tokenizer_model);
  if (!toy.pre.empty()) g.str("tokenizer.ggml.pre", toy.pre);
  std::vector<std::string> tokens = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
  std::vector<int32_t> types = {3, 3, 3};
  for (int b = 0; b < 256; ++b) tokens.push_back(byte_token(b)), types.push_back(1);
  for (const char* t : {"\xC4\xA0t", "he", "\xC4\xA0the", "12",
                        "\xC4\xA0"
                        "1"})
    tokens.push_back(t), types.push_back(1);
  tokens.push_back("<tool>"), types.push_back(4);
  g.strings("tokenizer.ggml.tokens", tokens);
  g.i32s("tokenizer.ggml.token_type", types);
  g.strings("tokenizer.ggml.merges", {"\xC4\xA0 t", "h e", "\xC4\xA0t he", "1 2", "\xC4\xA0 1"});
  g.u32("tokenizer.ggml.bos_token_id", kImStart);
  g.u32("tokenizer.ggml.eos_token_id", kImEnd);
  g.u32("tokenizer.ggml.unknown_token_id", kEndOfText);
  g.u32("tokenizer.ggml.padding_token_id", kImEnd);
  g.boolean("tokenizer.ggml.add_bos_token", toy.add_bos);
  g.str("tokenizer.chat_template", "{% for m in messages %}<|im_start|>{{ m['content'] }}<|im_end|>{% endfor %}");
}

struct Built {
  GgufWriter writer;
  std::map<std::string, Weight> expected;  // HF name -> HF weight
};

// Metadata and tensors of `toy`; `skip_key` / `skip_tensor` leave one out, `bad_shape` makes
// one tensor one row short.
Built build(const Toy& toy, const std::string& skip_key = "", const std::string& bad_shape = "") {
  Built b;
  GgufWriter& g = b.writer;
  const std::string a = toy.arch + ".";
  g.str("general.architecture", toy.arch);
  g.str("general.name", "toy");
  const auto u32 = [&](const std::string& key, int64_t v) {
    if (key != skip_key) g.u32(key, static_cast<uint32_t>(v));
  };
  u32(a + "block_count", toy.layers);
  u32(a + "context_length", toy.context);
  u32(a + "embedding_length", toy.hidden);
  u32(a + "feed_forward_length", toy.ffn);
  u32(a + "attention.head_count", toy.heads);
  u32(a + "attention.head_count_kv", toy.kv_heads);
  if (toy.arch == "qwen3") u32(a + "attention.key_length", toy.head_dim);
  if (a + "attention.layer_norm_rms_epsilon" != skip_key) g.f32(a + "attention.layer_norm_rms_epsilon", 1e-5f);
  g.f32(a + "rope.freq_base", toy.rope_theta);
  add_tokenizer(g, toy);

  const bool llama = toy.arch == "llama";
  const int64_t q_rows = toy.heads * toy.head_dim, kv_rows = toy.kv_heads * toy.head_dim;
  // `permute_heads` > 0: the GGUF holds the llama.cpp permutation of the HF rows.
  const auto add = [&](const std::string& gguf, const std::string& hf, std::vector<int64_t> shape, Ggml type,
                       int64_t permute_heads = 0) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    Weight w{shape, values(n)};
    std::vector<float> stored = w.values;
    if (permute_heads) stored = llama_cpp_permute(stored, shape[0], n / shape[0], permute_heads);
    std::vector<int64_t> ne(shape.rbegin(), shape.rend());
    if (gguf == bad_shape) ne.back() -= 1, stored.resize(stored.size() - static_cast<size_t>(n / shape[0]));
    if (type == kQ8_0 && ne[0] % 32 != 0) type = kF32;
    g.tensor(gguf, type, ne,
             type == kF32   ? encode_f32(stored)
             : type == kF16 ? encode_f16(stored)
                            : encode_q8_0(stored));
    b.expected[hf] = std::move(w);
  };
  add("token_embd.weight", "model.embed_tokens.weight", {kVocab, toy.hidden}, kF32);
  add("output_norm.weight", "model.norm.weight", {toy.hidden}, kF32);
  if (!toy.tied) add("output.weight", "lm_head.weight", {kVocab, toy.hidden}, kF16);
  for (int64_t l = 0; l < toy.layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".", m = "model.layers." + std::to_string(l) + ".";
    add(p + "attn_norm.weight", m + "input_layernorm.weight", {toy.hidden}, kF32);
    add(p + "ffn_norm.weight", m + "post_attention_layernorm.weight", {toy.hidden}, kF16);
    add(p + "attn_q.weight", m + "self_attn.q_proj.weight", {q_rows, toy.hidden}, kF32, llama ? toy.heads : 0);
    add(p + "attn_k.weight", m + "self_attn.k_proj.weight", {kv_rows, toy.hidden}, kF16, llama ? toy.kv_heads : 0);
    add(p + "attn_v.weight", m + "self_attn.v_proj.weight", {kv_rows, toy.hidden}, kF32);
    add(p + "attn_output.weight", m + "self_attn.o_proj.weight", {toy.hidden, q_rows}, kF32);
    if (toy.arch == "qwen2" || toy.attention_bias) {
      add(p + "attn_q.bias", m + "self_attn.q_proj.bias", {q_rows}, kF32, llama ? toy.heads : 0);
      add(p + "attn_k.bias", m + "self_attn.k_proj.bias", {kv_rows}, kF32, llama ? toy.kv_heads : 0);
      add(p + "attn_v.bias", m + "self_attn.v_proj.bias", {kv_rows}, kF32);
    }
    if (toy.attention_bias) add(p + "attn_output.bias", m + "self_attn.o_proj.bias", {toy.hidden}, kF32);
    if (toy.arch == "qwen3") {
      add(p + "attn_q_norm.weight", m + "self_attn.q_norm.weight", {toy.head_dim}, kF32);
      add(p + "attn_k_norm.weight", m + "self_attn.k_norm.weight", {toy.head_dim}, kF32);
    }
    add(p + "ffn_gate.weight", m + "mlp.gate_proj.weight", {toy.ffn, toy.hidden}, kQ8_0);
    add(p + "ffn_up.weight", m + "mlp.up_proj.weight", {toy.ffn, toy.hidden}, kQ8_0);
    add(p + "ffn_down.weight", m + "mlp.down_proj.weight", {toy.hidden, toy.ffn}, kQ8_0);
  }
  if (!toy.rope_freqs.empty()) {
    g.tensor("rope_freqs.weight", kF32, {static_cast<int64_t>(toy.rope_freqs.size())}, encode_f32(toy.rope_freqs));
  }
  return b;
}

// ---------------------------------------------------------------------------------------------
// Plumbing

std::string temp_dir() {
  char pattern[] = "/tmp/halo-gguf-import-XXXXXX";
  const char* dir = ::mkdtemp(pattern);
  if (!dir) throw std::runtime_error("mkdtemp failed");
  return dir;
}

struct Scratch {
  std::string dir = temp_dir();
  ~Scratch() { halo::remove_tree(dir); }
  std::string path(const std::string& name) const { return dir + "/" + name; }
};

std::string write_gguf(const Scratch& s, const GgufWriter& g, const std::string& name = "model.gguf") {
  const std::string path = s.path(name);
  halo::write_file_atomic(path, g.bytes());
  return path;
}

halo::GgufImportOptions quiet(const std::string& dtype = "float32") {
  halo::GgufImportOptions o;
  o.dtype = dtype;
  o.progress = false;
  o.threads = 2;
  return o;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const halo::Error& e) {
    return e.what();
  }
  return "(no error)";
}

json read_json(const std::string& path) {
  return json::parse(halo::read_file(path));
}

float bf16_to_float(uint16_t v) {
  const uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Every expected weight is in the checkpoint with its HF shape and values, and nothing else.
void expect_weights(const std::string& dir, const std::map<std::string, Weight>& expected, halo::DType dtype) {
  const halo::SafetensorsFile file(dir + "/model.safetensors");
  EXPECT_EQ(file.tensors().size(), expected.size());
  EXPECT_EQ(file.metadata().at("format"), "pt");
  for (const auto& [name, w] : expected) {
    const halo::TensorEntry* t = file.find(name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(t->shape, w.shape) << name;
    ASSERT_EQ(t->dtype, dtype) << name;
    for (size_t i = 0; i < w.values.size(); ++i) {
      const float got = dtype == halo::DType::F32 ? static_cast<const float*>(t->data)[i]
                                                  : bf16_to_float(static_cast<const uint16_t*>(t->data)[i]);
      ASSERT_EQ(got, w.values[i]) << name << " element " << i;
    }
  }
}

std::vector<int32_t> encode(const std::string& dir, const std::string& text) {
  return halo::load_tokenizer(dir)->encode(text);
}

using Ids = std::vector<int32_t>;

// ---------------------------------------------------------------------------------------------
// Tests

TEST(GgufImport, LlamaUndoesTheQkPermutationAndWritesTransformersConfig) {
  Scratch s;
  Toy toy;
  Built b = build(toy);
  const std::string out = s.path("out");
  const halo::GgufImportResult r = halo::import_gguf(write_gguf(s, b.writer), out, quiet());
  EXPECT_EQ(r.architecture, "llama");
  EXPECT_TRUE(r.tied_embeddings);
  EXPECT_EQ(r.tensors, static_cast<int64_t>(b.expected.size()));
  expect_weights(out, b.expected, halo::DType::F32);

  const json c = read_json(out + "/config.json");
  EXPECT_EQ(c["model_type"], "llama");
  EXPECT_EQ(c["architectures"], json::array({"LlamaForCausalLM"}));
  EXPECT_EQ(c["vocab_size"], kVocab);
  EXPECT_EQ(c["hidden_size"], 16);
  EXPECT_EQ(c["intermediate_size"], 32);
  EXPECT_EQ(c["num_hidden_layers"], 2);
  EXPECT_EQ(c["num_attention_heads"], 2);
  EXPECT_EQ(c["num_key_value_heads"], 1);
  EXPECT_EQ(c["head_dim"], 8);
  EXPECT_EQ(c["max_position_embeddings"], 128);
  EXPECT_DOUBLE_EQ(c["rms_norm_eps"].get<double>(), 1e-5);
  EXPECT_DOUBLE_EQ(c["rope_theta"].get<double>(), 10000.0);
  EXPECT_TRUE(c["rope_scaling"].is_null());
  EXPECT_EQ(c["tie_word_embeddings"], true);
  EXPECT_EQ(c["attention_bias"], false);
  EXPECT_EQ(c["mlp_bias"], false);
  EXPECT_EQ(c["hidden_act"], "silu");
  EXPECT_EQ(c["bos_token_id"], kImStart);
  EXPECT_EQ(c["eos_token_id"], kImEnd);
  EXPECT_EQ(c["torch_dtype"], "float32");

  const json gen = read_json(out + "/generation_config.json");
  EXPECT_EQ(gen["bos_token_id"], kImStart);
  EXPECT_EQ(gen["eos_token_id"], kImEnd);
  const json tc = read_json(out + "/tokenizer_config.json");
  EXPECT_EQ(tc["bos_token"], "<|im_start|>");
  EXPECT_EQ(tc["eos_token"], "<|im_end|>");
  EXPECT_EQ(tc["pad_token"], "<|im_end|>");
  EXPECT_EQ(tc["unk_token"], "<|endoftext|>");
  EXPECT_EQ(tc["add_bos_token"], false);
  EXPECT_EQ(tc["model_max_length"], 128);
  EXPECT_EQ(tc["tokenizer_class"], "GPT2Tokenizer");
  EXPECT_NE(tc["chat_template"].get<std::string>().find("<|im_start|>"), std::string::npos);
  const json sm = read_json(out + "/special_tokens_map.json");
  EXPECT_EQ(sm["eos_token"]["content"], "<|im_end|>");
  EXPECT_TRUE(halo::is_regular_file(out + "/halo_import.json"));
  // Nothing is left beside the output.
  for (const std::string& name : halo::list_directory(s.dir))
    EXPECT_TRUE(name == "model.gguf" || name == "out") << name;
}

TEST(GgufImport, LlamaBiasesUntiedOutputAndBfloat16) {
  Scratch s;
  Toy toy;
  toy.tied = false;
  toy.attention_bias = true;
  Built b = build(toy);
  const std::string out = s.path("out");
  const halo::GgufImportResult r = halo::import_gguf(write_gguf(s, b.writer), out, quiet("bfloat16"));
  EXPECT_FALSE(r.tied_embeddings);
  expect_weights(out, b.expected, halo::DType::BF16);
  const json c = read_json(out + "/config.json");
  EXPECT_EQ(c["tie_word_embeddings"], false);
  EXPECT_EQ(c["attention_bias"], true);
  EXPECT_EQ(c["torch_dtype"], "bfloat16");
}

TEST(GgufImport, Qwen2KeepsRowOrderAndBiases) {
  Scratch s;
  Toy toy;
  toy.arch = "qwen2";
  toy.pre = "qwen2";
  Built b = build(toy);
  const std::string out = s.path("out");
  halo::import_gguf(write_gguf(s, b.writer), out, quiet());
  expect_weights(out, b.expected, halo::DType::F32);
  const json c = read_json(out + "/config.json");
  EXPECT_EQ(c["model_type"], "qwen2");
  EXPECT_EQ(c["architectures"], json::array({"Qwen2ForCausalLM"}));
  EXPECT_FALSE(c.contains("attention_bias"));
  EXPECT_EQ(c["use_sliding_window"], false);
  const json t = read_json(out + "/tokenizer.json");
  EXPECT_EQ(t["normalizer"]["type"], "NFC");
  EXPECT_EQ(t["pre_tokenizer"]["pretokenizers"][0]["type"], "Split");
  // Qwen2's regex: " the" is one piece, digits one by one.
  EXPECT_EQ(encode(out, "the 12"), (Ids{byte_id('t'), kHe, byte_id(' '), byte_id('1'), byte_id('2')}));
  EXPECT_EQ(encode(out, " the"), (Ids{kGthe}));
}

TEST(GgufImport, Qwen3QkNormsAndKeyLength) {
  Scratch s;
  Toy toy;
  toy.arch = "qwen3";
  toy.pre = "qwen2";
  toy.head_dim = 16;  // != hidden / heads, so attention.key_length must be read
  Built b = build(toy);
  const std::string out = s.path("out");
  halo::import_gguf(write_gguf(s, b.writer), out, quiet());
  expect_weights(out, b.expected, halo::DType::F32);
  const json c = read_json(out + "/config.json");
  EXPECT_EQ(c["model_type"], "qwen3");
  EXPECT_EQ(c["architectures"], json::array({"Qwen3ForCausalLM"}));
  EXPECT_EQ(c["head_dim"], 16);
  EXPECT_EQ(c["attention_bias"], false);
}

TEST(GgufImport, TokenizerLoadsInHaloAndEncodesLikeGpt2) {
  Scratch s;
  Toy toy;  // pre "gpt2": ByteLevel with GPT-2's regex
  Built b = build(toy);
  const std::string out = s.path("out");
  halo::import_gguf(write_gguf(s, b.writer), out, quiet());
  const json t = read_json(out + "/tokenizer.json");
  EXPECT_EQ(t["model"]["type"], "BPE");
  EXPECT_EQ(t["model"]["byte_fallback"], false);
  EXPECT_EQ(t["model"]["vocab"].size(), static_cast<size_t>(kVocab));
  EXPECT_EQ(t["model"]["merges"][0], json::array({"\xC4\xA0", "t"}));
  EXPECT_TRUE(t["normalizer"].is_null());
  EXPECT_EQ(t["pre_tokenizer"]["type"], "ByteLevel");
  EXPECT_EQ(t["decoder"]["type"], "ByteLevel");
  ASSERT_EQ(t["added_tokens"].size(), 4u);
  EXPECT_EQ(t["added_tokens"][0]["content"], "<|endoftext|>");
  EXPECT_EQ(t["added_tokens"][0]["special"], true);
  EXPECT_EQ(t["added_tokens"][3]["content"], "<tool>");
  EXPECT_EQ(t["added_tokens"][3]["special"], false);

  const auto tokenizer = halo::load_tokenizer(out);
  EXPECT_EQ(tokenizer->vocab_size(), kVocab);
  EXPECT_EQ(tokenizer->eos_id(), kImEnd);
  EXPECT_EQ(tokenizer->encode(" the"), (Ids{kGthe}));
  EXPECT_EQ(tokenizer->encode("the 12"), (Ids{byte_id('t'), kHe, byte_id(' '), k12}));  // " 12": merge 1+2 first
  EXPECT_EQ(tokenizer->encode("<|im_start|>the<tool><|im_end|>"), (Ids{kImStart, byte_id('t'), kHe, kTool, kImEnd}));
  EXPECT_EQ(tokenizer->decode({kImStart, kGthe, k12}), "<|im_start|> the12");
}

TEST(GgufImport, SmollmPreTokenizerSplitsDigitsOneByOne) {
  Scratch s;
  Toy toy;
  toy.pre = "smollm";
  Built b = build(toy);
  const std::string out = s.path("out");
  halo::import_gguf(write_gguf(s, b.writer), out, quiet());
  const json pre = read_json(out + "/tokenizer.json")["pre_tokenizer"];
  EXPECT_EQ(pre, json::parse(R"({"type": "Sequence", "pretokenizers": [
      {"type": "Digits", "individual_digits": true},
      {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}]})"));
  EXPECT_EQ(encode(out, "the 12"), (Ids{byte_id('t'), kHe, byte_id(' '), byte_id('1'), byte_id('2')}));
  EXPECT_EQ(encode(out, " the 1"), (Ids{kGthe, byte_id(' '), byte_id('1')}));
}

TEST(GgufImport, AddBosWritesATemplatePostProcessor) {
  Scratch s;
  Toy toy;
  toy.add_bos = true;
  Built b = build(toy);
  const std::string out = s.path("out");
  halo::import_gguf(write_gguf(s, b.writer), out, quiet());
  const json t = read_json(out + "/tokenizer.json");
  EXPECT_EQ(t["post_processor"]["type"], "TemplateProcessing");
  EXPECT_EQ(t["post_processor"]["special_tokens"]["<|im_start|>"]["ids"], json::array({kImStart}));
  EXPECT_EQ(read_json(out + "/tokenizer_config.json")["add_bos_token"], true);
}

TEST(GgufImport, Llama3RopeFreqsBecomeRopeScaling) {
  // llama.cpp's converter: factor 8, low 1, high 8, original context 2048, theta 10000, d 16.
  Toy toy;
  toy.head_dim = 16;
  toy.heads = 1;
  toy.kv_heads = 1;
  const double factor = 8, low = 1, high = 8, original = 2048;
  for (int i = 0; i < 8; ++i) {
    const double wavelength = 2 * M_PI * std::pow(10000.0, 2.0 * i / 16);
    double r;
    if (wavelength < original / high) {
      r = 1;
    } else if (wavelength > original / low) {
      r = factor;
    } else {
      const double smooth = (original / wavelength - low) / (high - low);
      r = 1 / ((1 - smooth) / factor + smooth);
    }
    toy.rope_freqs.push_back(static_cast<float>(r));
  }
  Scratch s;
  Built b = build(toy);
  const std::string out = s.path("out");
  halo::import_gguf(write_gguf(s, b.writer), out, quiet());
  const json scaling = read_json(out + "/config.json")["rope_scaling"];
  EXPECT_EQ(scaling["rope_type"], "llama3");
  EXPECT_DOUBLE_EQ(scaling["factor"].get<double>(), 8.0);
  EXPECT_NEAR(scaling["low_freq_factor"].get<double>(), 1.0, 1e-9);
  EXPECT_NEAR(scaling["high_freq_factor"].get<double>(), 8.0, 1e-9);
  EXPECT_EQ(scaling["original_max_position_embeddings"], 2048);
  expect_weights(out, b.expected, halo::DType::F32);  // rope_freqs is not a checkpoint tensor

  toy.rope_freqs[7] = 3.0f;  // no llama3 curve fits
  Built bad = build(toy);
  const std::string message =
      error_of([&] { halo::import_gguf(write_gguf(s, bad.writer, "bad.gguf"), s.path("out2"), quiet()); });
  EXPECT_NE(message.find("rope_freqs.weight"), std::string::npos) << message;
  EXPECT_FALSE(halo::path_exists(s.path("out2")));
}

// Each bad input fails with one line naming the file and the culprit, and writes nothing.
void expect_refused(const Built& b, const std::vector<std::string>& needles) {
  Scratch s;
  const std::string gguf = write_gguf(s, b.writer);
  const std::string out = s.path("out");
  halo::create_directories(out);  // an empty directory: must stay as it was
  const std::string message = error_of([&] { halo::import_gguf(gguf, out, quiet()); });
  EXPECT_NE(message.find(gguf), std::string::npos) << message;
  for (const std::string& needle : needles) EXPECT_NE(message.find(needle), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  EXPECT_TRUE(halo::is_directory(out));
  EXPECT_TRUE(halo::list_directory(out).empty());
  EXPECT_EQ(halo::list_directory(s.dir), (std::vector<std::string>{"model.gguf", "out"}));
}

TEST(GgufImportErrors, UnsupportedArchitecture) {
  Toy toy;
  toy.arch = "gemma";
  expect_refused(build(toy), {"architecture 'gemma' is not supported", "llama, qwen2 and qwen3"});
}

TEST(GgufImportErrors, SentencePieceTokenizer) {
  Toy toy;
  toy.tokenizer_model = "llama";
  expect_refused(build(toy), {"tokenizer model 'llama' (SentencePiece) is not supported; only BPE ('gpt2')"});
}

TEST(GgufImportErrors, UnknownPreTokenizer) {
  Toy toy;
  toy.pre = "klingon";
  expect_refused(build(toy), {"tokenizer.ggml.pre 'klingon' is not supported", "smollm"});
}

TEST(GgufImportErrors, MissingMetadataKey) {
  expect_refused(build(Toy{}, "llama.context_length"), {"llama.context_length", "missing"});
  expect_refused(build(Toy{}, "llama.attention.layer_norm_rms_epsilon"), {"llama.attention.layer_norm_rms_epsilon"});
}

TEST(GgufImportErrors, WrongTensorShape) {
  expect_refused(build(Toy{}, "", "blk.1.attn_q.weight"),
                 {"tensor 'blk.1.attn_q.weight' has shape [15, 16], expected [16, 16]"});
}

TEST(GgufImportErrors, UnknownAndMissingTensors) {
  Built b = build(Toy{});
  b.writer.tensor("blk.0.ffn_gate_exps.weight", kF32, {4}, encode_f32({1, 2, 3, 4}));
  expect_refused(b, {"'blk.0.ffn_gate_exps.weight'", "unknown"});
  Toy qwen2;
  qwen2.arch = "qwen2";
  qwen2.pre = "qwen2";
  qwen2.layers = 3;
  Built missing = build(qwen2, "qwen2.block_count");
  missing.writer.u32("qwen2.block_count", 4);  // one layer more than the tensors hold
  expect_refused(missing, {"tensor 'blk.3.", "missing"});
}

TEST(GgufImportErrors, BadDtypeIsAUsageError) {
  Scratch s;
  const std::string gguf = write_gguf(s, build(Toy{}).writer);
  try {
    halo::import_gguf(gguf, s.path("out"), quiet("float16"));
    FAIL() << "no error";
  } catch (const halo::Error& e) {
    EXPECT_EQ(e.exit_code(), halo::kExitUsage);
    EXPECT_NE(std::string(e.what()).find("float16"), std::string::npos);
  }
}

TEST(GgufImportErrors, OccupiedOutputDirectory) {
  Scratch s;
  const std::string gguf = write_gguf(s, build(Toy{}).writer);
  const std::string out = s.path("out");
  halo::create_directories(out);
  halo::write_file_atomic(out + "/notes.txt", "mine");
  std::string message = error_of([&] { halo::import_gguf(gguf, out, quiet()); });
  EXPECT_NE(message.find("exists and is not empty"), std::string::npos) << message;
  auto force = quiet();
  force.overwrite = true;
  message = error_of([&] { halo::import_gguf(gguf, out, force); });  // --force never deletes other data
  EXPECT_NE(message.find("not an earlier halo import"), std::string::npos) << message;
  EXPECT_EQ(halo::read_file(out + "/notes.txt"), "mine");

  const std::string imported = s.path("imported");
  halo::import_gguf(gguf, imported, quiet());
  message = error_of([&] { halo::import_gguf(gguf, imported, quiet()); });
  EXPECT_NE(message.find("--force"), std::string::npos) << message;
  halo::import_gguf(gguf, imported, force);  // replaces the earlier import
  EXPECT_TRUE(halo::is_regular_file(imported + "/model.safetensors"));
  for (const std::string& name : halo::list_directory(s.dir)) {
    EXPECT_TRUE(name == "model.gguf" || name == "out" || name == "imported") << name;
  }
}

TEST(GgufImport, DescribeSummarizesTheFile) {
  Scratch s;
  const std::string gguf = write_gguf(s, build(Toy{}).writer);
  EXPECT_TRUE(halo::is_gguf_file(gguf));
  EXPECT_FALSE(halo::is_gguf_file(s.dir));
  const std::string text = halo::describe_gguf(gguf);
  for (const char* needle : {"architecture   llama", "name           toy", "F32 x", "Q8_0 x2", "F16 x",
                             "layers         2, hidden 16, ffn 32", "2 heads, 1 kv heads, head_dim 8",
                             "context        128", "tied", "model gpt2, pre gpt2, 265 tokens, 5 merges"}) {
    EXPECT_NE(text.find(needle), std::string::npos) << needle << "\n" << text;
  }
}

// ---------------------------------------------------------------------------------------------
// The real SmolLM2-135M-Instruct (Q4_1), when present.

std::string smollm2_gguf() {
  if (const char* env = std::getenv("HALO_SMOLLM2_GGUF")) return env;
#ifdef HALO_SOURCE_DIR
  const std::string root = HALO_SOURCE_DIR;
#else  // built by hand: the checkout this file is in
  const std::string root = halo::parent_directory(halo::parent_directory(__FILE__));
#endif
  const std::string path = root + "/runs/teachers/smollm2-135m.gguf";
  return halo::is_regular_file(path) ? path : "";
}

TEST(GgufImportSmolLM2, ImportsConfigAndTokenizerAsTransformersReadsThem) {
  const std::string gguf = smollm2_gguf();
  if (gguf.empty()) {
    GTEST_SKIP() << "SmolLM2 GGUF not found: run scripts/fetch_teacher.sh smollm2 or set HALO_SMOLLM2_GGUF";
  }
  Scratch s;
  const std::string out = s.path("smollm2");
  const halo::GgufImportResult r = halo::import_gguf(gguf, out, quiet("bfloat16"));
  EXPECT_EQ(r.architecture, "llama");
  EXPECT_TRUE(r.tied_embeddings);
  EXPECT_EQ(r.tensors, 272);
  EXPECT_EQ(r.parameters, 134515008);
  const json c = read_json(out + "/config.json");
  EXPECT_EQ(c["num_hidden_layers"], 30);
  EXPECT_EQ(c["hidden_size"], 576);
  EXPECT_EQ(c["num_attention_heads"], 9);
  EXPECT_EQ(c["num_key_value_heads"], 3);
  EXPECT_EQ(c["head_dim"], 64);
  EXPECT_EQ(c["intermediate_size"], 1536);
  EXPECT_EQ(c["vocab_size"], 49152);
  EXPECT_EQ(c["max_position_embeddings"], 8192);
  EXPECT_DOUBLE_EQ(c["rope_theta"].get<double>(), 100000.0);
  EXPECT_EQ(c["tie_word_embeddings"], true);
  EXPECT_EQ(c["bos_token_id"], 1);
  EXPECT_EQ(c["eos_token_id"], 2);

  // Ids from transformers 4.57 (AutoTokenizer on the imported directory, which equal
  // llama.cpp's and the original SmolLM2 tokenizer's; scripts/smollm2_reference.py).
  const auto tokenizer = halo::load_tokenizer(out);
  EXPECT_EQ(tokenizer->vocab_size(), 49152);
  EXPECT_EQ(tokenizer->eos_id(), 2);
  const std::vector<std::pair<std::string, Ids>> cases = {
      {"The capital of France is", {504, 3575, 282, 4649, 314}},
      {"Hello world! 123", {19556, 905, 17, 216, 33, 34, 35}},
      {"12345 and 3.14159, 1,000,000",
       {33, 34, 35, 36, 37, 284, 216, 35, 30, 33, 36, 33, 37, 41, 28, 216, 33, 28, 32, 32, 32, 28, 32, 32, 32}},
      {"def f(x):\n    return x ** 2  # square\n\n\tprint(f(3))",
       {1604, 275, 24,   104,  727, 472,  1003, 1792, 1903, 216, 34,
        216,  907, 5222, 1116, 197, 3272, 24,   86,   24,   35,  1292}},
      {"Café déjà vu — naïve; 日本語; 😀👍🏽; русский",
       {51,    1939,  2756, 32564, 90,  16739, 386,  101,   1841,  15486, 46494, 43,
        17097, 241,   115,  40993, 179, 120,   248,  43,    40303, 218,   10813, 235,
        231,   10813, 233,  138,   43,  216,   9175, 14714, 9382,  39511, 7872,  24958}},
      {"  multiple   spaces\n\n\nnewlines\r\n trailing   ",
       {216, 2701, 256, 5600, 1116, 198, 2241, 5110, 2738, 35079, 333}},
      {"<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n",
       {1, 4093, 198, 26843, 17, 2, 198, 1, 520, 9531, 198}},
      {"It's we'll they've I'm SHE'S", {1589, 506, 392, 3060, 502, 3543, 339, 5248, 334, 4493, 23, 67}},
  };
  for (const auto& [text, ids] : cases) EXPECT_EQ(tokenizer->encode(text), ids) << text;
}

}  // namespace
