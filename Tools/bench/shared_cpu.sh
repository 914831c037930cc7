#!/usr/bin/env bash
# Shared-CPU benchmark (issue "Throughput", point 1): how libgomp's wait policy changes our speed alone and
# with 2 or 3 identical processes at once. For each setting (default spin, GOMP_SPINCOUNT values, passive)
# and each workload (the ADM 64² network forward through engine-bench; a whole `restore ddnm` run: 32² → 64²,
# pool:2, 40 steps, the bundled prior), prints
# the wall time alone (median of 3), and the wall time until the last of 2 and of 3 simultaneous processes
# ends, with the ratios against alone. Run on an otherwise idle machine:
#   swift build -c release <speed flags> --product engine-bench --product restore
#   Tools/bench/shared_cpu.sh [SETTINGS...]      (default: default 100000 10000 3000 1000 300 passive)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=.build/release
settings=("$@"); [ ${#settings[@]} -gt 0 ] || settings=(default 100000 10000 3000 1000 300 passive)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
python3 - "$work/in.png" <<'PY'
import struct, sys, zlib
w = h = 32
raw = b"".join(b"\x00" + bytes(((x * 16 + y * 8 + c * 60) % 256) for x in range(w) for c in range(3)) for y in range(h))
chunk = lambda k, d: struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d) & 0xFFFFFFFF)
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
PY
workload() {  # $1 = network | ddnm, $2 = output tag
  case $1 in
    network) "$BIN/engine-bench" unet_adm64 >/dev/null ;;
    ddnm) "$BIN/restore" ddnm -i "$work/in.png" -o "$work/out-$2.png" --degradation pool:2 --steps 40 --overwrite --quiet ;;
  esac
}
run_env() {  # setting → environment for env(1)
  case $1 in
    default) echo "DR_OMP_POLICY=off" ;;
    passive) echo "DR_OMP_POLICY=off OMP_WAIT_POLICY=PASSIVE" ;;
    builtin) echo "" ;;
    *) echo "DR_OMP_POLICY=off GOMP_SPINCOUNT=$1" ;;
  esac
}
now() { date +%s.%N; }
printf "%-10s %-8s %8s %8s %6s %8s %6s\n" setting workload alone_s two_s ratio three_s ratio
for s in "${settings[@]}"; do
  for w in network ddnm; do
    e=$(run_env "$s")
    times=()
    for r in 1 2 3; do t0=$(now); env $e bash -c "$(declare -f workload); BIN=$BIN work=$work workload $w a"; t1=$(now); times+=("$(echo "$t1 - $t0" | bc)"); done
    alone=$(printf "%s\n" "${times[@]}" | sort -n | sed -n 2p)
    for n in 2 3; do
      t0=$(now); pids=()
      for k in $(seq $n); do env $e bash -c "$(declare -f workload); BIN=$BIN work=$work workload $w p$k" & pids+=($!); done
      wait "${pids[@]}"; t1=$(now)
      eval "t$n=$(echo "$t1 - $t0" | bc)"
    done
    printf "%-10s %-8s %8.2f %8.2f %6.2f %8.2f %6.2f\n" "$s" "$w" "$alone" "$t2" "$(echo "$t2 / $alone" | bc -l)" "$t3" "$(echo "$t3 / $alone" | bc -l)"
  done
done
