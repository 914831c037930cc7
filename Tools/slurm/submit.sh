#!/bin/bash
# Submits a restore batch as a Slurm job array plus the follow-up check, and prints both job ids.
#   Tools/slurm/submit.sh MANIFEST OUT SHARDS CONCURRENT -- upscale -s 4
# SHARDS tasks (shard i/SHARDS each), at most CONCURRENT at once (%K), each with CPUS (default 2) CPUs and as
# many threads. The check job runs after the array (DEPENDENCY, default afterany: with afterok a single failed
# task would leave the check pending for ever, and the failure lists unmerged). Extra sbatch flags: SBATCH_ARGS.
# Run it again after a failure or a cancellation: done items are skipped, only the missing ones run.
set -euo pipefail
[ $# -ge 6 ] && [ "$5" = "--" ] || { echo "usage: $0 MANIFEST OUT SHARDS CONCURRENT -- SUBCOMMAND [OPTIONS]" >&2; exit 2; }
MANIFEST=$(realpath "$1"); OUT=$(realpath -m "$2"); SHARDS=$3; CONCURRENT=$4; shift 5
RESTORE_ARGS="$*"
here=$(dirname "$(realpath "$0")")
mkdir -p "$OUT/logs"
export MANIFEST OUT SHARDS RESTORE_ARGS RESTORE=${RESTORE:-$(command -v restore || echo restore)} RETRIES=${RETRIES:-1}
array=$(sbatch --parsable --array=0-$((SHARDS - 1))%"$CONCURRENT" --cpus-per-task="${CPUS:-2}" \
        --output="$OUT/logs/shard-%a.log" --export=ALL ${SBATCH_ARGS:-} "$here/restore-array.sbatch")
check=$(sbatch --parsable --dependency="${DEPENDENCY:-afterany}:$array" --output="$OUT/logs/check.log" --export=ALL ${SBATCH_ARGS:-} \
        "$here/restore-check.sbatch")
echo "$array $check"
