// tests/reference/tokenize_compare.mjs: randomized comparison of our tokenizer with llama.cpp's.
//
// For every vocabulary GGUF in SHARED/vocab (with or without .inp/.out vectors): N random strings from a
// seeded generator (ASCII words, contractions, digit runs, whitespace runs, punctuation, accented Latin,
// Greek, Cyrillic, CJK, Hangul, Arabic, Devanagari, emoji with ZWJ sequences and skin tones, combining
// marks, control and zero-width characters, texts that look like special tokens, very long words, and
// random code points) are tokenized by llama.cpp (node-llama-cpp 3.21.1, vocabOnly, common_tokenize with
// add_special = false and parse_special = false) and by one `infer tokenize -m VOCAB --no-bos -0` call,
// and the id lists are compared exactly. Every string is valid UTF-8 without NUL (NUL separates texts).
//
// Prints "vocab: agree/total" per vocabulary and the first mismatches (the string with non-ASCII escaped,
// both id lists from the first difference, and each token's text as llama.cpp detokenizes it). A
// vocabulary our tokenizer refuses as unsupported (infer exits 1 saying so) is listed as "unsupported".
// Exit status: 1 when a supported vocabulary has more mismatching strings than --max-mismatch (a count,
// or a percentage such as 0.5%), when infer fails otherwise, or (with --require-all) when a vocabulary is
// unsupported; 2 on a wrong command line.
//
// usage: node tokenize_compare.mjs --infer PATH --shared DIR [--count N] [--seed S] [--max-mismatch K]
//            [--require-all] [--vocabs gpt-2,llama-spm] [--show N] [--case I] [--dump FILE]
//   --count N       strings per vocabulary (default 2000); the same strings for every vocabulary
//   --seed S        generator seed (default 1); a mismatch is reproduced with the same --seed and --count
//   --vocabs a,b    only these vocabularies (ggml-vocab-NAME.gguf), default all
//   --show N        mismatches printed per vocabulary (default 5)
//   --case I        print string I of the set (JSON) and its ids from both tokenizers, for debugging
//   --dump FILE     write every mismatch as a JSON line {vocab, case, text, llama, ours} to FILE
import {execFileSync} from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import {createRequire} from "node:module";
import {fileURLToPath, pathToFileURL} from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));

function usageError(message) {
  console.error(`tokenize_compare: ${message}`);
  console.error("usage: node tokenize_compare.mjs --infer PATH --shared DIR [--count N] [--seed S] " +
    "[--max-mismatch K|P%] [--require-all] [--vocabs a,b] [--show N] [--case I] [--dump FILE]");
  process.exit(2);
}

// Options: "--key value", and the switches that take no value.
const switches = new Set(["require-all"]);
const opts = {};
for (let i = 2; i < process.argv.length; ++i) {
  const a = process.argv[i];
  if (!a.startsWith("--")) usageError(`unexpected argument "${a}"`);
  const key = a.slice(2);
  if (switches.has(key)) {
    opts[key] = true;
  } else {
    if (i + 1 >= process.argv.length) usageError(`option ${a} needs a value`);
    opts[key] = process.argv[++i];
  }
}
const known = new Set(["infer", "shared", "count", "seed", "max-mismatch", "require-all", "vocabs", "show", "case", "dump"]);
for (const key of Object.keys(opts)) if (!known.has(key)) usageError(`unknown option --${key}`);
if (!opts.infer || !opts.shared) usageError("--infer and --shared are required");
function intOption(name, fallback, lo) {
  const v = opts[name] === undefined ? fallback : Number(opts[name]);
  if (!Number.isInteger(v) || v < lo) usageError(`--${name} must be an integer >= ${lo}`);
  return v;
}
const count = intOption("count", 2000, 1);
const seed = intOption("seed", 1, 0);
const show = intOption("show", 5, 0);
const onlyCase = opts.case === undefined ? -1 : intOption("case", 0, 0);
const maxMismatch = (() => {
  const m = /^(\d+(?:\.\d+)?)(%?)$/.exec(opts["max-mismatch"] ?? "0");
  if (!m) usageError("--max-mismatch takes a count or a percentage (e.g. 3 or 0.5%)");
  return m[2] ? Math.floor((Number(m[1]) / 100) * count) : Number(m[1]);
})();

// ---- The random strings ------------------------------------------------------------------------------

// sfc32 seeded through splitmix32: the same strings for a seed on every machine and node version.
function makeRng(s) {
  let x = s >>> 0;
  const splitmix = () => {
    x = (x + 0x9e3779b9) >>> 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = splitmix(), b = splitmix(), c = splitmix(), d = splitmix();
  const next = () => {
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = ((c << 21) | (c >>> 11)) >>> 0;
    c = (c + t) >>> 0;
    return t;
  };
  for (let i = 0; i < 12; ++i) next();
  return next;
}
const rng = makeRng(seed);
const below = (n) => Math.floor((rng() / 4294967296) * n);  // 0 <= r < n
const pick = (list) => list[below(list.length)];
const between = (lo, hi) => lo + below(hi - lo + 1);  // inclusive
const chance = (p) => rng() / 4294967296 < p;
const cp = (lo, hi) => String.fromCodePoint(between(lo, hi));
const repeat = (n, f) => Array.from({length: n}, f).join("");
const chars = (s) => Array.from(s);  // code points

const LOWER = "abcdefghijklmnopqrstuvwxyz";
const WORDS = ("the of and to in is that it was for on are as with his they at be this have from or one had by word " +
  "but not what all were we when your can said there use an each which she do how their if will up other about out " +
  "many then them these so some her would make like him into time has look two more write go see number no way could " +
  "people my than first water been call who oil its now find long down day did get come made may part hello world " +
  "tokenizer llama qwen GPT OpenAI Hello World THE I I'm isn't don't").split(" ");
const PUNCT = chars("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~");
const WHITESPACE = [" ", " ", " ", "  ", "\t", "\n", "\n\n", "\r", "\r\n", "\v", "\f", "\u00a0", "\u3000", "\u2009",
  "\u2028", "\u1680", "\u202f"];
const ACCENTED = chars("àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿßœÀÁÂÄÇÉÈÊÎÏÑÓÖØÜŒŁłŃńŚśŹźŻżĞğİıŞşŠšŽžČčĆćĐđŐőŰűĀāĒēĪīŌōŪū");
const EMOJI_SEQUENCES = ["👨‍👩‍👧‍👦", "👩‍💻", "🏳️‍🌈", "🧑🏽‍🚀", "👍🏿", "👋🏻", "❤️", "❤️‍🔥", "☺️", "1️⃣", "#️⃣", "🇩🇪", "🇯🇵",
  "🇺🇸", "👁️‍🗨️", "🤷🏻‍♀️", "🙇‍♂️", "🏴‍☠️", "😀", "🦙", "✅", "⚠️", "©️", "™", "🫠", "🧔🏾‍♂️", "👩🏼‍❤️‍💋‍👨🏽"];
const SKIN_TONES = ["\u{1F3FB}", "\u{1F3FC}", "\u{1F3FD}", "\u{1F3FE}", "\u{1F3FF}"];
const ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u200e", "\u200f", "\u180e", "\ufe0f"];
const CONTROL = [...Array.from({length: 31}, (_, i) => String.fromCharCode(i + 1)), "\u007f", "\u0085", "\u0080",
  "\u009f"];
const SPECIAL_LIKE = ["<s>", "</s>", "<unk>", "<pad>", "<mask>", "<|endoftext|>", "<|im_start|>", "<|im_end|>",
  "<|end|>", "<|user|>", "<|assistant|>", "<|system|>", "<|eot_id|>", "<|begin_of_text|>", "<|start_header_id|>",
  "<|fim_prefix|>", "<fim_prefix>", "<fim_middle>", "<|padding|>", "[CLS]", "[SEP]", "<0x41>", "<0x0A>", "<|endof",
  "<s", "</", "|>", "<|", "<<s>>", "<s><s>", "<|endoftext|><|endoftext|>", "▁", "▁▁▁", "Ġ", "Ċ", "Ġthe", "ĠĠ",
  "<|reserved_special_token_0|>", "<EOT>", "<jupyter_code>", "<gh_stars>", ">>ABSTRACT<<", "<filename>", "\u2581x"];
const CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'VE", "'M", "'LL", "'D", "'Re",
  "'Ll", "’s", "’t", "'"];

function asciiWord() {
  const w = chance(0.5) ? pick(WORDS) : repeat(between(1, 10), () => pick(chars(LOWER)));
  switch (below(5)) {
    case 0: return w.toUpperCase();
    case 1: return w.charAt(0).toUpperCase() + w.slice(1);
    case 2: return chars(w).map((c) => (chance(0.5) ? c.toUpperCase() : c)).join("");
    default: return w;
  }
}
const script = (lo, hi, min = 1, max = 8) => () => repeat(between(min, max), () => cp(lo, hi));

// Each generator returns one fragment; a string is a few fragments, joined directly or by whitespace.
const GENERATORS = [
  [12, asciiWord],
  [4, () => asciiWord() + pick(CONTRACTIONS)],
  [2, () => pick(CONTRACTIONS)],
  [5, () => repeat(between(1, chance(0.2) ? 40 : 9), () => pick(chars("0123456789")))],
  [2, () => `${between(0, 99999)}${pick([".", ",", ":", "/", "-", "e", "x", "%"])}${between(0, 9999)}`],
  [6, () => repeat(between(1, 6), () => pick(WHITESPACE))],
  [2, () => pick([" ", "\t", "\n"]).repeat(between(2, 40))],
  [5, () => repeat(between(1, 4), () => pick(PUNCT))],
  [4, () => repeat(between(1, 8), () => (chance(0.6) ? pick(ACCENTED) : pick(chars(LOWER))))],
  [3, script(0x03b1, 0x03c9)],                 // Greek lower
  [1, script(0x0391, 0x03a9, 1, 4)],           // Greek upper (includes the unassigned U+03A2)
  [3, script(0x0430, 0x044f)],                 // Cyrillic lower
  [1, script(0x0410, 0x042f, 1, 4)],           // Cyrillic upper
  [3, script(0x4e00, 0x9fff, 1, 12)],          // CJK unified ideographs
  [1, script(0x3041, 0x3096, 1, 10)],          // hiragana
  [1, script(0x30a1, 0x30fa, 1, 10)],          // katakana
  [1, script(0xac00, 0xd7a3, 1, 8)],           // Hangul syllables
  [1, () => pick(chars("。、「」『』（）！？・ー〜"))],
  [3, script(0x0621, 0x064a)],                 // Arabic letters
  [1, script(0x0660, 0x0669, 1, 5)],           // Arabic-Indic digits
  [3, () => repeat(between(1, 6), () => cp(0x0905, 0x0939) + (chance(0.5) ? cp(0x093e, 0x094c) : "") +
    (chance(0.15) ? "\u094d" : ""))],          // Devanagari with vowel signs and virama
  [1, script(0x0966, 0x096f, 1, 4)],           // Devanagari digits
  [1, script(0x05d0, 0x05ea)],                 // Hebrew
  [1, script(0x0e01, 0x0e2e)],                 // Thai
  [4, () => pick(EMOJI_SEQUENCES)],
  [2, () => cp(0x1f600, 0x1f64f) + (chance(0.4) ? pick(SKIN_TONES) : "") + (chance(0.3) ? "\u200d" + cp(0x1f300, 0x1f5ff) : "")],
  [1, () => pick(SKIN_TONES)],
  [3, () => (chance(0.8) ? pick(chars("aeiouAEOnNcsz")) : "") + repeat(between(1, 3), () => cp(0x0300, 0x036f))],
  [3, () => repeat(between(1, 3), () => pick(CONTROL))],
  [3, () => pick(ZERO_WIDTH)],
  [5, () => pick(SPECIAL_LIKE)],
  [1, () => repeat(between(40, 300), () => pick(chars(LOWER)))],            // a very long word
  [1, () => pick(["a", "x", "é", "😀", "-", "=", "0", "_", "字"]).repeat(between(20, 200))],
  [1, () => asciiWord() + repeat(between(1, 4), () => pick(ACCENTED) + asciiWord())],
  [1, () => pick(chars("€£¥₹©®°±×÷≠≤≥∞√∑πµ¶§•…‰′″‹›«»“”„‘’‚–—"))],
  [1, () => pick(["https://example.com/a?b=c&d=1", "foo_bar.baz()", "x += 1;", "if (a) {\n\treturn b;\n}",
    "user@example.org", "C:\\Windows\\path", "#include <stdio.h>", "    def f(self):"])],
  // Any code point but surrogates and NUL: unassigned ones too (they probe the Unicode tables).
  [2, () => {
    const r = below(10);
    const c = r < 6 ? between(0xa0, 0xfffd) : r < 8 ? between(0x10000, 0x1ffff) : between(0x1, 0x10ffff);
    return c >= 0xd800 && c <= 0xdfff ? "\ufffd" : String.fromCodePoint(c);
  }],
];
const TOTAL_WEIGHT = GENERATORS.reduce((sum, [w]) => sum + w, 0);
function fragment() {
  let r = below(TOTAL_WEIGHT);
  for (const [w, f] of GENERATORS) {
    if (r < w) return f();
    r -= w;
  }
  throw new Error("unreachable");
}

function randomString() {
  if (chance(0.01)) return "";
  const n = chance(0.1) ? between(10, 40) : between(1, 8);
  let s = chance(0.15) ? pick(WHITESPACE) : "";
  for (let i = 0; i < n; ++i) {
    if (i > 0) s += chance(0.45) ? " " : chance(0.15) ? pick(WHITESPACE) : "";
    s += fragment();
  }
  if (chance(0.1)) s += pick(WHITESPACE);
  return s;
}

const texts = [];
for (let i = 0; i < count; ++i) {
  const s = randomString();
  // Valid UTF-8 only (no lone surrogate survives into the string) and no NUL (the batch separator).
  if (/\p{Cs}/u.test(s) || s.includes("\0")) throw new Error(`generator bug: string ${i} is not valid UTF-8 text`);
  texts.push(s);
}

// ---- Tokenizing -------------------------------------------------------------------------------------

// Non-ASCII and control characters as \uXXXX (surrogate pairs for astral ones): unambiguous on any terminal.
const escape = (s) => JSON.stringify(s).replace(/[^\x20-\x7e]/g, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
const clip = (s, n) => (s.length > n ? s.slice(0, n) + `... (${s.length} chars)` : s);

// Our tokenizer on all texts at once: one id list per text, or an error string.
function oursBatch(vocabPath) {
  const input = Buffer.from(texts.map((t) => t + "\0").join(""), "utf8");
  try {
    const out = execFileSync(opts.infer, ["tokenize", "-m", vocabPath, "--no-bos", "-0"],
      {input, maxBuffer: 1 << 30, encoding: "utf8", stdio: ["pipe", "pipe", "pipe"]});
    const lines = out.split("\n");
    if (lines.pop() !== "" || lines.length !== texts.length) {
      return {failure: `infer printed ${lines.length} lines for ${texts.length} texts`};
    }
    return {
      results: lines.map((l) => (l.startsWith("error: ") ? {error: l.slice(7)} : {ids: l === "" ? [] : l.split(" ").map(Number)})),
    };
  } catch (e) {
    const stderr = String(e.stderr ?? "").trim();
    if (e.status === 1 && /unsupported|not (yet )?implemented|not supported/i.test(stderr)) return {unsupported: stderr};
    return {failure: `infer failed (${e.signal ? "signal " + e.signal : "exit " + e.status}): ${stderr || e.message}`};
  }
}

let entry;
const modulesDir = path.resolve(process.env.PG_INFER_NODE_MODULES ?? path.join(here, "node_modules"));
try {
  entry = createRequire(path.join(modulesDir, "noop.js")).resolve("node-llama-cpp");
} catch {
  console.error(`tokenize_compare: node-llama-cpp is not installed in ${modulesDir} (run "npm ci" in tests/reference)`);
  process.exit(2);
}
const {getLlama} = await import(pathToFileURL(entry).href);
const llama = await getLlama({gpu: false, build: "never", logLevel: "fatal"});

const vocabDir = path.join(opts.shared, "vocab");
let vocabs = fs.readdirSync(vocabDir).filter((f) => /^ggml-vocab-.*\.gguf$/.test(f)).sort();
if (opts.vocabs) {
  const wanted = opts.vocabs.split(",").map((v) => `ggml-vocab-${v}.gguf`);
  for (const w of wanted) if (!vocabs.includes(w)) usageError(`no ${w} in ${vocabDir}`);
  vocabs = wanted;
}
if (vocabs.length === 0) usageError(`no ggml-vocab-*.gguf in ${vocabDir}`);

if (onlyCase >= 0) {
  if (onlyCase >= count) usageError("--case must be below --count");
  console.log(`case ${onlyCase}: ${escape(texts[onlyCase])}`);
}

const dump = opts.dump ? fs.openSync(opts.dump, "w") : null;
const t0 = performance.now();
let failed = false;
const summary = [];
for (const file of vocabs) {
  const name = file.replace(/^ggml-vocab-/, "").replace(/\.gguf$/, "");
  const vocabPath = path.join(vocabDir, file);
  const model = await llama.loadModel({modelPath: vocabPath, vocabOnly: true});
  const reference = texts.map((t) => Array.from(model.tokenize(t, false)));
  const ours = oursBatch(vocabPath);
  const piece = (id) => escape(model.detokenize([id], true));
  if (ours.unsupported) {
    console.log(`${name}: unsupported (${ours.unsupported.split("\n")[0]})`);
    summary.push(`${name} unsupported`);
    if (opts["require-all"]) failed = true;
    await model.dispose();
    continue;
  }
  if (ours.failure) {
    console.log(`${name}: FAIL ${ours.failure}`);
    summary.push(`${name} FAIL`);
    failed = true;
    await model.dispose();
    continue;
  }
  if (onlyCase >= 0) {
    const r = ours.results[onlyCase];
    console.log(`${name}:\n  llama.cpp ${JSON.stringify(reference[onlyCase])}\n  ours      ${r.error ? "error: " + r.error : JSON.stringify(r.ids)}`);
    await model.dispose();
    continue;
  }
  let agree = 0;
  const shown = [];
  for (let i = 0; i < texts.length; ++i) {
    const ref = reference[i];
    const r = ours.results[i];
    if (r.ids && r.ids.length === ref.length && r.ids.every((id, k) => id === ref[k])) {
      ++agree;
      continue;
    }
    if (dump !== null) {
      fs.writeSync(dump, JSON.stringify({vocab: name, case: i, text: texts[i], llama: ref, ours: r.ids ?? {error: r.error}}) + "\n");
    }
    if (shown.length >= show) continue;
    let lines = `  #${i} ${clip(escape(texts[i]), 400)}\n`;
    if (r.error) {
      lines += `    llama.cpp ${JSON.stringify(ref)}\n    ours      error: ${r.error}\n`;
    } else {
      let d = 0;
      while (d < ref.length && d < r.ids.length && ref[d] === r.ids[d]) ++d;
      const from = Math.max(0, d - 2);
      const window = (ids) => (from > 0 ? "... " : "") + ids.slice(from, d + 8).map((id) => `${id} ${piece(id)}`).join(", ") +
        (ids.length > d + 8 ? ", ..." : "");
      lines += `    first difference at token ${d} (llama.cpp ${ref.length} tokens, ours ${r.ids.length})\n`;
      lines += `    llama.cpp ${window(ref)}\n    ours      ${window(r.ids)}\n`;
    }
    shown.push(lines);
  }
  const mismatches = texts.length - agree;
  const ok = mismatches <= maxMismatch;
  if (!ok) failed = true;
  console.log(`${name}: ${agree}/${texts.length}${ok ? "" : `  FAIL (more than ${maxMismatch} mismatches)`}`);
  for (const s of shown) process.stdout.write(s);
  summary.push(`${name} ${agree}/${texts.length}`);
  await model.dispose();
}
if (onlyCase < 0) {
  console.log(`seed ${seed}, ${count} strings per vocabulary, ${((performance.now() - t0) / 1000).toFixed(1)} s: ${summary.join(", ")}`);
}
process.exit(failed ? 1 : 0);
