#!/bin/bash
# Spreads one large DDNM/USDR restoration over a Slurm cluster, with the one-process result bit for bit:
#   Tools/slurm/usdr-waves.sh FOLDER PARTS -- -i big.png -o big-x4.png --degradation pool:4 --steps 50
# 1. here: `restore ddnm … --spread FOLDER --plan` writes FOLDER/plan.json (windows, waves, stages);
# 2. one array job per stage, each after the one before (--dependency=afterok): the HiR pass (one task),
#    then every wave of windows, split over up to PARTS tasks (`--stage S --part i/N`); a task reads only
#    the files of its windows' finished neighbours and writes each window to FOLDER/windows/;
# 3. the stitch job writes the image (-o) with its report, as the one-process run does.
# Each task gets CPUS (default 2) CPUs and as many threads. Prints the job ids, the stitch's last.
# Re-submitting after a failure skips the windows already written.
set -euo pipefail
[ $# -ge 4 ] && [ "$3" = "--" ] || { echo "usage: $0 FOLDER PARTS -- DDNM-OPTIONS (with -i and -o)" >&2; exit 2; }
FOLDER=$(realpath -m "$1"); PARTS=$2; shift 3
RESTORE=${RESTORE:-$(command -v restore || echo restore)}
CPUS=${CPUS:-2}
mkdir -p "$FOLDER/logs"
"$RESTORE" ddnm "$@" --spread "$FOLDER" --plan --quiet >&2
widths=$(python3 -c 'import json,sys; p=json.load(open(sys.argv[1])); print(" ".join(["1"]*(p["stages"][0]=="hierarchy") + [str(len(w)) for w in p["waves"]]))' "$FOLDER/plan.json")
command=$(printf '%q ' "$RESTORE" ddnm "$@" --spread "$FOLDER" --quiet -j "$CPUS")
previous=""
stage=0
for width in $widths; do
    tasks=$(( width < PARTS ? width : PARTS ))
    previous=$(sbatch --parsable ${previous:+--dependency=afterok:$previous} --job-name="usdr-stage-$stage" --array=0-$((tasks - 1)) \
               --cpus-per-task="$CPUS" --output="$FOLDER/logs/stage-$stage-%a.log" ${SBATCH_ARGS:-} \
               --wrap "$command --stage $stage --part \$SLURM_ARRAY_TASK_ID/$tasks")
    echo "$previous"
    stage=$((stage + 1))
done
sbatch --parsable --dependency=afterok:"$previous" --job-name=usdr-stitch --cpus-per-task="$CPUS" --output="$FOLDER/logs/stitch.log" \
       ${SBATCH_ARGS:-} --wrap "$command --stitch --overwrite"
