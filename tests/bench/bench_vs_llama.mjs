// tests/bench/bench_vs_llama.mjs: decode and prefill speed of `infer bench` against llama.cpp on the same
// file, in one run, printing both and the ratios (a benchmark: it asserts nothing).
//
// usage: node bench_vs_llama.mjs --infer PATH --shared DIR [--shape tinyllama-1.1b] [--type Q8_0]
//        [--prompt 128] [--gen 32] [--threads 2] [--model FILE] [--rounds 2]
import {execFileSync} from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {fileURLToPath} from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, a, i, all) => (a.startsWith("--") ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), [])
);
const shape = args.shape ?? "tinyllama-1.1b";
const type = args.type ?? "Q8_0";
const nPrompt = args.prompt ?? "128";
const nGen = args.gen ?? "32";
const threads = args.threads ?? "2";
const rounds = Number(args.rounds ?? 2);
const run = (cmd, argv) => execFileSync(cmd, argv, {encoding: "utf8", maxBuffer: 1 << 26});

let model = args.model;
if (!model) {
  const dir = path.join(os.tmpdir(), "pginfer-bench");
  fs.mkdirSync(dir, {recursive: true});
  model = path.join(dir, `${shape}-${type}.gguf`);
  if (!fs.existsSync(model)) {
    const vocab = path.join(args.shared, "vocab", shape.includes("qwen2") ? "ggml-vocab-gpt-2.gguf" : "ggml-vocab-llama-spm.gguf");
    run(args.infer, ["synth", "--shape", shape, "--type", type, "--vocab", vocab, "-o", model]);
  }
}

// Alternate the two engines so that machine noise hits both alike; keep each one's best round.
const best = {ours: {prefill_tok_s: 0, decode_tok_s: 0}, llama: {prefill_tok_s: 0, decode_tok_s: 0}};
for (let r = 0; r < rounds; ++r) {
  const ours = JSON.parse(run(args.infer, ["bench", "-m", model, "--prompt", nPrompt, "--gen", nGen, "--threads", threads, "--json"]));
  const llama = JSON.parse(run("node", [path.join(here, "..", "reference", "llama_ref.mjs"), "bench", "--model", model, "--prompt", nPrompt, "--gen", nGen, "--threads", threads]));
  for (const [who, res] of [["ours", ours], ["llama", llama]]) {
    for (const k of ["prefill_tok_s", "decode_tok_s"]) best[who][k] = Math.max(best[who][k], res[k]);
  }
  console.log(`round ${r + 1}: ours ${JSON.stringify(ours)}  llama.cpp ${JSON.stringify(llama)}`);
}
const fmt = (x) => x.toFixed(2).padStart(9);
console.log(`model ${path.basename(model)}, prompt ${nPrompt}, gen ${nGen}, threads ${threads}`);
console.log(`               ours  llama.cpp   ratio`);
console.log(`prefill  ${fmt(best.ours.prefill_tok_s)} ${fmt(best.llama.prefill_tok_s)}   ${(best.ours.prefill_tok_s / best.llama.prefill_tok_s).toFixed(2)}x  tok/s`);
console.log(`decode   ${fmt(best.ours.decode_tok_s)} ${fmt(best.llama.decode_tok_s)}   ${(best.ours.decode_tok_s / best.llama.decode_tok_s).toFixed(2)}x  tok/s`);
