// tests/reference/compare.mjs: token-for-token agreement of our engine with llama.cpp.
//
// For each synthetic model (family shape x tensor type), written by `infer synth`: llama.cpp (through
// llama_ref.mjs, node-llama-cpp's CPU build) generates a greedy continuation of a fixed prompt; then our
// `infer score` evaluates prompt + continuation teacher-forced. At every generated position our argmax
// must equal llama.cpp's token: on all of them for F32; for the other types on at least 90% of positions,
// each disagreement being a near tie (llama.cpp's token within 0.25 nats of our top token in our own
// log-probabilities). The random-weight models have flat distributions where near ties are common, and
// last-bit differences flip them: the Q8_0 kernels sum blocks exactly in integers, in another order than
// GGML's (kernels/cpu/vec_dot_q8_0.h), K-quant rounding flips quanta. A bug shows as a disagreement with a
// large gap. Prints one line per model and exits non-zero when a threshold is missed.
//
// usage: node compare.mjs --infer PATH --shared DIR [--work DIR] [--gen N] [--shapes a,b] [--types a,b]
import {execFileSync} from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {fileURLToPath} from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, a, i, all) => (a.startsWith("--") ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), [])
);
const infer = args.infer;
const shared = args.shared;
const work = args.work ?? fs.mkdtempSync(path.join(os.tmpdir(), "pginfer-ref-"));
const nGen = Number(args.gen ?? 48);
const shapes = (args.shapes ?? "tiny,tiny-qwen2,tiny-llama3").split(",");
const types = (args.types ?? "F32,F16,BF16,Q8_0,Q4_0,Q4_K,Q5_K,Q6_K").split(",");
if (!infer || !shared) {
  console.error("usage: node compare.mjs --infer PATH --shared DIR [--work DIR] [--gen N] [--shapes ..] [--types ..]");
  process.exit(2);
}
fs.mkdirSync(work, {recursive: true});

// The vocabulary each family's synthetic models take their tokenizer from.
const vocabFor = (shape) => path.join(shared, "vocab", shape.includes("qwen2") ? "ggml-vocab-gpt-2.gguf" : "ggml-vocab-llama-spm.gguf");

// A fixed prompt of ordinary token ids (well inside the vocabulary, no control tokens).
function promptIds(seed, n, vocab) {
  const ids = [];
  let x = BigInt(seed);
  for (let i = 0; i < n; ++i) {
    x = (x * 6364136223846793005n + 1442695040888963407n) & 0xffffffffffffffffn;
    ids.push(Number((x >> 33n) % BigInt(vocab - 300)) + 259);
  }
  return ids;
}

const run = (cmd, argv) => execFileSync(cmd, argv, {encoding: "utf8", maxBuffer: 1 << 28});

// How far below our top token (nats) llama.cpp's token may be where we disagree.
const kNearTie = 0.25;

let failed = 0;
const rows = [];
for (const shape of shapes) {
  for (const type of types) {
    const model = path.join(work, `${shape}-${type}.gguf`);
    if (!fs.existsSync(model)) run(infer, ["synth", "--shape", shape, "--type", type, "--vocab", vocabFor(shape), "-o", model, "--seed", "11"]);
    const vocab = shape.includes("qwen2") ? 50257 : 32000;
    const prompt = promptIds(rows.length + 1, 24, vocab);
    const ref = JSON.parse(run("node", [path.join(here, "llama_ref.mjs"), "generate", "--model", model, "--prompt-ids", prompt.join(" "), "-n", String(nGen), "--threads", "2"]));
    const gen = ref.ids;
    const ours = JSON.parse(run(infer, ["score", "-m", model, "--ids", [...prompt, ...gen].join(" "), "--json"]));
    let agree = 0;
    let maxGap = 0;
    const firstDiff = [];
    for (let i = 0; i < gen.length; ++i) {
      const mine = ours.argmax[prompt.length - 1 + i];
      if (mine === gen[i]) ++agree;
      else {
        // How far llama.cpp's token is below our top token in our own log-probabilities (nats).
        const gap = ours.nll[prompt.length - 1 + i] + ours.top_logprob[prompt.length - 1 + i];
        maxGap = Math.max(maxGap, gap);
        if (firstDiff.length < 3) firstDiff.push(`pos ${i}: llama.cpp ${gen[i]} ours ${mine} (gap ${gap.toFixed(4)})`);
      }
    }
    const ratio = gen.length ? agree / gen.length : 0;
    const need = type === "F32" ? 1.0 : 0.9;
    const ok = gen.length > 0 && ratio >= need && maxGap <= kNearTie;
    if (!ok) ++failed;
    const distinct = new Set(gen).size;
    rows.push(`${ok ? "ok  " : "FAIL"} ${shape.padEnd(12)} ${type.padEnd(5)} agree ${agree}/${gen.length} (${(100 * ratio).toFixed(1)}%, need ${100 * need}%${maxGap > 0 ? `, largest gap ${maxGap.toFixed(4)} of ${kNearTie}` : ""}) distinct tokens ${distinct}${firstDiff.length ? "  " + firstDiff.join("; ") : ""}`);
    console.log(rows[rows.length - 1]);
  }
}
console.log(`${rows.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
