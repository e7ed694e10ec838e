#!/usr/bin/env python3
"""docs/worker.md's configuration table says what `embedq worker --help`
says: the same flags in the same order, each with its EMBEDQ_* variable,
default and meaning. Run with --write to regenerate the table.

usage: doc_flags_test.py EMBEDQ_BIN DOC [--write]
"""
import re
import subprocess
import sys

HEAD = "| flag | environment | default | meaning |\n|---|---|---|---|\n"


def rows_from_help(bin_):
    out = subprocess.run([bin_, "worker", "--help"], capture_output=True, text=True)
    if out.returncode != 0:
        print("SKIP: this embedq has no worker (built without the broker libraries)")
        sys.exit(77)
    rows = []
    for line in out.stdout.splitlines():
        m = re.match(r"^  --(\S+)\s+(.*) \[(EMBEDQ_\w+)\]$", line)
        if not m:
            continue
        flag, text, env = m.groups()
        default = ""
        d = re.search(r" \(default: (.*)\)$", text)
        if d:
            default, text = d.group(1), text[:d.start()]
            if "; " in default:  # a described default: "(default: X; more)"
                default, more = default.split("; ", 1)
                text += " (%s)" % more
        esc = lambda s: s.replace("|", "\\|")
        rows.append("| `--%s` | `%s` | %s | %s |" % (flag, env, esc(default), esc(text)))
    return rows


def main():
    bin_, doc = sys.argv[1], sys.argv[2]
    want = rows_from_help(bin_)
    if len(want) < 30:
        print("FAIL: parsed only %d flags from --help" % len(want))
        return 1
    text = open(doc).read()
    start = text.index(HEAD) + len(HEAD)
    end = text.index("\n\n", start)
    have = text[start:end].splitlines()
    if "--write" in sys.argv:
        open(doc, "w").write(text[:start] + "\n".join(want) + text[end:])
        print("wrote %d rows" % len(want))
        return 0
    fails = 0
    for i in range(max(len(want), len(have))):
        w = want[i] if i < len(want) else "(none)"
        h = have[i] if i < len(have) else "(none)"
        if w != h:
            print("FAIL: row %d\n  --help: %s\n  doc:    %s" % (i + 1, w, h))
            fails += 1
    print("doc_flags: %d rows, %d differ" % (len(want), fails))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
