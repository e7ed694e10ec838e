#!/usr/bin/env python3
"""Checks the Dockerfile without a Docker engine (none runs here or in CI).

Debian 12 packages no Dockerfile linter (hadolint is not in Debian), so this
reads the Dockerfile itself and checks what matters for this image:

  stages     build, runtime-base, baked, runtime; `runtime` (model mounted)
             is the last, hence the default target
  COPY       every source exists in the repository and is not excluded by
             .dockerignore
  RUN        the build runs `.ci/build` (CI's build script) with the
             EMBEDQ_CUDA build argument (default ON; OFF leaves CUDA out),
             packages come from `.ci/packages` (CI's lists); no other
             installer, no `curl | sh`, no `apt-get upgrade`
  runtime    numeric non-root USER; exec-form ENTRYPOINT `tini -- embedq
             worker`; EXPOSE = EMBEDQ_METRICS_PORT; EMBEDQ_MODEL=/model; every
             EMBEDQ_* variable is one `embedq worker --help` lists
  libraries  every shared library build/embedq needs (ELF NEEDED) comes from
             a package in `.ci/packages list runtime` (dpkg -S) or from the
             CUDA toolkit, which the Dockerfile copies next to the binary
  build      build/ (what CI tests) is configured as the image: Release and,
             where nvcc exists, CUDA for the same architectures

usage: check_dockerfile.py REPO_ROOT EMBEDQ_BIN
"""
import fnmatch
import os
import re
import shlex
import subprocess
import sys

failures = 0
passed = 0


def check(cond, what):
    global failures, passed
    if cond:
        passed += 1
        print("ok:", what)
    else:
        failures += 1
        print("FAIL:", what)


def instructions(text):
    """(keyword, argument) pairs; continuation lines joined, comments dropped."""
    out, cur = [], ""
    for line in text.splitlines():
        s = line.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if cur and s.startswith("#"):
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        cur += s
        kw, _, arg = cur.partition(" ")
        out.append((kw.upper(), arg.strip()))
        cur = ""
    return out


def dockerignored(path, patterns):
    """True when .dockerignore excludes path (simple patterns, no '!')."""
    for p in patterns:
        p = p.rstrip("/")
        if p.startswith("**/"):
            parts = path.split("/")
            if any(fnmatch.fnmatch(x, p[3:]) for x in parts):
                return True
        elif fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path.split("/")[0], p):
            return True
    return False


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    root, binary = sys.argv[1], sys.argv[2]
    text = open(os.path.join(root, "Dockerfile")).read()
    ins = instructions(text)
    ignore = [l.strip() for l in open(os.path.join(root, ".dockerignore"))
              if l.strip() and not l.startswith("#")]

    # stages
    stages, cur = [], None
    per_stage = {}
    args = {}
    for kw, arg in ins:
        if kw == "ARG" and cur is None:
            k, _, v = arg.partition("=")
            args[k] = v
        if kw == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", arg, re.I)
            cur = m.group(2) or str(len(stages))
            stages.append((cur, m.group(1)))
            per_stage[cur] = []
        elif cur is not None:
            per_stage[cur].append((kw, arg))
    names = [s for s, _ in stages]
    check(names == ["build", "runtime-base", "baked", "runtime"],
          "stages build, runtime-base, baked, runtime (got %s)" % names)
    check(stages and stages[-1][0] == "runtime", "the default (last) target is `runtime`")
    froms = dict(stages)
    check(froms.get("baked") == "${BAKED_FROM}" and args.get("BAKED_FROM") == "runtime-base",
          "baked: FROM ${BAKED_FROM}, by default the runtime-base stage (got %s, %s)"
          % (froms.get("baked"), args.get("BAKED_FROM")))
    check(froms.get("runtime") == "runtime-base", "runtime: FROM runtime-base")
    base = args.get("DEBIAN_IMAGE", "")
    check(base.startswith("debian:12"), "base image is Debian 12 like CI (%s)" % base)

    # COPY sources
    for stage, body in per_stage.items():
        for kw, arg in body:
            if kw != "COPY" or "--from=" in arg:
                continue
            parts = [p for p in shlex.split(arg) if not p.startswith("--")]
            for src in parts[:-1]:
                if src.startswith("${"):
                    continue  # MODEL_DIR: the user's
                p = os.path.join(root, src)
                check(os.path.exists(p) and not dockerignored(src, ignore),
                      "%s: COPY source %s exists and is not .dockerignored" % (stage, src))
    model_default = re.search(r"ARG MODEL_DIR=(\S+)", text)
    check(model_default and os.path.isdir(os.path.join(root, model_default.group(1))),
          "baked: MODEL_DIR's default exists")

    # RUN steps
    runs = [(s, a) for s, body in per_stage.items() for kw, a in body if kw == "RUN"]
    build_runs = " ".join(a for s, a in runs if s == "build")
    check(args.get("EMBEDQ_CUDA") == "ON",
          "build argument EMBEDQ_CUDA defaults to ON (CUDA), got %r" % args.get("EMBEDQ_CUDA"))
    check(("ARG", "EMBEDQ_CUDA") in per_stage.get("build", []),
          "build: takes the EMBEDQ_CUDA build argument")
    check('EMBEDQ_CUDA="${EMBEDQ_CUDA}" EMBEDQ_TESTS=OFF bash .ci/build' in build_runs,
          "build: runs CI's build script .ci/build with EMBEDQ_CUDA from the build argument")
    check(re.search(r'if \[ "\$\{EMBEDQ_CUDA\}" = ON \]; then bash /tmp/ci/install-cuda.sh',
                    build_runs) is not None,
          "build: installs the CUDA toolkit (docker/install-cuda.sh) when EMBEDQ_CUDA=ON")
    check("/tmp/ci/packages install build" in build_runs,
          "build: installs `.ci/packages` role build")
    rt_runs = " ".join(a for s, a in runs if s == "runtime-base")
    check("/tmp/ci/packages install runtime" in rt_runs,
          "runtime: installs `.ci/packages` role runtime")
    for s, a in runs:
        check("apt-get install" not in a and "upgrade" not in a and
              not re.search(r"curl[^|]*\|\s*(ba)?sh", a),
              "%s: RUN installs only through the scripts: %s" % (s, a[:60]))
    for s, body in per_stage.items():
        for kw, a in body:
            if kw == "COPY" and "/tmp/ci/" in a:
                src = shlex.split(a)[0]
                check(src.startswith(".ci/") or src.startswith("docker/"),
                      "%s: scripts come from .ci/ or docker/ (%s)" % (s, src))

    # runtime settings
    rt = per_stage.get("runtime-base", [])
    env = {}
    for kw, a in rt:
        if kw == "ENV":
            for tok in shlex.split(a):
                k, _, v = tok.partition("=")
                env[k] = v
    users = [a for kw, a in rt if kw == "USER"]
    check(users and re.fullmatch(r"[1-9][0-9]*(:[1-9][0-9]*)?", users[-1]) is not None,
          "runtime: numeric non-root USER (%s)" % users)
    ep = [a for kw, a in rt if kw == "ENTRYPOINT"]
    ep_list = None
    if ep:
        try:
            import json
            ep_list = json.loads(ep[-1])
        except ValueError:
            ep_list = None
    check(ep_list == ["/usr/bin/tini", "--", "/usr/local/bin/embedq", "worker"],
          "runtime: exec-form ENTRYPOINT tini -- embedq worker (%s)" % ep)
    expose = [a for kw, a in rt if kw == "EXPOSE"]
    check(expose and expose[-1] == env.get("EMBEDQ_METRICS_PORT"),
          "runtime: EXPOSE %s = EMBEDQ_METRICS_PORT %s" % (expose, env.get("EMBEDQ_METRICS_PORT")))
    check(env.get("EMBEDQ_MODEL") == "/model", "runtime: EMBEDQ_MODEL=/model")
    helptext = subprocess.run([binary, "worker", "--help"], capture_output=True, text=True).stdout
    known = set(re.findall(r"\[(EMBEDQ_[A-Z_]+)\]", helptext))
    check(len(known) > 20, "`embedq worker --help` lists its variables (%d)" % len(known))
    for k in env:
        if k.startswith("EMBEDQ_"):
            check(k in known, "runtime: %s is a variable embedq worker reads" % k)

    # libraries
    pk = subprocess.run(["bash", os.path.join(root, ".ci/packages"), "list", "runtime"],
                        capture_output=True, text=True, check=True).stdout.split()
    elf = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", elf)
    check(len(needed) >= 5, "build/embedq needs %d shared libraries" % len(needed))
    ldd = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    where = dict(re.findall(r"^\s*(\S+) => (\S+)", ldd, re.M))
    for lib in needed:
        if lib.startswith("ld-linux"):
            continue  # the program interpreter, part of libc6
        path = where.get(lib)
        if not path:
            check(False, "%s resolves (ldd)" % lib)
            continue
        if path.startswith("/usr/local/cuda"):
            check("/usr/local/cuda" in text,
                  "%s comes from the CUDA toolkit: the Dockerfile copies it" % lib)
            continue
        real = os.path.realpath(path)
        owner = None
        for cand in (path, real, re.sub(r"^/lib/", "/usr/lib/", path),
                     re.sub(r"^/usr/lib/", "/lib/", path)):
            r = subprocess.run(["dpkg", "-S", cand], capture_output=True, text=True)
            if r.returncode == 0:
                owner = r.stdout.split(":")[0].strip()
                break
        prio = subprocess.run(["dpkg-query", "-W", "-f=${Priority}", owner or "-"],
                              capture_output=True, text=True).stdout.strip()
        check(owner in pk or prio == "required",
              "%s (%s) is in package %s, listed for runtime or required in every Debian "
              "image (priority %s)" % (lib, path, owner, prio or "?"))

    # build/ as the image builds it
    cache = os.path.join(os.path.dirname(os.path.abspath(binary)), "CMakeCache.txt")
    if os.path.exists(cache):
        c = open(cache).read()
        check(re.search(r"^CMAKE_BUILD_TYPE:STRING=Release$", c, re.M) is not None,
              "build/ is a Release build, as the image's")
        if os.path.exists("/usr/local/cuda/bin/nvcc"):
            bdir = os.path.dirname(os.path.abspath(cache))

            def flags(target_dir):
                try:
                    return open(os.path.join(bdir, target_dir, "flags.make")).read()
                except OSError:
                    return ""
            eng = flags("engine/CMakeFiles/embedq_engine.dir")
            ker = flags("kernels/CMakeFiles/embedq_kernels.dir")
            check("EMBEDQ_HAVE_CUDA=1" in eng,
                  "build/ has the CUDA backend compiled in, as the image's")
            codes = sorted(set(re.findall(r"arch=compute_\d+,code=\[[a-z_0-9,]+\]", ker)))
            want = ["arch=compute_80,code=[sm_80]", "arch=compute_86,code=[sm_86]",
                    "arch=compute_89,code=[sm_89]", "arch=compute_90,code=[compute_90,sm_90]"]
            check(codes == want,
                  "build/'s kernels are compiled for sm_80/86/89/90 + PTX 90, as the image's "
                  "(%s)" % codes)
    print("%d passed, %d failed" % (passed, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
