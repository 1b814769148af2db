// tests/reference/llama_ref.mjs: llama.cpp (node-llama-cpp 3.21.1's prebuilt CPU build) as a command-line
// reference for pg_infer's correctness tests and benchmarks. Prints one JSON object on stdout.
//
//   generate --model M --prompt-ids "1 2 3" -n N [--threads T] [--flash-attention off|on|auto]
//       {"ids": [...]}: llama.cpp's greedy continuation of exactly these ids (no BOS added). Sampling is
//       temperature 0, which node-llama-cpp maps to a chain holding only llama_sampler_init_greedy (plain
//       argmax of the logits): no repeat/frequency/presence penalty, DRY, XTC, top-k/p, min-p, token bias
//       or grammar, since none is passed. End-of-generation tokens are returned and generation goes on.
//   bench --model M --prompt N --gen N [--threads T] [--reps R] [--flash-attention auto|on|off]
//       {"prefill_tok_s": X, "decode_tok_s": Y}, best of R runs (default 3) on a fixed pseudo-random
//       prompt, model load and a warm-up excluded. Each run is one evaluate() from an empty sequence: its
//       first token arrives after the whole prompt went through one llama_decode (batch = ubatch >= N)
//       plus one argmax, which is timed as prefill; each later token is one single-token llama_decode plus
//       argmax, and N of those are timed as decode. node-llama-cpp's per-call overhead is in both.
//   tokenize --model M [--special] < text
//       {"ids": [...]}: llama.cpp's common_tokenize(text, add_special=false, parse_special) on a
//       vocabulary-only load (no BOS; SentencePiece vocabularies still get their leading-space prefix).
//
// Attention: node-llama-cpp's default is flashAttention "auto" (llama.cpp LLAMA_FLASH_ATTN_TYPE_AUTO, which
// resolves to enabled on the CPU backend). `generate` turns it off by default: llama.cpp's non-flash CPU
// path is the one our engine reproduces rounding for rounding (see kernels/cpu/attention.h); `bench`
// keeps llama.cpp's default. The KV cache is F16 for K and V (node-llama-cpp's default) in both.
//
// node-llama-cpp is loaded from $PG_INFER_NODE_MODULES, or else from node_modules beside this script
// (`npm ci` in tests/reference).
import path from "node:path";
import fs from "node:fs";
import {createRequire} from "node:module";
import {fileURLToPath, pathToFileURL} from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const modulesDir = path.resolve(process.env.PG_INFER_NODE_MODULES ?? path.join(here, "node_modules"));
let entry;
try {
  entry = createRequire(path.join(modulesDir, "noop.js")).resolve("node-llama-cpp");
} catch {
  fail(`node-llama-cpp is not installed in ${modulesDir} (run "npm ci" in tests/reference)`);
}
const {getLlama} = await import(pathToFileURL(entry).href);

function fail(message) {
  console.error(`llama_ref: ${message}`);
  process.exit(2);
}

// "--key value" pairs; a flag followed by another flag (or nothing) is "true".
const [command, ...rest] = process.argv.slice(2);
const opts = {};
for (let i = 0; i < rest.length; ++i) {
  if (!rest[i].startsWith("-")) fail(`unexpected argument "${rest[i]}"`);
  const key = rest[i].replace(/^-+/, "");
  const value = rest[i + 1] !== undefined && !rest[i + 1].startsWith("-") ? rest[++i] : "true";
  opts[key] = value;
}
if (!["generate", "bench", "tokenize"].includes(command) || !opts.model) {
  fail("usage: llama_ref.mjs generate|bench|tokenize --model M.gguf [options] (see the header comment)");
}
const threads = Number(opts.threads ?? 2);
function flashAttention(fallback) {
  const value = ({on: true, off: false, auto: "auto"})[opts["flash-attention"] ?? fallback];
  if (value === undefined) fail("--flash-attention takes on, off or auto");
  return value;
}

// maxThreads 0: no cap, so `threads` is the number of threads llama.cpp really runs with. A vocabulary-only
// file makes node-llama-cpp's memory estimate log "missing tensor" errors that are no failure: hidden.
const llama = await getLlama({
  gpu: false, build: "never", logLevel: command === "tokenize" ? "fatal" : "error", maxThreads: 0,
});

if (command === "tokenize") {
  const model = await llama.loadModel({modelPath: opts.model, vocabOnly: true});
  const text = fs.readFileSync(0, "utf8");
  console.log(JSON.stringify({ids: Array.from(model.tokenize(text, opts.special === "true"))}));
  await model.dispose();
  process.exit(0);
}

const model = await llama.loadModel({modelPath: opts.model});
const nVocab = model.fileInfo.tensorInfo?.find((t) => t.name === "token_embd.weight")?.dimensions[1] ??
  model.fileInfo.metadata.tokenizer.ggml.tokens.length;

// One sequence, context room for the whole run, and one batch (= one ubatch) big enough for the prompt.
async function makeContext(nPrompt, nGen, fa) {
  const contextSize = nPrompt + nGen + 16;
  return model.createContext({
    threads: {ideal: threads, min: threads}, sequences: 1, contextSize, batchSize: contextSize, flashAttention: fa,
  });
}

if (command === "generate") {
  if (!opts["prompt-ids"] || opts.n === undefined) fail('generate needs --prompt-ids "1 2 3" and -n N');
  const prompt = opts["prompt-ids"].trim().split(/[\s,]+/).map(Number);
  const n = Number(opts.n);
  if (prompt.some((id) => !Number.isInteger(id) || id < 0 || id >= nVocab)) fail(`prompt ids must be in [0, ${nVocab})`);
  const context = await makeContext(prompt.length, n, flashAttention("off"));
  const sequence = context.getSequence();
  const ids = [];
  if (n > 0) {
    for await (const id of sequence.evaluate(prompt, {temperature: 0, yieldEogToken: true})) {
      ids.push(id);
      if (ids.length >= n) break;
    }
  }
  console.log(JSON.stringify({ids}));
  await context.dispose();
} else {
  const nPrompt = Number(opts.prompt ?? 128);
  const nGen = Number(opts.gen ?? 32);
  // A fixed pseudo-random prompt of valid ids, clear of the low ids (specials and byte tokens).
  const low = Math.min(259, nVocab >> 1);
  const prompt = [];
  let x = 12345n;
  for (let i = 0; i < nPrompt; ++i) {
    x = (x * 6364136223846793005n + 1442695040888963407n) & 0xffffffffffffffffn;
    prompt.push(low + Number((x >> 33n) % BigInt(nVocab - low)));
  }
  const context = await makeContext(nPrompt, nGen, flashAttention("auto"));
  const sequence = context.getSequence();
  // Warm-up: weights paged in, both graph shapes (a batch, one token) built once.
  let warm = 0;
  for await (const id of sequence.evaluate(prompt.slice(0, 16), {temperature: 0, yieldEogToken: true})) {
    void id;
    if (++warm >= 3) break;
  }
  // Best of --reps timed runs (default 3), each from an empty sequence: on a shared machine a run is only
  // ever slowed down, never sped up, by the neighbours.
  const best = {prefill_tok_s: 0, decode_tok_s: 0};
  for (let rep = 0; rep < Number(opts.reps ?? 3); ++rep) {
    await sequence.clearHistory();
    const t0 = performance.now();
    let tFirst = 0;
    let produced = 0;
    for await (const id of sequence.evaluate(prompt, {temperature: 0, yieldEogToken: true})) {
      void id;
      if (produced === 0) tFirst = performance.now();
      if (++produced > nGen) break;  // the first token plus nGen decode steps
    }
    const tEnd = performance.now();
    best.prefill_tok_s = Math.max(best.prefill_tok_s, nPrompt / ((tFirst - t0) / 1000));
    best.decode_tok_s = Math.max(best.decode_tok_s, nGen / ((tEnd - tFirst) / 1000));
  }
  console.log(JSON.stringify(best));
  await context.dispose();
}
await model.dispose();
