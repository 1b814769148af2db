// engine/arch.cpp: the rows of the architecture table.
#include "engine/arch.h"

namespace pginfer {

namespace {

// One row per family. llama covers Llama 2/3, Mistral, TinyLlama and SmolLM (GQA, rope scaling and tied
// output all come from the file); qwen2 adds q/k/v biases and NEOX rope.
constexpr ArchOptions kArchTable[] = {
    {"llama", RopeStyle::Normal, false, false, true, 10000.0, 1e-5},
    {"qwen2", RopeStyle::Neox, true, false, true, 10000.0, 1e-6},
};

}  // namespace

const ArchOptions* find_arch(std::string_view name) {
  for (const ArchOptions& arch : kArchTable) {
    if (name == arch.name) return &arch;
  }
  return nullptr;
}

const char* supported_arch_names() { return "llama, qwen2"; }

}  // namespace pginfer
