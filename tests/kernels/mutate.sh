#!/usr/bin/env bash
# mutate.sh - proof that the kernel emulator's test (kernels_emu,
# tests/kernels/emu_test.cpp) catches bugs in the kernels: plants one bug at
# a time in a copy of kernels/, rebuilds the emulated kernels and the test,
# and expects the test to fail. Prints a table: mutant, kernel, caught.
#
#   tests/kernels/mutate.sh [--ci] [--list] [--keep] [NAME...]
#     --ci    the CI subset (three mutants, one per kind of check: the
#             numbers, the shared-memory race detector, the bit-level
#             rounding check)
#     --list  print the mutants and exit
#     NAME    run only these mutants
#   CXX / CC   compilers (default g++ / gcc)
# Exit: 0 every mutant run was caught (and the unmutated copy passes),
# 1 otherwise, 2 usage.
#
# Each mutant is an exact text replacement that must match once (a mutant
# whose text no longer matches the source fails the run, so the list stays
# current with the kernels). Built here with plain compiler calls, not
# CMake, so that a mutant rebuilds only its own kernel (about 5 s).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
CXX=${CXX:-g++}
CC=${CC:-gcc}

# name # file # test op # what the bug is # python list of (old, new) pairs
mutants=(
"attn_s_frag_halves#attention.cu#attention#S = Q K^T: the two k-halves of the B fragment swapped#[('mma16816(s[2 * p], qf[kk], b0, b1);', 'mma16816(s[2 * p], qf[kk], b1, b0);')]"
"attn_p_frag_halves#attention.cu#attention#P V: A-fragment registers a1 and a2 swapped (rows g+8 and cols 8..15)#[('pack_bf16x2(s[2 * kk][2], s[2 * kk][3]),\n                                   pack_bf16x2(s[2 * kk + 1][0], s[2 * kk + 1][1]),', 'pack_bf16x2(s[2 * kk + 1][0], s[2 * kk + 1][1]),\n                                   pack_bf16x2(s[2 * kk][2], s[2 * kk][3]),')]"
"attn_trans_dropped#attention.cu#attention#V loaded with ldmatrix without .trans#[('                ldsm_x4_t(\n', '                ldsm_x4(\n')]"
"attn_mask_off_by_one#attention.cu#attention#causal mask excludes the diagonal (key >= q)#[('if (key > q || key >= len)', 'if (key >= q || key >= len)')]"
"attn_barrier_q#attention.cu#attention#barrier between reading Q and the first prefetch removed#[('    __syncthreads(); /* sQ is overwritten by the first prefetch */\n', '')]"
"attn_barrier_loop#attention.cu#attention#barrier at the end of the key loop removed#[('        __syncthreads(); /* this stage is refilled two iterations on */\n', '')]"
"attn_wait_missing#attention.cu#attention#cp.async.wait_group 1 -> 2: the current tile not waited for#[('            cp_async_wait<1>();', '            cp_async_wait<2>();')]"
"attn_gqa_map#attention.cu#attention#GQA head map h % n_kv_heads instead of h / ratio#[('const int kvh = h / (n_heads / n_kv_heads);', 'const int kvh = h % n_kv_heads;')]"
"attn_zero_fill#attention.cu#attention#rows past the sequence end not zero-filled (copy skipped)#[('        cp_async16(smem_u32(dst + r * LDS + c * 8), s, ok ? 16 : 0);', '        if (ok) cp_async16(smem_u32(dst + r * LDS + c * 8), s, 16);')]"
"rope_pairing#qk_norm_rope.cu#qk_norm_rope#RoPE pairs (i, i+8) instead of (i, i+half)#[('bf16x8_to_f32(p[HALF / 8], b);', 'bf16x8_to_f32(p[1], b);'), ('p[HALF / 8] = f32_to_bf16x8(ob);', 'p[1] = f32_to_bf16x8(ob);')]"
"qk_reduce_short#qk_norm_rope.cu#qk_norm_rope#q/k norm: sum of squares one shuffle step short#[('for (int o = G / 2; o > 0; o >>= 1)', 'for (int o = G / 2; o > 1; o >>= 1)')]"
"rms_cast_order#add_rmsnorm.cu#add_rmsnorm#RMSNorm rounds x*r to bf16 before the weight multiply#[('        o[k] = v[k] * r * wv[k];', '        o[k] = __uint_as_float(pack_bf16x2(v[k] * r, 0.0f) << 16) * wv[k];')]"
"rms_reduce_short#add_rmsnorm.cu#add_rmsnorm#block sum one shuffle step short#[('    for (int o = 16; o > 0; o >>= 1)', '    for (int o = 16; o > 1; o >>= 1)')]"
"rms_barrier_red#add_rmsnorm.cu#add_rmsnorm#block sum: barrier between writing and reading the warp sums removed#[('    __syncthreads();\n    float s = 0.0f;', '    float s = 0.0f;')]"
"pool_barrier_red#pool_normalize.cu#pool_normalize#block sum: barrier before reusing red[] removed (a fast warp overwrites a sum a slow one has not read)#[('    __syncthreads(); /* earlier readers of red are done */\n', '')]"
"pool_wrong_row#pool_normalize.cu#pool_normalize#pool reads the first row of each sequence, not the last#[('const size_t r = (size_t)cu_seqlens[s + 1] - 1;', 'const size_t r = (size_t)cu_seqlens[s];')]"
"swiglu_gate_up#swiglu.cu#swiglu#gate and up swapped#[('bf16x8_to_f32(__ldg(gu + gi), g);', 'bf16x8_to_f32(__ldg(gu + gi), u);'), ('bf16x8_to_f32(__ldg(gu + gi + chunks), u);', 'bf16x8_to_f32(__ldg(gu + gi + chunks), g);')]"
"embed_half_order#embed_gather.cu#embed_gather#bf16 pair unpacked high half first#[('make_float4(__uint_as_float(v.x << 16), __uint_as_float(v.x & 0xffff0000u),', 'make_float4(__uint_as_float(v.x & 0xffff0000u), __uint_as_float(v.x << 16),')]"
)
ci_set=(attn_trans_dropped attn_barrier_q rms_cast_order)

ci=0 keep=0 list=0 only=()
for a in "$@"; do
  case "$a" in
    --ci) ci=1 ;;
    --keep) keep=1 ;;
    --list) list=1 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    -*) echo "mutate.sh: unknown option '$a' (--ci, --list, --keep, NAME...)" >&2; exit 2 ;;
    *) only+=("$a") ;;
  esac
done
[ $ci -eq 1 ] && only=("${ci_set[@]}")

if [ $list -eq 1 ]; then
  for m in "${mutants[@]}"; do IFS='#' read -r n f op why _ <<<"$m"; printf '%-20s %-16s %s\n' "$n" "$f" "$why"; done
  exit 0
fi
selected=()
for m in "${mutants[@]}"; do
  n=${m%%#*}
  if [ ${#only[@]} -eq 0 ]; then selected+=("$m"); continue; fi
  for o in "${only[@]}"; do [ "$o" = "$n" ] && selected+=("$m"); done
done
for o in "${only[@]}"; do
  printf '%s\n' "${mutants[@]}" | grep -q "^$o#" || { echo "mutate.sh: no mutant named '$o' (--list)" >&2; exit 2; }
done

work=$(mktemp -d)
[ $keep -eq 1 ] || trap 'rm -rf "$work"' EXIT
cp -r "$root/kernels" "$work/kernels"
flags=(-std=c++17 -O2 -w -fno-strict-aliasing -DEQK_EMU -I"$work/kernels/emu/include"
       -I"$work/kernels/emu" -I"$work/kernels")
obj="$work/obj"
mkdir -p "$obj"
kernels=(embed_gather add_rmsnorm qk_norm_rope attention swiglu pool_normalize)

build_kernel() { # kernel name -> $obj/NAME.o from $work/kernels
  "$CXX" "${flags[@]}" -x c++ -c "$work/kernels/$1.cu" -o "$obj/$1.o"
}
link() {
  "$CXX" -fopenmp "$obj"/emu.o "$obj"/runtime.o "$obj"/emu_test.o "$obj"/twins.o \
    $(for k in "${kernels[@]}"; do echo "$obj/$k.o"; done) -o "$work/emu_test" -lpthread
}

echo "mutate.sh: building the emulated kernels and the test in $work"
pids=()
"$CXX" "${flags[@]}" -c "$work/kernels/emu/emu.cpp" -o "$obj/emu.o" & pids+=($!)
"$CXX" "${flags[@]}" -c "$here/emu_test.cpp" -o "$obj/emu_test.o" & pids+=($!)
wait "${pids[0]}" "${pids[1]}"
"$CXX" "${flags[@]}" -c "$work/kernels/emu/runtime.cpp" -o "$obj/runtime.o"
"$CC" -std=c11 -O2 -fopenmp -I"$work/kernels" -c "$work/kernels/twins.c" -o "$obj/twins.o"
for k in "${kernels[@]}"; do build_kernel "$k"; done
link
if ! "$work/emu_test" --quick >"$work/clean.log" 2>&1; then
  echo "mutate.sh: the UNMUTATED kernels fail the test; see below" >&2
  tail -20 "$work/clean.log" >&2
  exit 1
fi
echo "mutate.sh: unmutated copy passes ($(tail -1 "$work/clean.log"))"

printf '%-20s %-16s %-7s %s\n' mutant file caught "how (first failing line)"
missed=0 total=0
for m in "${selected[@]}"; do
  IFS='#' read -r name file op why pairs <<<"$m"
  total=$((total + 1))
  cp "$root/kernels/$file" "$work/kernels/$file"
  if ! python3 - "$work/kernels/$file" "$pairs" <<'PY'
import ast, sys
path, pairs = sys.argv[1], ast.literal_eval(sys.argv[2])
s = open(path).read()
for old, new in pairs:
    n = s.count(old)
    if n != 1:
        sys.exit(f"mutate.sh: {path}: expected the text once, found {n}: {old!r}")
    s = s.replace(old, new)
open(path, "w").write(s)
PY
  then
    echo "mutate.sh: mutant $name no longer applies: update its text" >&2
    exit 1
  fi
  k=${file%.cu}
  if ! build_kernel "$k" 2>"$work/$name.build"; then
    printf '%-20s %-16s %-7s %s\n' "$name" "$file" "BUILD" "does not compile: $(head -1 "$work/$name.build")"
    missed=$((missed + 1))
  else
    link
    set +e
    timeout 300 "$work/emu_test" --quick --only "$op" >"$work/$name.log" 2>&1
    rc=$?
    set -e
    how=$(grep -m1 -E 'FAIL|emu:|ERROR|Sanitizer' "$work/$name.log" | cut -c1-150 || true)
    if [ $rc -ne 0 ]; then
      printf '%-20s %-16s %-7s %s\n' "$name" "$file" "yes" "${how:-exit $rc}"
    else
      printf '%-20s %-16s %-7s %s\n' "$name" "$file" "NO" "$why"
      missed=$((missed + 1))
    fi
  fi
  cp "$root/kernels/$file" "$work/kernels/$file"
  build_kernel "$k"
done
echo "mutate.sh: $((total - missed)) of $total mutants caught"
[ $missed -eq 0 ]
