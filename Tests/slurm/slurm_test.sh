#!/bin/bash
# The batch contract on a real one-node Slurm (make test-slurm; make test runs it). Installs Debian's slurmctld,
# slurmd, slurm-client and munge when missing, starts munged (private socket), slurmctld and slurmd on a private
# configuration and ports, and stops them by their process ids at the end. Then:
#   1. one process restores the manifest (the reference);
#   2. Tools/slurm/submit.sh runs it as a 3-task array (2 at once, 1 CPU each) plus the check job; task 1 is
#      cancelled (scancel) as soon as its first item is done, mid-way through its second;
#   3. the check job reports the missing items; submitting again redoes only those;
#   4. every output exists once, is complete, and its pixels are those of the one-process run (pixels SHA-256,
#      16-bit samples: the files' bytes differ only in the reports' timings), and the items done by the first
#      array were not redone (their sidecars still name the first array's job id).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RESTORE=${RESTORE:-$ROOT/.build/release/restore}
[ -x "$RESTORE" ] || { echo "slurm test: $RESTORE is not built (swift build -c release)" >&2; exit 1; }
WORK=$(mktemp -d /tmp/dr-slurm.XXXXXX)
chmod 755 "$WORK"
export SLURM_CONF=$WORK/slurm.conf
stop() {
    for pidfile in "$WORK/slurmd.pid" "$WORK/slurmctld.pid" "$WORK/munge/munged.pid"; do
        [ -s "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
    done
    sleep 1
    for pidfile in "$WORK/slurmd.pid" "$WORK/slurmctld.pid" "$WORK/munge/munged.pid"; do
        [ -s "$pidfile" ] && kill -9 "$(cat "$pidfile")" 2>/dev/null || true
    done
}
fail() {
    echo "slurm test: FAILED: $*" >&2
    for log in "$WORK"/slurmctld.log "$WORK"/slurmd.log "$WORK"/out/logs/*.log; do [ -f "$log" ] && { echo "--- $log" >&2; tail -n 15 "$log" >&2; }; done
    exit 1
}
trap 'stop; rm -rf "$WORK"' EXIT

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
    echo "slurm test: installing slurmctld slurmd slurm-client munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null; }
fi

# munge on a socket of its own (a system munged, if any, is left alone).
KEY=/etc/munge/munge.key
if [ ! -s "$KEY" ]; then mkdir -p /etc/munge; mungekey --create --keyfile="$KEY"; fi
chown munge:munge "$KEY"; chmod 400 "$KEY"
install -d -o munge -g munge -m 0755 "$WORK/munge"
runuser -u munge -- munged --force --socket="$WORK/munge/socket" --pid-file="$WORK/munge/munged.pid" \
    --log-file="$WORK/munge/munged.log" --seed-file="$WORK/munge/seed" --key-file="$KEY"
for _ in $(seq 50); do [ -S "$WORK/munge/socket" ] && break; sleep 0.1; done

mkdir -p "$WORK/ctld" "$WORK/d"
memory=$(slurmd -C 2>/dev/null | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' | head -1)
cat > "$SLURM_CONF" <<EOF
ClusterName=drci
SlurmctldHost=localhost
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$WORK/munge/socket
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
StateSaveLocation=$WORK/ctld
SlurmdSpoolDir=$WORK/d
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/slurmctld.log
SlurmdLogFile=$WORK/slurmd.log
ReturnToService=2
KillWait=2
NodeName=localhost NodeHostname=$(hostname) CPUs=2 RealMemory=$(( ${memory:-2000} > 2000 ? 2000 : ${memory:-2000} )) State=UNKNOWN
PartitionName=ci Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
slurmctld -c -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF" -N localhost
for _ in $(seq 60); do sinfo -h -o %T 2>/dev/null | grep -q idle && break; sleep 0.5; done
sinfo -h -o %T | grep -q idle || fail "the node did not become idle"

# Nine items: the bundled 64² photo under nine seeds, DDNM colorization at 40 steps (≈ 1–2 s each).
cd "$WORK"
for i in $(seq 1 9); do printf '%s\tseed=%d\toutput=c%d.png\n' "$ROOT/Assets/photos/chelsea-64.png" "$i" "$i"; done > manifest.txt
ARGS=(ddnm --degradation gray --steps 40 --model "$ROOT/Models/adm64-prior.safetensors")
start=$(date +%s%N)
"$RESTORE" batch --manifest manifest.txt -o ref -j 2 --quiet -- "${ARGS[@]}" || fail "the one-process run"
one=$(( ($(date +%s%N) - start) / 1000000 ))

export RESTORE CPUS=1
start=$(date +%s%N)
read -r array check < <("$ROOT/Tools/slurm/submit.sh" manifest.txt out 3 2 -- "${ARGS[@]}")
[ -n "${check:-}" ] || fail "submit.sh did not print the two job ids"
# Cancel task 1 once its first item (position 1: c2) is done, while it restores its second (c5).
for _ in $(seq 600); do [ -s out/c2.png.json ] && break; sleep 0.1; done
[ -s out/c2.png.json ] || fail "task 1 never finished its first item"
scancel "${array}_1"
for _ in $(seq 600); do [ -z "$(squeue -h -j "$array,$check" 2>/dev/null)" ] && break; sleep 0.2; done
[ -z "$(squeue -h -j "$array,$check")" ] || fail "the first array did not finish"
first=$(( ($(date +%s%N) - start) / 1000000 ))
grep -q "missing" out/logs/check.log || fail "the check job did not report the cancelled task's items: $(cat out/logs/check.log)"
missing=$(grep -c '^missing: ' out/logs/check.log || true)
[ "$missing" -ge 1 ] || fail "nothing was missing after the cancel"
for i in $(seq 1 9); do [ -f "out/c$i.png" ] && ! [ -f "out/c$i.png.json" ] && fail "c$i.png has no sidecar (half-done item)"; done
done_before=$(ls out/*.png.json | wc -l)

read -r array2 check2 < <("$ROOT/Tools/slurm/submit.sh" manifest.txt out 3 2 -- "${ARGS[@]}")
for _ in $(seq 600); do [ -z "$(squeue -h -j "$array2,$check2" 2>/dev/null)" ] && break; sleep 0.2; done
grep -q "9 of 9 items done, 0 missing" out/logs/check.log || fail "after resubmitting: $(cat out/logs/check.log)"

redone=0
for i in $(seq 1 9); do
    [ "$(ls out/c$i.png* | wc -l)" -eq 2 ] || fail "c$i: expected the output and its sidecar once"
    ref_hash=$(sed -n 's/.*"pixels_sha256" : "\([0-9a-f]*\)".*/\1/p' "ref/c$i.png.json")
    out_hash=$(sed -n 's/.*"pixels_sha256" : "\([0-9a-f]*\)".*/\1/p' "out/c$i.png.json")
    [ -n "$ref_hash" ] && [ "$ref_hash" = "$out_hash" ] || fail "c$i: pixels differ from the one-process run"
    job=$(sed -n 's/.*"slurm_array_job_id" : "\([0-9]*\)".*/\1/p' "out/c$i.png.json")
    [ "$job" = "$array2" ] && redone=$((redone + 1))
done
[ "$redone" -eq $((9 - done_before)) ] || fail "the second array redid $redone items; $((9 - done_before)) were missing"
ls out | grep -Ev '^c[1-9]\.png(\.json)?$|^logs$' && fail "stray files in the output folder"

# Throughput: the same nine items as 2 shards of 1 CPU each (no cancel), against the one process with 2 threads.
start=$(date +%s%N)
read -r array3 check3 < <("$ROOT/Tools/slurm/submit.sh" manifest.txt out2 2 2 -- "${ARGS[@]}")
for _ in $(seq 900); do [ -z "$(squeue -h -j "$array3,$check3" 2>/dev/null)" ] && break; sleep 0.2; done
sharded=$(( ($(date +%s%N) - start) / 1000000 ))
grep -q "9 of 9 items done, 0 missing" out2/logs/check.log || fail "2 shards: $(cat out2/logs/check.log)"

# One image across workers: the USDR stages as dependent arrays (2 tasks per wave), against one process.
U=(-i "$ROOT/Assets/photos/chelsea-64.png" --degradation gray --window 32 --steps 10 --model "$ROOT/Models/adm64-prior.safetensors")
"$RESTORE" ddnm "${U[@]}" -o usdr-one.png -j 2 --quiet || fail "the one-process USDR run"
start=$(date +%s%N)
ids=$(CPUS=1 "$ROOT/Tools/slurm/usdr-waves.sh" spread 2 -- "${U[@]}" -o usdr-spread.png) || fail "usdr-waves.sh"
list=$(echo $ids | tr ' ' ',')
for _ in $(seq 900); do [ -z "$(squeue -h -j "$list" 2>/dev/null)" ] && break; sleep 0.2; done
spread_ms=$(( ($(date +%s%N) - start) / 1000000 ))
[ -f usdr-spread.png ] || fail "the stitch wrote no image: $(cat spread/logs/stitch.log 2>/dev/null)"
stages=$(echo "$ids" | wc -l)
[ "$("$RESTORE" info --pixels-sha256 usdr-one.png)" = "$("$RESTORE" info --pixels-sha256 usdr-spread.png)" ] \
    || fail "the spread USDR image differs from the one-process image"
[ "$(ls spread/windows | wc -l)" -eq 9 ] || fail "expected 9 window files"
echo "slurm test: passed (one process, 2 threads: $one ms for 9 items; 3-task array, 2 at once with 1 CPU each: $first ms including the cancel; $redone items redone after the cancel, $done_before kept; 2 shards of 1 CPU: $sharded ms for the 9 items, submission to check); USDR spread over $((stages - 1)) dependent stage arrays + stitch: identical pixels in $spread_ms ms"
