// tests/fuzz/fuzz_gguf.cpp: libFuzzer target for the GGUF reader: any byte string must give either a
// validated file whose every view stays inside the input, or an error; never a crash or a hang.
#include <cstddef>
#include <cstdint>
#include <memory>

#include "engine/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::unique_ptr<pginfer::GgufFile> file;
  pginfer::Status st = pginfer::GgufFile::open_memory(data, size, "fuzz.gguf", &file);
  if (!st.ok()) return 0;
  // Touch everything the reader handed out: keys, strings, arrays, tensor bytes.
  volatile uint64_t sink = 0;
  for (const std::string& key : file->keys()) {
    const pginfer::GgufValue* v = file->find(key);
    sink = sink + v->str.size() + v->array_count;
    for (std::string_view s : v->array_strings) sink = sink + (s.empty() ? 0 : (uint8_t)s.back());
    if (v->array_data != nullptr && v->array_count > 0) sink = sink + v->array_data[0];
  }
  for (const pginfer::GgufTensor& t : file->tensors()) {
    if (t.n_bytes > 0) sink = sink + t.data[0] + t.data[t.n_bytes - 1];
  }
  return 0;
}
