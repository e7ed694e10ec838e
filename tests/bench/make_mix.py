#!/usr/bin/env python3
"""make_mix.py - build the benchmark's default mixed-length workload
(tests/bench/mix_chunks.jsonl) by chunking real documents the way a RAG
ingestion pipeline does: split each document into paragraphs, then pack
consecutive paragraphs into chunks of a target size drawn per chunk from a
distribution of 50..2000 tokens (most 128..1024, a few long ones).

Standard library only. Sources, read from this machine (a Debian 12 box):
  - the project's own docs (README.md, docs/*.md),
  - /usr/share/common-licenses/* (license texts),
  - /usr/share/doc/**/{README*,NEWS*,FAQ*,*.md,*.txt,*.rst}[.gz] (package docs),
  - a sample of /usr/share/man/man{1,5,8}/*.gz with the troff markup stripped
    (crudely: requests dropped, font escapes removed).
The files present differ between machines, so the output is a snapshot: it is
checked in, and this script documents how it was made. Sizes are estimated
here at 4 characters per token; the real token counts (embedq's tokenizer)
are what `embedq bench` prints and docs/benchmarks.md records.

Each output line: {"text": "...", "source": "path of the document"}.

    python3 tests/bench/make_mix.py --out tests/bench/mix_chunks.jsonl
"""

import argparse
import glob
import gzip
import hashlib
import json
import os
import random
import re
import sys

CHARS_PER_TOKEN = 4.0  # English technical prose with Qwen3's BPE: ~4 chars/token

# Chunk size targets (estimated tokens): (weight, low, high)
TARGETS = [
    (0.10, 50, 128),
    (0.50, 128, 512),
    (0.30, 512, 1024),
    (0.10, 1024, 2000),
]
MIN_TOKENS, MAX_TOKENS = 50, 2000


def est_tokens(s):
    return len(s) / CHARS_PER_TOKEN


def read_text(path):
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                raw = f.read(2_000_000)
        else:
            with open(path, "rb") as f:
                raw = f.read(2_000_000)
    except (OSError, EOFError):
        return None
    try:
        s = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not s.strip():
        return None
    # Mostly printable text only (no binaries, no form-feed heavy files).
    bad = sum(1 for c in s[:20000] if ord(c) < 32 and c not in "\n\t\r")
    if bad > 10:
        return None
    return s.replace("\r\n", "\n")


_TROFF_FONT = re.compile(r"\\f(\[[^\]]*\]|\(..|.)")
_TROFF_ESC = re.compile(r"\\(\(..|\*\(..|\*.|[-&|^e0 ]|s[-+]?\d)")


def strip_troff(s):
    """Crude man(7) to text: drop requests and comments, keep .SH/.SS titles
    and text lines, remove font and character escapes; blank line at .PP/.SH."""
    out = []
    for line in s.split("\n"):
        if line.startswith(('.\\"', "'\\\"", '\\"')):
            continue
        if line.startswith((".SH", ".SS")):
            title = line[3:].strip().strip('"')
            out.append("")
            out.append(title)
            continue
        if line.startswith((".PP", ".P", ".LP", ".TP", ".IP", ".sp", ".br")):
            if line.startswith((".PP", ".LP", ".sp", ".P ")) or line.strip() in (".P",):
                out.append("")
            rest = line.split(None, 1)[1] if len(line.split(None, 1)) > 1 else ""
            if line.startswith(".IP") and rest:
                out.append(rest.strip('"'))
            continue
        if line.startswith((".B ", ".I ", ".BR ", ".IR ", ".BI ", ".RB ", ".RI ", ".IB ")):
            line = line.split(None, 1)[1] if len(line.split(None, 1)) > 1 else ""
            line = line.replace('"', "")
        elif line.startswith(".") or line.startswith("'"):
            continue
        line = _TROFF_FONT.sub("", line)
        line = _TROFF_ESC.sub(lambda m: "-" if m.group(1) == "-" else " ", line)
        line = line.replace("\\", "")
        out.append(line)
    return "\n".join(out)


def paragraphs(text):
    paras = []
    for p in re.split(r"\n\s*\n", text):
        p = p.strip("\n")
        if not p.strip():
            continue
        # A paragraph too long for any chunk is cut at line boundaries.
        if est_tokens(p) > MAX_TOKENS:
            cur = []
            for line in p.split("\n"):
                if cur and est_tokens("\n".join(cur + [line])) > MAX_TOKENS * 0.9:
                    paras.append("\n".join(cur))
                    cur = []
                cur.append(line[: int(MAX_TOKENS * CHARS_PER_TOKEN * 0.9)])
            if cur:
                paras.append("\n".join(cur))
        else:
            paras.append(p)
    return paras


def draw_target(rng):
    r, acc = rng.random(), 0.0
    for w, lo, hi in TARGETS:
        acc += w
        if r < acc:
            return rng.uniform(lo, hi)
    return rng.uniform(TARGETS[-1][1], TARGETS[-1][2])


def chunk_document(text, rng, seen, max_chunks):
    chunks, cur, target = [], [], draw_target(rng)
    for p in paragraphs(text):
        h = hashlib.sha1(" ".join(p.split()).encode()).digest()
        if h in seen:  # boilerplate repeated across packages
            continue
        seen.add(h)
        if cur and est_tokens("\n\n".join(cur + [p])) > max(target, MIN_TOKENS) * 1.15:
            chunks.append("\n\n".join(cur))
            cur, target = [], draw_target(rng)
        cur.append(p)
        if est_tokens("\n\n".join(cur)) >= target:
            chunks.append("\n\n".join(cur))
            cur, target = [], draw_target(rng)
        if len(chunks) >= max_chunks:
            break
    if cur:
        chunks.append("\n\n".join(cur))
    return [c for c in chunks if MIN_TOKENS <= est_tokens(c) <= MAX_TOKENS * 1.15]


def sources(repo):
    docs = [os.path.join(repo, "README.md")] + sorted(glob.glob(os.path.join(repo, "docs", "*.md")))
    lic = sorted(p for p in glob.glob("/usr/share/common-licenses/*") if not os.path.islink(p))
    pat = re.compile(r"(^(README|NEWS|FAQ)|\.(md|txt|rst))(\.gz)?$", re.I)
    pkg = []
    for root, _dirs, files in os.walk("/usr/share/doc"):
        for f in files:
            if pat.search(f) and not f.lower().startswith("changelog"):
                p = os.path.join(root, f)
                if not os.path.islink(p):
                    pkg.append(p)
    man = []
    for sec in ("man1", "man5", "man8"):
        man += sorted(glob.glob("/usr/share/man/%s/*.gz" % sec))
    return [p for p in docs if os.path.exists(p)], lic, sorted(pkg), man


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "mix_chunks.jsonl"))
    ap.add_argument("--repo", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    ap.add_argument("--max-bytes", type=int, default=2_600_000, help="stop at this much text")
    ap.add_argument("--man-pages", type=int, default=300, help="man pages sampled")
    ap.add_argument("--seed", type=int, default=20261124)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    docs, lic, pkg, man = sources(os.path.normpath(args.repo))
    rng.shuffle(pkg)
    man = rng.sample(man, min(args.man_pages, len(man)))
    # Project docs and licenses first (always in), then package docs and man
    # pages interleaved until the size cap.
    files = [(p, False) for p in docs + lic]
    rest = [(p, False) for p in pkg] + [(p, True) for p in man]
    rng.shuffle(rest)
    files += rest

    seen, out, total = set(), [], 0
    for path, is_man in files:
        text = read_text(path)
        if text is None:
            continue
        if is_man:
            if "\n.TH" not in "\n" + text[:4000]:
                continue
            text = strip_troff(text)
        for c in chunk_document(text, rng, seen, max_chunks=40):
            n = len(c.encode("utf-8"))
            if total + n > args.max_bytes:
                break
            out.append({"text": c, "source": path if path.startswith("/") else
                        os.path.relpath(path, os.path.normpath(args.repo))})
            total += n
        if total >= args.max_bytes * 0.995:
            break
    rng.shuffle(out)
    with open(args.out, "w", encoding="utf-8") as f:
        for o in out:
            f.write(json.dumps(o, ensure_ascii=False) + "\n")
    est = sorted(est_tokens(o["text"]) for o in out)
    q = lambda x: int(est[min(len(est) - 1, int(x * len(est)))])
    print("%d chunks, %d bytes, est. tokens: min %d p10 %d p50 %d p90 %d max %d, total ~%d"
          % (len(out), total, est[0], q(0.1), q(0.5), q(0.9), est[-1], sum(est)), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
