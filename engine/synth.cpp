// engine/synth.cpp: synthetic models and type conversion of models.
#include "engine/synth.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <thread>
#include <vector>

#include "engine/arch.h"
#include "engine/gguf.h"
#include "engine/gguf_writer.h"
#include "engine/thread_pool.h"
#include "kernels/cpu/quant.h"

namespace pginfer {

namespace {

constexpr SynthShape kShapes[] = {
    // name            arch     embd  layers heads kv  ff     ctx    rope base  eps   tied   llama3
    {"tiny", "llama", 256, 2, 4, 2, 768, 2048, 10000.0f, 1e-5f, false, false},
    {"tiny-qwen2", "qwen2", 256, 2, 4, 2, 768, 4096, 1000000.0f, 1e-6f, true, false},
    {"tiny-llama3", "llama", 256, 2, 4, 1, 768, 8192, 500000.0f, 1e-5f, true, true},
    {"llama-160m", "llama", 768, 12, 12, 12, 3072, 2048, 10000.0f, 1e-6f, false, false},
    {"smollm-135m", "llama", 576, 30, 9, 3, 1536, 2048, 10000.0f, 1e-5f, true, false},
    {"tinyllama-1.1b", "llama", 2048, 22, 32, 4, 5632, 2048, 10000.0f, 1e-5f, false, false},
    {"qwen2-0.5b", "qwen2", 896, 24, 14, 2, 4864, 32768, 1000000.0f, 1e-6f, true, false},
};

// Rows generated per independently seeded chunk (fixed, so files do not depend on the thread count).
constexpr int64_t kRowsPerChunk = 64;

// splitmix64: our portable generator.
struct Rng {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in (0, 1].
  double uniform() { return ((double)(next() >> 11) + 1.0) * (1.0 / 9007199254740992.0); }
  // Two independent standard normal values (Box-Muller).
  void normal2(float* a, float* b) {
    const double r = std::sqrt(-2.0 * std::log(uniform()));
    const double t = 6.283185307179586 * uniform();
    *a = (float)(r * std::cos(t));
    *b = (float)(r * std::sin(t));
  }
};

uint64_t hash_name(const std::string& s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ull;
  return h;
}

// The type a matrix with rows of `ne0` values is written as when `wanted` is asked for.
TensorType storable_type(TensorType wanted, int64_t ne0) {
  if (ne0 % type_traits(wanted)->block_elems == 0) return wanted;
  if (ne0 % kQK8_0 == 0) return TensorType::Q8_0;
  return TensorType::F16;
}

// How a tensor's float values are made.
struct Init {
  float mean = 0.0f;   // added to every value
  float stddev = 0.0f; // of the normal part
};

// Fills `dst` with the tensor's rows, generated from (seed, name) and stored as `type`, in parallel.
Status fill_random(ThreadPool& pool, uint64_t seed, const std::string& name, TensorType type, int64_t ne0,
                   int64_t rows, Init init, uint8_t* dst) {
  const size_t stride = row_bytes(type, ne0);
  const int64_t n_chunks = (rows + kRowsPerChunk - 1) / kRowsPerChunk;
  const uint64_t tensor_seed = seed * 0x9e3779b97f4a7c15ull ^ hash_name(name);
  pool.parallel_for(n_chunks, [&](int64_t chunk, int) {
    Rng rng{tensor_seed + (uint64_t)chunk * 0xd1b54a32d192ed03ull};
    std::vector<float> row(ne0 + 1);
    const int64_t r1 = std::min(rows, (chunk + 1) * kRowsPerChunk);
    for (int64_t r = chunk * kRowsPerChunk; r < r1; ++r) {
      for (int64_t i = 0; i < ne0; i += 2) rng.normal2(&row[i], &row[i + 1]);
      for (int64_t i = 0; i < ne0; ++i) row[i] = init.mean + init.stddev * row[i];
      quantize_row(type, row.data(), dst + r * stride, ne0);
    }
  });
  return Status::ok_status();
}

int resolve_threads(int threads) {
  return threads > 0 ? threads : (int)std::max(1u, std::thread::hardware_concurrency());
}

// Llama 3's rope frequency divisors for n_rot dimensions, as its converter computes them.
std::vector<float> llama3_rope_factors(int64_t n_rot, float base) {
  const double factor = 8.0, low_freq_factor = 1.0, high_freq_factor = 4.0, original_ctx = 8192.0;
  const double low_wavelen = original_ctx / low_freq_factor;
  const double high_wavelen = original_ctx / high_freq_factor;
  std::vector<float> out;
  for (int64_t i = 0; i < n_rot; i += 2) {
    const double freq = 1.0 / std::pow((double)base, (double)i / (double)n_rot);
    const double wavelen = 2.0 * M_PI / freq;
    if (wavelen < high_wavelen) {
      out.push_back(1.0f);
    } else if (wavelen > low_wavelen) {
      out.push_back((float)factor);
    } else {
      const double smooth = (original_ctx / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
      out.push_back((float)(1.0 / ((1.0 - smooth) / factor + smooth)));
    }
  }
  return out;
}

}  // namespace

const SynthShape* find_synth_shape(const std::string& name) {
  for (const SynthShape& s : kShapes) {
    if (name == s.name) return &s;
  }
  return nullptr;
}

std::string synth_shape_names() {
  std::string out;
  for (const SynthShape& s : kShapes) out += (out.empty() ? "" : ", ") + std::string(s.name);
  return out;
}

uint32_t file_type_for(TensorType type) {
  switch (type) {
    case TensorType::F32: return 0;
    case TensorType::F16: return 1;
    case TensorType::Q4_0: return 2;
    case TensorType::Q8_0: return 7;
    case TensorType::Q4_K: return 14;  // Q4_K_S: every matrix Q4_K
    case TensorType::Q5_K: return 16;  // Q5_K_S
    case TensorType::Q6_K: return 18;
    case TensorType::BF16: return 32;
    default: return 0;
  }
}

Status write_synthetic_model(const SynthOptions& o, const std::string& out_path) {
  const SynthShape* shape = find_synth_shape(o.shape);
  if (shape == nullptr) {
    return invalid_argument("unknown shape \"" + o.shape + "\" (known: " + synth_shape_names() + ")");
  }
  if (o.type == TensorType::Q8_K || type_traits(o.type) == nullptr) {
    return invalid_argument(std::string("type ") + type_name(o.type) + " cannot store weights");
  }
  std::unique_ptr<GgufFile> vocab;
  PGI_RETURN_IF_ERROR(GgufFile::open(o.vocab_path, &vocab));
  const GgufValue* tokens = vocab->find("tokenizer.ggml.tokens");
  if (tokens == nullptr || tokens->type != GgufValueType::ARRAY || tokens->array_type != GgufValueType::STRING ||
      tokens->array_count == 0) {
    return corrupt_file("\"" + o.vocab_path + "\": no tokenizer.ggml.tokens array");
  }
  const int64_t n_vocab = (int64_t)tokens->array_count;
  const SynthShape& s = *shape;
  const std::string a = s.arch;
  const int64_t head_dim = s.n_embd / s.n_head;

  GgufWriter w;
  w.set_string("general.architecture", a);
  w.set_string("general.name", std::string("synthetic ") + s.name);
  w.set_u32("general.file_type", file_type_for(o.type));
  w.set_u32(a + ".context_length", (uint32_t)s.n_ctx);
  w.set_u32(a + ".embedding_length", (uint32_t)s.n_embd);
  w.set_u32(a + ".block_count", (uint32_t)s.n_layer);
  w.set_u32(a + ".feed_forward_length", (uint32_t)s.n_ff);
  w.set_u32(a + ".attention.head_count", (uint32_t)s.n_head);
  w.set_u32(a + ".attention.head_count_kv", (uint32_t)s.n_head_kv);
  w.set_f32(a + ".attention.layer_norm_rms_epsilon", s.norm_eps);
  w.set_f32(a + ".rope.freq_base", s.rope_base);
  w.set_u32(a + ".rope.dimension_count", (uint32_t)head_dim);
  w.set_u32(a + ".vocab_size", (uint32_t)n_vocab);
  for (const std::string& key : vocab->keys()) {
    if (key.rfind("tokenizer.", 0) == 0) w.copy_value(key, *vocab->find(key));
  }

  ThreadPool pool(resolve_threads(o.threads));
  const uint64_t seed = o.seed;
  // Declares a tensor of ne0 x rows (rows == 0: 1-D) initialised by `init`.
  auto add = [&](const std::string& name, int64_t ne0, int64_t rows, Init init) {
    const bool matrix = rows > 0;
    const TensorType type = matrix ? storable_type(o.type, ne0) : TensorType::F32;
    std::vector<int64_t> ne = matrix ? std::vector<int64_t>{ne0, rows} : std::vector<int64_t>{ne0};
    w.add_tensor(name, type, ne, [&pool, seed, name, type, ne0, rows, init](uint8_t* dst, size_t) {
      return fill_random(pool, seed, name, type, ne0, rows > 0 ? rows : 1, init, dst);
    });
  };
  // Logits come out with a standard deviation of about 4. With a separate output matrix the embeddings
  // are of unit scale. A tied matrix must stay small (0.8 / sqrt(n_embd)): large embeddings make every
  // token's logit peak at itself (e.x ~ |e|^2), and the model would only echo its input; the final norm's
  // weights of about 5 then restore the logit scale.
  const float sqrt_embd = std::sqrt((float)s.n_embd);
  const float embd_std = s.tied_output ? 0.8f / sqrt_embd : 1.0f;
  const Init norm_init{1.0f, 0.1f};
  add("token_embd.weight", s.n_embd, n_vocab, {0.0f, embd_std});
  add("output_norm.weight", s.n_embd, 0, s.tied_output ? Init{5.0f, 0.5f} : norm_init);
  if (!s.tied_output) add("output.weight", s.n_embd, n_vocab, {0.0f, 4.0f / std::sqrt((float)s.n_embd)});
  if (s.llama3_rope) {
    std::vector<float> factors = llama3_rope_factors(head_dim, s.rope_base);
    w.add_tensor("rope_freqs.weight", TensorType::F32, {(int64_t)factors.size()},
                 [factors](uint8_t* dst, size_t n) {
                   std::memcpy(dst, factors.data(), n);
                   return Status::ok_status();
                 });
  }
  const bool biases = find_arch(a)->attn_qkv_bias;
  const int64_t q_dim = s.n_head * head_dim, kv_dim = s.n_head_kv * head_dim;
  for (int64_t il = 0; il < s.n_layer; ++il) {
    const std::string b = "blk." + std::to_string(il) + ".";
    add(b + "attn_norm.weight", s.n_embd, 0, norm_init);
    add(b + "attn_q.weight", s.n_embd, q_dim, {0.0f, 1.0f / std::sqrt((float)s.n_embd)});
    add(b + "attn_k.weight", s.n_embd, kv_dim, {0.0f, 1.0f / std::sqrt((float)s.n_embd)});
    add(b + "attn_v.weight", s.n_embd, kv_dim, {0.0f, 1.0f / std::sqrt((float)s.n_embd)});
    if (biases) {
      add(b + "attn_q.bias", q_dim, 0, {0.0f, 0.2f});
      add(b + "attn_k.bias", kv_dim, 0, {0.0f, 0.2f});
      add(b + "attn_v.bias", kv_dim, 0, {0.0f, 0.05f});
    }
    add(b + "attn_output.weight", q_dim, s.n_embd, {0.0f, 1.0f / std::sqrt((float)q_dim)});
    add(b + "ffn_norm.weight", s.n_embd, 0, norm_init);
    add(b + "ffn_gate.weight", s.n_embd, s.n_ff, {0.0f, 1.0f / std::sqrt((float)s.n_embd)});
    add(b + "ffn_up.weight", s.n_embd, s.n_ff, {0.0f, 1.0f / std::sqrt((float)s.n_embd)});
    add(b + "ffn_down.weight", s.n_ff, s.n_embd, {0.0f, 1.0f / std::sqrt((float)s.n_ff)});
  }
  return w.write(out_path);
}

Status convert_model(const std::string& in_path, const std::string& out_path, TensorType type, int threads) {
  if (type == TensorType::Q8_K || type_traits(type) == nullptr) {
    return invalid_argument(std::string("type ") + type_name(type) + " cannot store weights");
  }
  std::unique_ptr<GgufFile> in;
  PGI_RETURN_IF_ERROR(GgufFile::open(in_path, &in));
  GgufWriter w;
  for (const std::string& key : in->keys()) w.copy_value(key, *in->find(key));
  w.set_u32("general.file_type", file_type_for(type));
  ThreadPool pool(resolve_threads(threads));
  for (const GgufTensor& t : in->tensors()) {
    const bool matrix = t.n_dims >= 2;
    const TensorType to = matrix ? storable_type(type, t.ne[0]) : t.type;
    std::vector<int64_t> ne(t.ne, t.ne + t.n_dims);
    const GgufTensor* src = &t;
    w.add_tensor(t.name, to, ne, [&pool, src, to](uint8_t* dst, size_t n_bytes) {
      if (to == src->type) {
        std::memcpy(dst, src->data, n_bytes);
        return Status::ok_status();
      }
      const int64_t ne0 = src->ne[0], rows = src->n_rows();
      const size_t in_stride = row_bytes(src->type, ne0), out_stride = row_bytes(to, ne0);
      const int64_t n_chunks = (rows + kRowsPerChunk - 1) / kRowsPerChunk;
      pool.parallel_for(n_chunks, [&](int64_t chunk, int) {
        std::vector<float> row(ne0);
        for (int64_t r = chunk * kRowsPerChunk; r < std::min(rows, (chunk + 1) * kRowsPerChunk); ++r) {
          dequantize_row(src->type, src->data + r * in_stride, row.data(), ne0);
          quantize_row(to, row.data(), dst + r * out_stride, ne0);
        }
      });
      return Status::ok_status();
    });
  }
  return w.write(out_path);
}

}  // namespace pginfer
