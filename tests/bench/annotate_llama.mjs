// tests/bench/annotate_llama.mjs: llama.cpp's side of bench_serving.sh's annotation figure. The same rows
// (token ids in a JSON file, one array per row) on the same GGUF, greedy, `--gen` new tokens each, spread
// over `--sequences` parallel sequences of one context; each sequence keeps its history so that the shared
// instruction is reused (compareContextTokens + eraseContextTokenRanges), as the issue describes.
// Prints {"rows": N, "seconds": S, "rows_per_s": R}.
//   node annotate_llama.mjs --model M.gguf --rows rows.json [--gen 8] [--sequences 16] [--threads 2]
import fs from "node:fs";
import path from "node:path";
import {createRequire} from "node:module";
import {fileURLToPath} from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "../reference/package.json"));
const {getLlama} = await import(require.resolve("node-llama-cpp"));

const opts = {};
for (let i = 2; i < process.argv.length; i += 2) opts[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
const rows = JSON.parse(fs.readFileSync(opts.rows, "utf8"));
const nGen = Number(opts.gen ?? 8);
const nSeq = Number(opts.sequences ?? 16);
const threads = Number(opts.threads ?? 2);
const longest = Math.max(...rows.map((r) => r.length));

const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath: opts.model});
const context = await model.createContext({
  threads: {ideal: threads, min: threads}, sequences: nSeq, contextSize: longest + nGen + 16,
  batchSize: 512, flashAttention: false,
});

// One worker per sequence takes rows i, i + nSeq, ...
async function worker(s) {
  const sequence = context.getSequence();
  for (let i = s; i < rows.length; i += nSeq) {
    const ids = rows[i];
    // Keep the common prefix with what the sequence holds; at least the last token is evaluated again.
    let keep = sequence.compareContextTokens(ids).firstDifferentIndex;
    keep = Math.min(keep, ids.length - 1);
    if (sequence.nextTokenIndex > keep) {
      await sequence.eraseContextTokenRanges([{start: keep, end: sequence.nextTokenIndex}]);
    }
    let produced = 0;
    for await (const id of sequence.evaluate(ids.slice(keep), {temperature: 0, yieldEogToken: true})) {
      void id;
      if (++produced >= nGen) break;
    }
  }
}

const t0 = performance.now();
await Promise.all(Array.from({length: Math.min(nSeq, rows.length)}, (_, s) => worker(s)));
const seconds = (performance.now() - t0) / 1000;
console.log(JSON.stringify({rows: rows.length, seconds, rows_per_s: rows.length / seconds}));
await context.dispose();
