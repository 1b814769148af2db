// tests/unit/test_models.h: synthetic model files shared by the engine tests, written once per process
// into a temporary folder.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>

#include "engine/synth.h"

namespace pginfer::testing {

// ../shared, as the build configured it, unless $PG_INFER_SHARED_DIR names another copy (a test binary run
// on another machine, as the GPU suites are).
inline std::string shared_dir() {
  const char* env = std::getenv("PG_INFER_SHARED_DIR");
  return env != nullptr && *env ? env : PG_INFER_SHARED_DIR;
}

// A folder for this test process's files, removed when the process exits.
inline const std::string& test_dir() {
  static const std::string dir = [] {
    std::string templ = (std::filesystem::temp_directory_path() / "pginfer-test-XXXXXX").string();
    std::string made(mkdtemp(templ.data()));
    static std::string to_remove;
    to_remove = made;
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(to_remove, ignored);
    });
    return made;
  }();
  return dir;
}

// Path of a synthetic model of `shape` and `type` with the Llama 2 vocabulary (or gpt-2's for qwen2
// shapes), written on first use; aborts the test binary if it cannot be written.
inline std::string synthetic_model(const std::string& shape, TensorType type) {
  static std::map<std::string, std::string> cache;
  const std::string key = shape + "-" + type_name(type);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  SynthOptions o;
  o.shape = shape;
  o.type = type;
  o.seed = 7;
  o.vocab_path = shared_dir() + (shape.find("qwen2") != std::string::npos ? "/vocab/ggml-vocab-gpt-2.gguf"
                                                                           : "/vocab/ggml-vocab-llama-spm.gguf");
  const std::string path = test_dir() + "/" + key + ".gguf";
  Status st = write_synthetic_model(o, path);
  if (!st.ok()) {
    fprintf(stderr, "cannot write test model: %s\n", st.message().c_str());
    std::abort();
  }
  cache[key] = path;
  return path;
}

}  // namespace pginfer::testing
