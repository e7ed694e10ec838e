#!/usr/bin/env python3
"""The image built from the Dockerfile and run, with buildah (no Docker engine
runs here or in CI; Debian's buildah builds and runs images without one).

  base      docker/base-image.sh: a debian:12-slim equivalent made with
            debootstrap (cached under /var/cache/embedq/base)
  build     `buildah bud` of the Dockerfile's `runtime` target and its `baked`
            target (a generated tiny model, MODEL_DIR, added to the runtime
            image: BAKED_FROM), EMBEDQ_CUDA=OFF: NVIDIA's repository is
            unreachable here. The build context is a
            copy of the repository's files as git sees them (tracked and
            untracked, not ignored), plus the tiny model.
  run       in each image, with `buildah run` as the image's USER and through
            its ENTRYPOINT: `embedq --help`, `embedq worker --help`; `ldd`
            finds every library; the runtime image carries no package the
            worker does not need; a worker (the model mounted read-only at
            /model, or baked in) against a redis-server on the host's
            loopback (chroot isolation shares the host's network): 100
            messages in, 100 vectors out equal to the host's `embedq embed`,
            /readyz and /metrics answered by the container's worker; SIGTERM
            to the container's tini (found through /proc): the worker drains,
            tini and `buildah run` exit 0, nothing left pending.
  figures   image sizes (uncompressed, and gzip-compressed as pushed) and
            build times, printed as `figure:` lines (docs/docker.md).

Exits 77 (skipped, with the reason) only where buildah cannot run: not
installed, not root, or `buildah info` fails. Everything buildah stores lives
under WORKDIR/storage and is removed at the end (EMBEDQ_IMAGE_KEEP=1 keeps it).

usage: image_test.py REPO_ROOT EMBEDQ_BIN WORKDIR
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "worker_redis"))
import harness  # noqa: E402  (redis-server on a free port, wait_for)

N = 100
ROOT = BIN = WORK = None
ENV = None  # buildah's environment: storage under WORK
passed = 0


def ok(what):
    global passed
    passed += 1
    print("ok:", what, flush=True)


def fail(msg):
    print("FAIL:", msg, flush=True)
    sys.exit(1)


def skip(why):
    print("SKIP: the image is not built: " + why, flush=True)
    sys.exit(77)


def buildah(*args, log=None, check=True, timeout=1800):
    """Runs buildah with the test's storage; returns stdout. log: a file that
    gets stdout and stderr instead (printed in part on failure)."""
    cmd = ["buildah"] + [str(a) for a in args]
    if log:
        with open(log, "w") as f:
            r = subprocess.run(cmd, env=ENV, stdout=f, stderr=subprocess.STDOUT, timeout=timeout)
        if check and r.returncode:
            tail = open(log, errors="replace").read()[-4000:]
            fail("%s exited %d; log %s:\n%s" % (" ".join(cmd[:3]), r.returncode, log, tail))
        return r.returncode
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode:
        fail("%s exited %d:\n%s%s" % (" ".join(cmd), r.returncode, r.stdout[-2000:], r.stderr[-2000:]))
    return r if not check else r.stdout


# ---- set-up ---------------------------------------------------------------------------


def preflight():
    if not shutil.which("buildah"):
        skip("buildah is not installed (Debian package buildah; .ci/packages role image)")
    if os.geteuid() != 0:
        skip("not root: buildah's chroot isolation and debootstrap need root here")
    if not shutil.which("debootstrap"):
        skip("debootstrap is not installed (Debian package debootstrap)")
    r = buildah("info", check=False)
    if r.returncode:
        skip("`buildah info` fails: " + (r.stderr or r.stdout).strip()[-500:])
    harness.skip_unless_ready()


def storage():
    """buildah's environment: vfs storage under WORK (no overlay mounts in
    these sandboxes), chroot isolation (no runc/crun needed)."""
    global ENV
    conf = os.path.join(WORK, "storage.conf")
    with open(conf, "w") as f:
        f.write('[storage]\ndriver = "vfs"\ngraphroot = "%s/storage"\nrunroot = "%s/run"\n'
                % (WORK, WORK))
    ENV = dict(os.environ, CONTAINERS_STORAGE_CONF=conf, STORAGE_DRIVER="vfs",
               BUILDAH_ISOLATION="chroot")


def context(model_src):
    """WORK/context: the repository's files as git sees them, plus the model."""
    ctx = os.path.join(WORK, "context")
    files = subprocess.run(["git", "-C", ROOT, "ls-files", "-z", "--cached", "--others",
                            "--exclude-standard"], capture_output=True, check=True).stdout
    n = 0
    for rel in files.decode().split("\0"):
        src = os.path.join(ROOT, rel)
        if not rel or not os.path.isfile(src):
            continue  # deleted in the work tree
        dst = os.path.join(ctx, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(src, dst)
        n += 1
    shutil.copytree(model_src, os.path.join(ctx, "tiny-model"))
    return ctx, n


def image_size(ref):
    """(uncompressed bytes, gzip-compressed bytes as pushed to a registry):
    the image pushed to an OCI directory, its layer blobs summed as stored
    and as unpacked tars."""
    import gzip
    d = os.path.join(WORK, "oci-" + re.sub(r"[^a-z0-9]", "-", ref))
    shutil.rmtree(d, ignore_errors=True)
    buildah("push", "--quiet", "--compression-format", "gzip", ref, "oci:" + d)
    blob = lambda digest: os.path.join(d, "blobs", "sha256", digest.split(":")[1])
    idx = json.load(open(os.path.join(d, "index.json")))
    man = json.load(open(blob(idx["manifests"][0]["digest"])))
    packed = raw = 0
    for layer in man["layers"]:
        packed += layer["size"]
        with gzip.open(blob(layer["digest"])) as f:
            while True:
                chunk = f.read(1 << 20)
                if not chunk:
                    break
                raw += len(chunk)
    shutil.rmtree(d, ignore_errors=True)
    return raw, packed


# ---- in the container -----------------------------------------------------------------


class Container:
    """A working container of an image; run() as the image's USER with its ENV."""

    def __init__(self, image):
        self.image = image
        cfg = json.loads(buildah("inspect", "--type", "image", image))["OCIv1"]["config"]
        self.user = cfg.get("User", "")
        self.entrypoint = cfg.get("Entrypoint") or []
        self.env = dict(e.split("=", 1) for e in cfg.get("Env", []))
        self.name = buildah("from", "--pull-never", image).strip()

    def args(self, argv, volumes=(), env=None):
        a = ["run", "--user", self.user]
        for v in volumes:
            a += ["--volume", v]
        for k, v in (env or {}).items():
            a += ["--env", "%s=%s" % (k, v)]
        return a + [self.name, "--"] + list(argv)

    def run(self, argv, **kw):
        r = buildah(*self.args(argv, **kw), check=False)
        return r.returncode, r.stdout + r.stderr

    def remove(self):
        buildah("rm", self.name, check=False)


def descendants(pid):
    """PIDs below pid (via /proc/*/stat's ppid)."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = open("/proc/%s/stat" % d).read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for k in kids.get(p, []):
            out.append(k)
            todo.append(k)
    return out


def cmdline(pid):
    try:
        return open("/proc/%d/cmdline" % pid, "rb").read().split(b"\0")[0].decode()
    except OSError:
        return ""


def http(port, path):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, ConnectionError, OSError):
        return None, ""


def metric(text, name):
    """Sum of a metric's samples over its labels."""
    return sum(float(m.group(1)) for m in
               re.finditer(r"^%s(?:\{[^}]*\})? (\S+)$" % re.escape(name), text, re.M))


def reference(model, inputs):
    p = subprocess.run([BIN, "embed", "--model", model, "--device", "cpu"],
                       input="".join(json.dumps(x) + "\n" for x in inputs),
                       capture_output=True, text=True)
    if p.returncode:
        fail("host embedq embed: " + p.stderr)
    return {o["id"]: o["embedding"] for o in map(json.loads, p.stdout.splitlines())}


def check_image(label, image, host_model, mount):
    """The checks of item 3 in one image. mount: the model is mounted at
    /model (runtime target) or is in the image (baked)."""
    c = Container(image)
    try:
        if not re.fullmatch(r"[1-9][0-9]*(:[0-9]+)?", c.user):
            fail("%s: USER is %r, not a numeric non-root user" % (label, c.user))
        if c.entrypoint[:3] != ["/usr/bin/tini", "--", "/usr/local/bin/embedq"]:
            fail("%s: ENTRYPOINT %s" % (label, c.entrypoint))
        model_dir = c.env.get("EMBEDQ_MODEL")
        if model_dir != "/model":
            fail("%s: EMBEDQ_MODEL=%s, not the documented /model" % (label, model_dir))
        vols = ["%s:/model:ro" % host_model] if mount else []

        rc, out = c.run(c.entrypoint[:3] + ["--help"])
        if rc or "usage: embedq" not in out:
            fail("%s: embedq --help exited %d:\n%s" % (label, rc, out[-1500:]))
        rc, out = c.run(c.entrypoint + ["--help"])
        if rc or "--source" not in out or "[EMBEDQ_REDIS_URL]" not in out:
            fail("%s: embedq worker --help (the ENTRYPOINT) exited %d:\n%s" % (label, rc, out[-1500:]))
        ok("%s: `embedq --help` and `embedq worker --help` as user %s through tini"
           % (label, c.user))

        rc, out = c.run(["ldd", "/usr/local/bin/embedq"])
        if rc or "not found" in out or "libopenblas" not in out:
            fail("%s: ldd /usr/local/bin/embedq exited %d:\n%s" % (label, rc, out))
        ok("%s: ldd finds all %d libraries" % (label, out.count("=>")))

        rc, out = c.run(["id", "-u"])
        if out.strip() != c.user.split(":")[0]:
            fail("%s: runs as uid %r, not %s" % (label, out.strip(), c.user))
        rc, out = c.run(["cat", "/model/config.json"], volumes=vols)
        if rc or "hidden_size" not in out:
            fail("%s: /model/config.json is not readable by the image's user: %s" % (label, out))
        ok("%s: the model is at /model (%s), readable as uid %s"
           % (label, "mounted read-only" if mount else "baked in", c.user))

        run_worker(label, c, vols, host_model)
    finally:
        c.remove()


def run_worker(label, c, vols, host_model):
    srv = harness.RedisServer(os.path.join(WORK, "redis-" + label)).start()
    r = srv.client()
    port = harness.free_port()
    env = {"EMBEDQ_SOURCE": "redis", "EMBEDQ_REDIS_URL": srv.url, "EMBEDQ_GROUP": "embedq",
           "EMBEDQ_IN_STREAM": "in", "EMBEDQ_OUT_STREAM": "out", "EMBEDQ_DLQ_STREAM": "dlq",
           "EMBEDQ_DEVICE": "cpu", "EMBEDQ_THREADS": "2", "EMBEDQ_OUTPUT_FORMAT": "json",
           "EMBEDQ_METRICS_PORT": str(port), "EMBEDQ_DRAIN_TIMEOUT": "20"}
    log_path = os.path.join(WORK, "worker-%s.log" % label)
    log = open(log_path, "w")
    argv = ["buildah"] + c.args(c.entrypoint, volumes=vols, env=env)
    proc = subprocess.Popen(argv, env=ENV, stdout=log, stderr=subprocess.STDOUT)
    harness._children.append(proc)

    def tail():
        return open(log_path, errors="replace").read()[-3000:]
    try:
        def ready():
            if proc.poll() is not None:
                fail("%s: the worker exited %d before /readyz:\n%s" % (label, proc.returncode, tail()))
            return http(port, "/readyz")[0] == 200
        harness.wait_for(ready, 120, "%s: /readyz 200" % label, step=0.2)
        ok("%s: /readyz 200 from the worker in the container (port %d)" % (label, port))

        inputs = [{"id": "doc-%d" % i, "text": "document %d about vectors, streams and %s"
                   % (i, "containers " * (i % 7))} for i in range(N)]
        p = r.pipeline(transaction=False)
        for x in inputs:
            p.xadd("in", {"data": json.dumps(x)})
        p.execute()

        def outputs():
            return {json.loads(f[b"data"])["id"]: json.loads(f[b"data"])
                    for _, f in harness.xrange_all(r, "out")}
        try:
            harness.wait_for(lambda: len(outputs()) >= N, 180, "%d outputs" % N, step=0.2)
        except AssertionError as e:
            fail("%s: %s (got %d, dead letters %d):\n%s"
                 % (label, e, len(outputs()), r.xlen("dlq"), tail()))
        out = outputs()
        if set(out) != {x["id"] for x in inputs} or r.xlen("dlq"):
            fail("%s: outputs for other ids, or dead letters (%d)" % (label, r.xlen("dlq")))
        ref = reference(host_model, inputs)
        worst = 1.0
        for i, o in out.items():
            v, w = o["embedding"], ref[i]
            if len(v) != len(w) or o["dimensions"] != len(w):
                fail("%s: %s has %d dimensions, want %d" % (label, i, len(v), len(w)))
            dot = sum(a * b for a, b in zip(v, w))
            cos = dot / (sum(a * a for a in v) ** 0.5 * sum(b * b for b in w) ** 0.5)
            worst = min(worst, cos)
        if worst < 0.99999:
            fail("%s: a vector differs from the host's embedq embed (cosine %.6f)" % (label, worst))
        ok("%s: %d messages in, %d vectors out (%d dimensions), each the host's `embedq embed` "
           "vector (cosine >= %.6f)" % (label, N, len(out), len(ref["doc-0"]), worst))

        st, text = http(port, "/metrics")
        consumed = metric(text, "embedq_messages_consumed_total")
        produced = metric(text, "embedq_messages_produced_total")
        if st != 200 or consumed != N or produced < N:
            fail("%s: /metrics %s: consumed %s, produced %s" % (label, st, consumed, produced))
        ok("%s: /metrics from the container: consumed %d, produced %d"
           % (label, consumed, produced))

        tinis = [p for p in descendants(proc.pid) if cmdline(p) == "/usr/bin/tini"]
        if len(tinis) != 1:
            fail("%s: %d tini processes under buildah run %d" % (label, len(tinis), proc.pid))
        workers = [p for p in descendants(tinis[0]) if cmdline(p) == "/usr/local/bin/embedq"]
        if len(workers) != 1:
            fail("%s: tini %d has no embedq child" % (label, tinis[0]))
        os.kill(tinis[0], signal.SIGTERM)  # as the kubelet signals PID 1
        try:
            rc = proc.wait(60)
        except subprocess.TimeoutExpired:
            fail("%s: no exit within 60 s of SIGTERM to tini:\n%s" % (label, tail()))
        text = tail()
        if rc != 0:
            fail("%s: buildah run (tini) exited %d after SIGTERM:\n%s" % (label, rc, text))
        if "drained" not in text or "SIGTERM" not in text:
            fail("%s: no drain in the worker's log:\n%s" % (label, text))
        pend = harness.pending_count(r, "in", "embedq")
        if pend != 0:
            fail("%s: %d entries left pending" % (label, pend))
        ok("%s: SIGTERM to tini (pid %d) reached embedq (pid %d): drained, exit 0, nothing "
           "pending" % (label, tinis[0], workers[0]))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        srv.stop()


def runtime_packages(image, base):
    """Packages the runtime stage adds to the base, beyond .ci/packages'
    runtime list and what those depend on."""
    def pkgs(img):
        c = Container(img)
        try:
            rc, out = c.run(["dpkg-query", "-W", "-f=${Package}\n"])
        finally:
            c.remove()
        return set(out.split())
    added = pkgs(image) - pkgs(base)
    return sorted(added)


# Files of the runtime packages the worker may use without ldd showing them:
# plugins libcrypto and libsasl2 load on demand, the entrypoint (tini), and
# the programs ca-certificates' maintainer scripts run.
NOT_LINKED_OK = (r"/usr/lib/x86_64-linux-gnu/(engines-3|ossl-modules|sasl2)/",
                 r"/usr/bin/tini$", r"/usr/bin/openssl$", r"/usr/bin/c_rehash$",
                 r"/usr/sbin/update-ca-certificates$")


def unloaded_files(image, added):
    """Shared libraries and programs of the packages `added` that are in the
    image but neither loaded by /usr/local/bin/embedq (ldd) nor in
    NOT_LINKED_OK: [(size KiB, package, path)]."""
    c = Container(image)
    try:
        script = ('ldd /usr/local/bin/embedq | awk \'$3 ~ /^\\// {print $3}\' | '
                  'xargs readlink -f; echo --; for p in %s; do dpkg -L "$p" | while read -r f; do '
                  '[ -f "$f" ] && [ ! -L "$f" ] && echo "$(du -k "$f" | cut -f1) $p $f"; done; done'
                  % " ".join(added))
        rc, out = c.run(["sh", "-c", script])
    finally:
        c.remove()
    if rc:
        fail("listing the runtime packages' files: " + out[-2000:])
    loaded, _, files = out.partition("--\n")
    loaded = set(loaded.split())
    res = []
    for line in files.splitlines():
        kb, pkg, path = line.split(" ", 2)
        if not re.search(r"(\.so(\.[0-9.]+)?$|^/usr/s?bin/)", path):
            continue  # data, docs, certificates
        if path in loaded or any(re.search(p, path) for p in NOT_LINKED_OK):
            continue
        res.append((int(kb), pkg, path))
    return res


def main():
    global ROOT, BIN, WORK
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    ROOT, BIN, WORK = (os.path.abspath(a) for a in sys.argv[1:4])
    preflight()
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    storage()
    keep = os.environ.get("EMBEDQ_IMAGE_KEEP") == "1"
    try:
        return run_all()
    finally:
        if not keep:
            buildah("rm", "--all", check=False)
            buildah("rmi", "--all", "--force", check=False)
            shutil.rmtree(os.path.join(WORK, "storage"), ignore_errors=True)
            shutil.rmtree(os.path.join(WORK, "context"), ignore_errors=True)


def run_all():
    model = os.path.join(WORK, "tiny-model")
    r = subprocess.run([BIN, "gen-model", "--preset", "tiny", "--out", model, "--seed", "3"],
                       capture_output=True, text=True)
    if r.returncode:
        fail("gen-model: " + r.stderr)

    t0 = time.time()
    buildah_log = os.path.join(WORK, "base.log")
    buildah_env_run = subprocess.run(["bash", os.path.join(ROOT, "docker", "base-image.sh")],
                                     env=ENV, capture_output=True, text=True, timeout=1200)
    print(buildah_env_run.stdout, end="")
    open(buildah_log, "w").write(buildah_env_run.stdout + buildah_env_run.stderr)
    if buildah_env_run.returncode:
        fail("docker/base-image.sh exited %d:\n%s" % (buildah_env_run.returncode,
                                                       buildah_env_run.stderr[-3000:]))
    t_base = time.time() - t0
    ok("base image debian:12-slim (%.0f s)" % t_base)

    ctx, nfiles = context(model)
    # No --layers: with vfs every cached layer is a full copy of the tree
    # (GBs); the baked target is built on the runtime image (BAKED_FROM).
    common = ["bud", "--pull-never", "--build-arg", "EMBEDQ_CUDA=OFF",
              "-f", os.path.join(ctx, "Dockerfile")]
    t0 = time.time()
    buildah(*common, "--target", "runtime", "-t", "embedq:cpu", ctx,
            log=os.path.join(WORK, "build-runtime.log"))
    t_runtime = time.time() - t0
    t0 = time.time()
    buildah(*common, "--target", "baked", "--build-arg", "MODEL_DIR=tiny-model",
            "--build-arg", "BAKED_FROM=embedq:cpu",
            "-t", "embedq:cpu-tiny", ctx, log=os.path.join(WORK, "build-baked.log"))
    t_baked = time.time() - t0
    ok("built embedq:cpu (target runtime, %.0f s) and embedq:cpu-tiny (target baked, %.0f s "
       "more) from %d files, EMBEDQ_CUDA=OFF" % (t_runtime, t_baked, nfiles))

    added = runtime_packages("embedq:cpu", "debian:12-slim")
    want = subprocess.run(["bash", os.path.join(ROOT, ".ci", "packages"), "list", "runtime"],
                          capture_output=True, text=True, check=True).stdout.split()
    print("runtime packages added to the base:", " ".join(added))
    unlisted = [p for p in added if p not in want]
    # What the listed packages pull in: each must be a dependency of one of them.
    deps = subprocess.run(["apt-cache", "depends", "--recurse", "--no-recommends",
                           "--no-suggests", "--no-conflicts", "--no-breaks", "--no-replaces",
                           "--no-enhances"] + want, capture_output=True, text=True).stdout
    dep_names = set(re.findall(r"^\s*(?:\|)?(?:Pre)?Depends: <?([a-z0-9.+-]+)", deps, re.M))
    stray = [p for p in unlisted if p not in dep_names]
    if stray:
        fail("the runtime image has packages neither listed nor needed: %s" % stray)
    ok("runtime image: %d packages added to the base, each listed for runtime or a dependency "
       "of one" % len(added))
    extra = unloaded_files("embedq:cpu", added)
    if extra:
        fail("the runtime image carries libraries or programs the worker does not load: %s"
             % ", ".join("%s (%s, %d KiB)" % (p, k, kb) for kb, k, p in extra))
    ok("runtime image: every library and program of those packages is loaded by embedq (ldd), "
       "a plugin loaded on demand, tini or ca-certificates' own")

    check_image("runtime", "embedq:cpu", model, mount=True)
    check_image("baked", "embedq:cpu-tiny", model, mount=False)

    for ref in ("debian:12-slim", "embedq:cpu", "embedq:cpu-tiny"):
        raw, packed = image_size(ref)
        print("figure: %s size %.1f MB uncompressed, %.1f MB compressed (gzip layers)"
              % (ref, raw / 1e6, packed / 1e6))
    print("figure: build time base %.0f s, runtime target %.0f s, baked target %.0f s more"
          % (t_base, t_runtime, t_baked))
    print("%d passed, 0 failed" % passed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
