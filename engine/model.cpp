// engine/model.cpp: reading hyperparameters and binding weights, with every shape checked.
#include "engine/model.h"

#include <atomic>
#include <cmath>
#include <map>

namespace pginfer {

namespace {

// Upper bounds that keep every later size computation far from overflow; real models are far below.
constexpr int64_t kMaxDim = 1 << 20;
constexpr int64_t kMaxLayers = 4096;
constexpr int64_t kMaxHeads = 4096;
constexpr int64_t kMaxContext = 1 << 24;

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

// Model::serial(): counts the models of the process.
uint64_t next_model_serial() {
  static std::atomic<uint64_t> last{0};
  return ++last;
}

}  // namespace

Model::Model() : serial_(next_model_serial()) {}

Status Model::load(const std::string& path, std::unique_ptr<Model>* out) {
  std::unique_ptr<GgufFile> file;
  PGI_RETURN_IF_ERROR(GgufFile::open(path, &file));
  return from_file(std::move(file), out);
}

Status Model::from_file(std::unique_ptr<GgufFile> file, std::unique_ptr<Model>* out) {
  std::unique_ptr<Model> model(new Model());
  model->file_ = std::move(file);
  PGI_RETURN_IF_ERROR(model->read_config());
  PGI_RETURN_IF_ERROR(model->bind_weights());
  *out = std::move(model);
  return Status::ok_status();
}

Status Model::read_config() {
  const GgufFile& f = *file_;
  const std::string where = quoted(f.path()) + ": ";
  ModelConfig& c = config_;
  if (!f.get_string("general.architecture", &c.arch_name)) {
    return corrupt_file(where + "missing metadata key general.architecture");
  }
  c.arch = find_arch(c.arch_name);
  if (c.arch == nullptr) {
    return unsupported(where + "unsupported architecture " + quoted(c.arch_name) + " (supported: " +
                       supported_arch_names() + ")");
  }
  const std::string p = c.arch_name + ".";

  // Reads an integer key into *v; `required` makes absence an error. Range-checks into [lo, hi].
  auto read_int = [&](const std::string& key, int64_t* v, bool required, int64_t lo, int64_t hi) -> Status {
    const GgufValue* val = f.find(key);
    if (val == nullptr) {
      return required ? corrupt_file(where + "missing metadata key " + key) : Status::ok_status();
    }
    int64_t x = 0;
    if (!f.get_i64(key, &x)) return corrupt_file(where + "metadata key " + key + " is not an integer");
    if (x < lo || x > hi) {
      return corrupt_file(where + "metadata key " + key + " = " + std::to_string(x) + " is out of range [" +
                          std::to_string(lo) + ", " + std::to_string(hi) + "]");
    }
    *v = x;
    return Status::ok_status();
  };
  // Reads a float key into *v when present; must be finite and in [lo, hi].
  auto read_float = [&](const std::string& key, float* v, double lo, double hi) -> Status {
    if (f.find(key) == nullptr) return Status::ok_status();
    double x = 0;
    if (!f.get_f64(key, &x)) return corrupt_file(where + "metadata key " + key + " is not a number");
    if (!std::isfinite(x) || x < lo || x > hi) {
      return corrupt_file(where + "metadata key " + key + " has an invalid value " + std::to_string(x));
    }
    *v = (float)x;
    return Status::ok_status();
  };

  PGI_RETURN_IF_ERROR(read_int(p + "embedding_length", &c.n_embd, true, 1, kMaxDim));
  PGI_RETURN_IF_ERROR(read_int(p + "block_count", &c.n_layer, true, 1, kMaxLayers));
  PGI_RETURN_IF_ERROR(read_int(p + "feed_forward_length", &c.n_ff, true, 1, kMaxDim));
  PGI_RETURN_IF_ERROR(read_int(p + "attention.head_count", &c.n_head, true, 1, kMaxHeads));
  c.n_head_kv = c.n_head;
  PGI_RETURN_IF_ERROR(read_int(p + "attention.head_count_kv", &c.n_head_kv, false, 1, kMaxHeads));
  c.n_ctx_train = 2048;
  PGI_RETURN_IF_ERROR(read_int(p + "context_length", &c.n_ctx_train, false, 1, kMaxContext));
  if (c.n_head % c.n_head_kv != 0) {
    return corrupt_file(where + "attention.head_count " + std::to_string(c.n_head) +
                        " is not a multiple of attention.head_count_kv " + std::to_string(c.n_head_kv));
  }
  c.head_dim = c.n_embd / c.n_head;
  PGI_RETURN_IF_ERROR(read_int(p + "attention.key_length", &c.head_dim, false, 2, kMaxDim));
  int64_t value_length = c.head_dim;
  PGI_RETURN_IF_ERROR(read_int(p + "attention.value_length", &value_length, false, 2, kMaxDim));
  if (value_length != c.head_dim) {
    return unsupported(where + "attention.value_length differs from attention.key_length");
  }
  if (c.head_dim < 2 || c.head_dim % 2 != 0 || c.head_dim * c.n_head > kMaxDim) {
    return corrupt_file(where + "invalid head dimension " + std::to_string(c.head_dim));
  }
  c.n_rot = c.head_dim;
  PGI_RETURN_IF_ERROR(read_int(p + "rope.dimension_count", &c.n_rot, false, 2, c.head_dim));
  if (c.n_rot % 2 != 0) return corrupt_file(where + "rope.dimension_count must be even");

  c.norm_eps = (float)c.arch->default_norm_eps;
  PGI_RETURN_IF_ERROR(read_float(p + "attention.layer_norm_rms_epsilon", &c.norm_eps, 0.0, 1.0));
  c.rope_freq_base = (float)c.arch->default_rope_base;
  PGI_RETURN_IF_ERROR(read_float(p + "rope.freq_base", &c.rope_freq_base, 1.0, 1e12));

  std::string scaling;
  if (f.get_string(p + "rope.scaling.type", &scaling)) c.rope_scaling = scaling;
  float factor = 1.0f;
  PGI_RETURN_IF_ERROR(read_float(p + "rope.scaling.factor", &factor, 0.0, 1e6));
  if (c.rope_scaling == "linear") {
    if (factor <= 0.0f) return corrupt_file(where + "rope.scaling.factor must be positive");
    c.rope_freq_scale = 1.0f / factor;
  } else if (c.rope_scaling != "none" && c.rope_scaling != "llama3") {
    return unsupported(where + "unsupported rope scaling type " + quoted(c.rope_scaling));
  }
  // The older key rope.scale_linear means linear scaling too.
  float scale_linear = 0.0f;
  PGI_RETURN_IF_ERROR(read_float(p + "rope.scale_linear", &scale_linear, 0.0, 1e6));
  if (scale_linear > 0.0f) c.rope_freq_scale = 1.0f / scale_linear;
  return Status::ok_status();
}

Status Model::bind_weights() {
  const GgufFile& f = *file_;
  const ModelConfig& c = config_;
  const std::string where = quoted(f.path()) + ": ";

  // Finds tensor `name` and checks its shape (ne0 = row length, ne1 = rows; ne1 == 0 means 1-D).
  auto bind = [&](const std::string& name, int64_t ne0, int64_t ne1, bool required,
                  const GgufTensor** slot) -> Status {
    const GgufTensor* t = f.tensor(name);
    if (t == nullptr) {
      return required ? corrupt_file(where + "missing tensor " + name) : Status::ok_status();
    }
    const int want_dims = ne1 == 0 ? 1 : 2;
    const bool shape_ok = (t->n_dims == want_dims || (want_dims == 1 && t->n_rows() == 1)) &&
                          t->ne[0] == ne0 && t->ne[1] == (ne1 == 0 ? 1 : ne1) && t->ne[2] == 1 &&
                          t->ne[3] == 1;
    if (!shape_ok) {
      std::string got = std::to_string(t->ne[0]);
      for (int d = 1; d < t->n_dims; ++d) got += " x " + std::to_string(t->ne[d]);
      std::string want = std::to_string(ne0) + (ne1 ? " x " + std::to_string(ne1) : "");
      return corrupt_file(where + "tensor " + name + " has shape " + got + ", expected " + want);
    }
    *slot = t;
    return Status::ok_status();
  };

  const GgufTensor* embd = f.tensor("token_embd.weight");
  if (embd == nullptr) return corrupt_file(where + "missing tensor token_embd.weight");
  config_.n_vocab = embd->ne[1];
  if (config_.n_vocab < 1 || config_.n_vocab > (int64_t)1 << 24) {
    return corrupt_file(where + "token_embd.weight has an invalid vocabulary size");
  }
  PGI_RETURN_IF_ERROR(bind("token_embd.weight", c.n_embd, c.n_vocab, true, &token_embd_));
  PGI_RETURN_IF_ERROR(bind("output_norm.weight", c.n_embd, 0, true, &output_norm_));
  PGI_RETURN_IF_ERROR(bind("output.weight", c.n_embd, c.n_vocab, !c.arch->output_may_be_tied, &output_));
  if (output_ == nullptr) output_ = token_embd_;
  PGI_RETURN_IF_ERROR(bind("rope_freqs.weight", c.n_rot / 2, 0, false, &rope_freqs_));

  layers_.resize(c.n_layer);
  for (int64_t il = 0; il < c.n_layer; ++il) {
    LayerWeights& L = layers_[il];
    const std::string b = "blk." + std::to_string(il) + ".";
    const bool qkv_bias = c.arch->attn_qkv_bias;
    PGI_RETURN_IF_ERROR(bind(b + "attn_norm.weight", c.n_embd, 0, true, &L.attn_norm));
    PGI_RETURN_IF_ERROR(bind(b + "attn_q.weight", c.n_embd, c.q_dim(), true, &L.wq));
    PGI_RETURN_IF_ERROR(bind(b + "attn_k.weight", c.n_embd, c.kv_dim(), true, &L.wk));
    PGI_RETURN_IF_ERROR(bind(b + "attn_v.weight", c.n_embd, c.kv_dim(), true, &L.wv));
    PGI_RETURN_IF_ERROR(bind(b + "attn_output.weight", c.q_dim(), c.n_embd, true, &L.wo));
    PGI_RETURN_IF_ERROR(bind(b + "attn_q.bias", c.q_dim(), 0, qkv_bias, &L.bq));
    PGI_RETURN_IF_ERROR(bind(b + "attn_k.bias", c.kv_dim(), 0, qkv_bias, &L.bk));
    PGI_RETURN_IF_ERROR(bind(b + "attn_v.bias", c.kv_dim(), 0, qkv_bias, &L.bv));
    PGI_RETURN_IF_ERROR(bind(b + "attn_output.bias", c.n_embd, 0, false, &L.bo));
    PGI_RETURN_IF_ERROR(bind(b + "ffn_norm.weight", c.n_embd, 0, true, &L.ffn_norm));
    PGI_RETURN_IF_ERROR(bind(b + "ffn_gate.weight", c.n_embd, c.n_ff, true, &L.ffn_gate));
    PGI_RETURN_IF_ERROR(bind(b + "ffn_up.weight", c.n_embd, c.n_ff, true, &L.ffn_up));
    PGI_RETURN_IF_ERROR(bind(b + "ffn_down.weight", c.n_ff, c.n_embd, true, &L.ffn_down));
  }
  return Status::ok_status();
}

int64_t Model::parameter_count() const {
  int64_t n = 0;
  for (const GgufTensor& t : file_->tensors()) n += t.n_elements();
  return n;
}

TensorType Model::main_weight_type() const {
  std::map<TensorType, int64_t> by_type;
  for (const GgufTensor& t : file_->tensors()) {
    if (t.n_dims >= 2) by_type[t.type] += t.n_elements();
  }
  TensorType best = TensorType::F32;
  int64_t best_n = -1;
  for (const auto& [type, n] : by_type) {
    if (n > best_n) best = type, best_n = n;
  }
  return best;
}

}  // namespace pginfer
