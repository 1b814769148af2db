// tests/reference/llama_ref.mjs: llama.cpp (node-llama-cpp's CPU build) as a command-line reference.
//
//   generate --model M --prompt-ids "1 2 3" -n N [--threads T] [--flash-attention on|off]
//       prints {"ids": [...]}: llama.cpp's greedy continuation (temperature 0, no penalties, no BOS added)
//   bench --model M --prompt N --gen N [--threads T]
//       prints {"prefill_tok_s": X, "decode_tok_s": Y}: an N-token prompt as one batch, then N decode steps
//
// `generate` turns flash attention off by default: llama.cpp's non-flash CPU path is the one our engine
// reproduces rounding for rounding (see kernels/cpu/attention.h). `bench` keeps llama.cpp's defaults.
// node-llama-cpp is loaded from $PG_INFER_NODE_MODULES, or from node_modules beside this script.
import path from "node:path";
import {createRequire} from "node:module";
import {fileURLToPath, pathToFileURL} from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const modulesDir = process.env.PG_INFER_NODE_MODULES ?? path.join(here, "node_modules");
const require = createRequire(path.join(modulesDir, "noop.js"));
let entry;
try {
  entry = require.resolve("node-llama-cpp");
} catch {
  console.error(`llama_ref: node-llama-cpp is not installed in ${modulesDir} (run "npm ci" in tests/reference)`);
  process.exit(2);
}
const {getLlama} = await import(pathToFileURL(entry).href);

const [command, ...rest] = process.argv.slice(2);
const opts = {};
for (let i = 0; i < rest.length; i += 2) opts[rest[i].replace(/^-+/, "")] = rest[i + 1];
const threads = Number(opts.threads ?? 2);

const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath: opts.model});

if (command === "generate") {
  const prompt = opts["prompt-ids"].trim().split(/[\s,]+/).map(Number);
  const n = Number(opts.n);
  const context = await model.createContext({
    threads, sequences: 1, contextSize: prompt.length + n + 16, batchSize: Math.max(512, prompt.length),
    flashAttention: (opts["flash-attention"] ?? "off") === "on",
  });
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
} else if (command === "bench") {
  const nPrompt = Number(opts.prompt ?? 128);
  const nGen = Number(opts.gen ?? 32);
  const vocab = model.tokens.size ?? 32000;
  const prompt = [];
  let x = 12345n;
  for (let i = 0; i < nPrompt; ++i) {
    x = (x * 6364136223846793005n + 1442695040888963407n) & 0xffffffffffffffffn;
    prompt.push(Number((x >> 33n) % BigInt(vocab)));
  }
  const context = await model.createContext({threads, sequences: 1, contextSize: nPrompt + nGen + 16, batchSize: Math.max(512, nPrompt)});
  const sequence = context.getSequence();
  // Warm-up: touch every weight once, then clear the sequence.
  for await (const id of sequence.evaluate(prompt.slice(0, 16), {temperature: 0, yieldEogToken: true})) { void id; break; }
  await sequence.clearHistory();
  // The first generated token arrives after the whole prompt has been evaluated as one batch (plus one
  // sampling step); every later token is one decode step.
  const t0 = performance.now();
  let tFirst = 0;
  let produced = 0;
  for await (const id of sequence.evaluate(prompt, {temperature: 0, yieldEogToken: true})) {
    void id;
    if (produced === 0) tFirst = performance.now();
    if (++produced > nGen) break;
  }
  const tEnd = performance.now();
  console.log(JSON.stringify({
    prefill_tok_s: nPrompt / ((tFirst - t0) / 1000),
    decode_tok_s: nGen / ((tEnd - tFirst) / 1000),
  }));
  await context.dispose();
} else {
  console.error("usage: llama_ref.mjs generate|bench --model M ...");
  process.exit(2);
}
await model.dispose();
